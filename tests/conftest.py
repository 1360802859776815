import shutil

import pytest

from napkin_testing import start_postgres


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL cluster per test process (xdist worker)."""
    server = start_postgres()
    yield server
    server.stop()
    shutil.rmtree(server.datadir.parent, ignore_errors=True)
