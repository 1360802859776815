"""The database engine and sessions (SQLAlchemy 2, sync).

Sync sessions run in FastAPI's threadpool; with a few workers per core that
is plenty for one VM, and it keeps models, migrations and jobs plain code.
"""

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from .settings import Settings

# Write transactions ask for this execution option; on SQLite they start with
# BEGIN IMMEDIATE so two writers queue on busy_timeout instead of deadlocking
# when both try to upgrade a read lock. https://sqlite.org/lang_transaction.html
WRITE = {"sqlite_begin": "IMMEDIATE"}
SQLITE_BUSY_TIMEOUT_MS = 5_000


class Base(DeclarativeBase):
    pass


def database_url(url: str):
    """`postgresql://` means psycopg 3 here; SQLAlchemy defaults to psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(settings: Settings) -> Engine:
    url = database_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        # Connections are kept across requests; a dropped one is replaced.
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": 5,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )


def _sqlite_engine(url) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite.
        # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_sessionmakers(engine: Engine):
    """Sessions for reading, and sessions whose transaction will write."""
    read = sessionmaker(engine, expire_on_commit=False)
    write = sessionmaker(engine.execution_options(**WRITE), expire_on_commit=False)
    return read, write
