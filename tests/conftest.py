import shutil

import pytest

from napkin_testing import bake, combo_id, start_postgres


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL cluster per test process (xdist worker)."""
    server = start_postgres()
    yield server
    server.stop()
    shutil.rmtree(server.datadir.parent, ignore_errors=True)


# --- tier 5: throwaway Debian machines (tests/machines.py) -------------------


@pytest.fixture(scope="session")
def machine_host():
    """This host can boot machines (else skip, or fail under CI); crashed runs swept.

    The sweep removes what an earlier, killed session left behind (processes,
    cgroups, overlays, veths, the NAT table); machines of sessions still
    running hold their slot locks and are left alone.
    """
    import machines

    machines.require()
    machines.sweep_stale()
    yield machines
    machines.sweep_stale()


@pytest.fixture(scope="session")
def machine_key(machine_host, tmp_path_factory):
    """One throwaway SSH client key for root on every machine of this process."""
    return machine_host.SSHKey.generate(tmp_path_factory.mktemp("machine-key"))


@pytest.fixture
def make_machine(machine_host, machine_key):
    """Boot fresh machines (`make_machine(release="bookworm")`); all destroyed after."""
    booted = []

    def boot(release="bookworm", key=None):
        machine = machine_host.Machine.boot(release, key=key or machine_key)
        booted.append(machine)
        return machine

    yield boot
    errors = []
    for machine in booted:
        try:
            machine.destroy()
        except Exception as error:  # noqa: BLE001 -- destroy every machine, report after
            errors.append(f"{machine.name}: {error}")
    assert not errors, "teardown failed:\n" + "\n".join(errors)


@pytest.fixture
def machine(make_machine):
    """A fresh, booted bookworm machine, reachable over SSH as root."""
    return make_machine()


@pytest.fixture(scope="session")
def baked(tmp_path_factory):
    """Each (framework, database, deploy) combination baked once per test process."""
    projects = {}

    def get(combo):
        if combo not in projects:
            projects[combo] = bake(tmp_path_factory.mktemp(combo_id(combo)), *combo)
        return projects[combo]

    return get
