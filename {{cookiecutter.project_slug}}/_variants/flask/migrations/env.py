"""How Alembic reaches the database: through the Flask app's engine."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

db = current_app.extensions["migrate"].db


def include_name(name, type_, parent_names):
    # The job queue's tables belong to its library (procrastinate), not to
    # our models: autogenerate and `flask db check` leave them alone.
    return not (type_ == "table" and name and name.startswith("procrastinate_"))


def run_migrations_offline():
    context.configure(
        url=db.engine.url.render_as_string(hide_password=False),
        target_metadata=db.metadata,
        include_name=include_name,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def skip_empty(context_, revision, directives):
        # `flask db migrate` with no model changes writes no empty revision.
        autogenerate = getattr(config.cmd_opts, "autogenerate", False)
        if autogenerate and directives and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in the models; no revision written.")

    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            include_name=include_name,
            process_revision_directives=skip_empty,
            # SQLite cannot ALTER most things: Alembic copies the table instead.
            # https://alembic.sqlalchemy.org/en/latest/batch.html
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
