{% if cookiecutter.database == "postgres" %}
"""The notes table and procrastinate's job queue schema.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
{% else %}
"""The notes table (huey creates its own queue tables on first use).

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
{% endif %}

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("word_count", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notes_created_at", "notes", ["created_at"])
{% if cookiecutter.database == "postgres" %}
    # procrastinate's tables, once: a database that already has them keeps them.
    # A procrastinate upgrade ships SQL migrations; apply each in a new revision.
    # https://procrastinate.readthedocs.io/en/stable/howto/production/migrations.html
    # Sent through psycopg without parameters: the SQL has literal % signs.
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("procrastinate_jobs"):
        bind.connection.driver_connection.execute(SchemaManager.get_schema())
{% endif %}


def downgrade() -> None:
    op.drop_index("ix_notes_created_at", table_name="notes")
    op.drop_table("notes")
