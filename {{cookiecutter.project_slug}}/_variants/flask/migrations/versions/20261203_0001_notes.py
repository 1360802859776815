"""notes{% if cookiecutter.database == "postgres" %} and the job queue (procrastinate){% endif %}


Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
{% if cookiecutter.database == "postgres" %}
from procrastinate.schema import SchemaManager
{% endif %}

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("word_count", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    op.create_index(op.f("ix_notes_created_at"), "notes", ["created_at"])
{% if cookiecutter.database == "postgres" %}
    # procrastinate's tables and functions, unless `procrastinate schema
    # --apply` already made them. Upgrading procrastinate later: add a revision
    # running its new files in procrastinate/sql/migrations/.
    # https://procrastinate.readthedocs.io/en/stable/howto/production/migrations.html
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("procrastinate_jobs"):
        # psycopg directly: the SQL holds % and : that SQLAlchemy would parse.
        bind.connection.driver_connection.execute(SchemaManager.get_schema())
{% endif %}


def downgrade():
{% if cookiecutter.database == "postgres" %}
    # The job queue's schema stays: it may hold jobs, and a later upgrade
    # finds it in place.
{% endif %}
    op.drop_index(op.f("ix_notes_created_at"), table_name="notes")
    op.drop_table("notes")
