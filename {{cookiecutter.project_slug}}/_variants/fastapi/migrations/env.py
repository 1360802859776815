"""Alembic's entry point: migrate the database named by DATABASE_URL."""

from alembic import context

from {{ cookiecutter.project_slug }} import models  # noqa: F401 (registers the tables)
from {{ cookiecutter.project_slug }}.db import Base, make_engine
from {{ cookiecutter.project_slug }}.settings import get_settings

config = context.config
if config.config_file_name and config.attributes.get("configure_logger", True):
    from logging.config import fileConfig

    fileConfig(config.config_file_name, disable_existing_loggers=False)


def include_name(name, type_, parent_names) -> bool:
    """Compare only our tables: the job queue's tables are the library's."""
    if type_ == "table":
        return name in Base.metadata.tables
    return True


def run_migrations_online() -> None:
    engine = make_engine(get_settings())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_name=include_name,
            # SQLite cannot ALTER most things; batch mode copies the table.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; use a database")
run_migrations_online()
