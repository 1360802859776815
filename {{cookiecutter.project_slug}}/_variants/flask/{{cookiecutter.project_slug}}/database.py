"""The SQLAlchemy and Alembic extensions, and how each database is connected."""

from __future__ import annotations

{% if cookiecutter.database == "postgres" %}
import select
{% endif %}
import sqlite3

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
{% if cookiecutter.database == "postgres" %}
from psycopg import pq
{% endif %}
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
{% if cookiecutter.database == "postgres" %}
from sqlalchemy.exc import DisconnectionError, OperationalError
{% else %}
from sqlalchemy.exc import OperationalError
{% endif %}

from .settings import Settings

# Named constraints, so later migrations can alter them (SQLite batch mode too).
# https://alembic.sqlalchemy.org/en/latest/naming.html
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()

# How long an SQLite write waits for another writer before failing.
SQLITE_BUSY_TIMEOUT_MS = 5000
{% if cookiecutter.database == "postgres" %}
# Connection states in which a query would fail (psycopg 3).
UNUSABLE = {pq.TransactionStatus.INERROR, pq.TransactionStatus.UNKNOWN}
{% endif %}


def engine_options(settings: Settings) -> dict:
    if settings.is_sqlite:
        # The sqlite3 module's own transaction handling is switched off in
        # _sqlite_connect; begin_write() picks the kind of BEGIN instead.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    return {
        # Each web process keeps up to DB_POOL_SIZE connections between requests.
        "pool_size": settings.pool_size,
        "max_overflow": 0,
        "connect_args": {
            "connect_timeout": 5,
            # https://www.postgresql.org/docs/current/runtime-config-client.html
            "options": f"-c statement_timeout={settings.statement_timeout_ms}",
        },
    }


def _sqlite_connect(dbapi_connection, _record) -> None:
    # https://www.sqlite.org/pragma.html: WAL lets readers run beside the one
    # writer; NORMAL is durable in WAL mode except on power loss.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # A transaction that will write takes the write lock when it starts
    # (BEGIN IMMEDIATE) and waits for it up to busy_timeout. A deferred one
    # that reads first and writes later can hit "database is locked" at once,
    # because SQLite cannot upgrade its read lock while another writer commits.
    # https://www.sqlite.org/lang_transaction.html
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    # Sent on the driver's connection: exec_driver_sql() would take it through
    # SQLAlchemy's whole statement machinery, once per request.
    try:
        connection.connection.driver_connection.execute(f"BEGIN {mode}")
    except sqlite3.Error as error:  # as SQLAlchemy would ("database is locked")
        raise OperationalError(f"BEGIN {mode}", None, error) from error


{% if cookiecutter.database == "postgres" %}
def _replace_ended_connection(dbapi_connection, _record, _proxy) -> None:
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


{% endif %}
def configure_engine(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
{% if cookiecutter.database == "postgres" %}
    else:
        event.listen(engine, "checkout", _replace_ended_connection)
{% endif %}


def begin_write() -> None:
    """Start the session's transaction as a write (SQLite: BEGIN IMMEDIATE).

    Call it first in a request that writes, before anything reads.
    """
    db.session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
