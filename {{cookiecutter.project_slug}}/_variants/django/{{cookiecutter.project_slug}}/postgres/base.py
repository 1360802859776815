"""Django's PostgreSQL backend, with a health check that costs no round trip.

With CONN_HEALTH_CHECKS, Django checks a kept connection before the first
query of each request with `SELECT 1`: a round trip to the server that cost a
third of the time of a simple request in napkin's benchmarks. PostgreSQL never
writes to an idle connection except to end it (a restart,
`pg_terminate_backend`, `idle_session_timeout`): it sends an error and closes
the socket. So a connection with nothing to read is alive as far as the
server has said, and one poll of its socket answers without waiting.
https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq

# What SELECT 1 would also fail on: an aborted transaction, a lost connection.
UNUSABLE = {pq.TransactionStatus.INERROR, pq.TransactionStatus.UNKNOWN}


def server_ended(connection) -> bool:
    """True if this idle psycopg connection cannot serve a query any more."""
    if connection.closed or connection.info.transaction_status in UNUSABLE:
        return True
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    # POLLIN: a goodbye message is waiting; POLLHUP/POLLERR: the socket is gone.
    return bool(poller.poll(0))


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        return self.connection is not None and not server_ended(self.connection)
