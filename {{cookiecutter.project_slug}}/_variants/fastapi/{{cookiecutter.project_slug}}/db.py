"""The database engine and sessions (SQLAlchemy 2, sync).

Sync sessions run in FastAPI's threadpool; with a few workers per core that
is plenty for one VM, and it keeps models, migrations and jobs plain code.
"""

{% if cookiecutter.database == "postgres" %}
import select
{% endif %}
import sqlite3

{% if cookiecutter.database == "postgres" %}
from psycopg import pq
{% endif %}
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
{% if cookiecutter.database == "postgres" %}
from sqlalchemy.exc import DisconnectionError, OperationalError
{% else %}
from sqlalchemy.exc import OperationalError
{% endif %}
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from .settings import Settings

# Write transactions ask for this execution option; on SQLite they start with
# BEGIN IMMEDIATE so two writers queue on busy_timeout instead of deadlocking
# when both try to upgrade a read lock. https://sqlite.org/lang_transaction.html
WRITE = {"sqlite_begin": "IMMEDIATE"}
SQLITE_BUSY_TIMEOUT_MS = 5_000
{% if cookiecutter.database == "postgres" %}
# Connection states in which a query would fail (psycopg 3).
UNUSABLE = {pq.TransactionStatus.INERROR, pq.TransactionStatus.UNKNOWN}
{% endif %}


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
        return _sqlite_engine(url, settings.db_pool_size)
{% if cookiecutter.database == "postgres" %}
    engine = create_engine(
        url,
        # Each process keeps DB_POOL_SIZE connections across requests and opens
        # no more: a request beyond them waits for one (up to pool_timeout, 30 s)
        # instead of opening and closing a connection of its own.
        pool_size=settings.db_pool_size,
        max_overflow=0,
        connect_args={
            "connect_timeout": 5,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
    )
    event.listen(engine, "checkout", replace_ended_connection)
    return engine


def replace_ended_connection(dbapi_connection, _record, _proxy) -> None:
    """Before a pooled connection is handed out, check PostgreSQL has not ended it.

    The server writes to an idle connection only to end it (a restart,
    pg_terminate_backend, idle_session_timeout), so one poll of the socket
    tells, where pool_pre_ping's SELECT 1 costs a round trip per request.
    DisconnectionError makes the pool open a new connection instead.
    https://docs.sqlalchemy.org/en/20/core/pooling.html#disconnect-handling-pessimistic
    """
    status = dbapi_connection.info.transaction_status
    if dbapi_connection.closed or status in UNUSABLE:
        raise DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):  # a goodbye message waits, or the socket is gone
        raise DisconnectionError("PostgreSQL ended the connection")
{% else %}
    raise ValueError(f"this project is set up for SQLite, not {url.drivername}")
{% endif %}


def _sqlite_engine(url, pool_size: int) -> Engine:
    engine = create_engine(
        url,
        # As for PostgreSQL: kept connections only, none opened per request.
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

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
        # Sent on the driver's connection: exec_driver_sql() would take it
        # through SQLAlchemy's whole statement machinery, once per request.
        try:
            connection.connection.driver_connection.execute(f"BEGIN {mode}")
        except sqlite3.Error as error:  # as SQLAlchemy would ("database is locked")
            raise OperationalError(f"BEGIN {mode}", None, error) from error

    return engine


def make_sessionmakers(engine: Engine):
    """Sessions for reading, and sessions whose transaction will write."""
    read = sessionmaker(engine, expire_on_commit=False)
    write = sessionmaker(engine.execution_options(**WRITE), expire_on_commit=False)
    return read, write
