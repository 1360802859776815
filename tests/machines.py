"""Throwaway Debian machines with systemd as PID 1, for tier 5 (a real server).

A base root filesystem is built once per release with `debootstrap` and cached
outside the repository (``$NAPKIN_CACHE/rootfs``). Each `Machine` is an
overlay over that base booted by ``systemd-nspawn -b``: systemd is PID 1, sshd
runs with the machine's own host key and machine-id, and the host reaches it
over its own veth pair in a /30 of `NETWORK`. The machine reaches only the
host end of its veth and, through NAT, DNS and HTTP(S) (the package mirror and
PyPI, for apt and pip).

Every machine holds an exclusive lock on its slot (`STATE/slots/<n>.lock`);
the slot number names it (``napkin-<n>``) and addresses it, so names and
addresses are unique across xdist workers and concurrent sessions. A slot whose
lock nobody holds is free, and whatever a crashed run left under its name
(processes, cgroups, mounts, veth, overlay) is removed before it is reused.
The NAT table and ``net.ipv4.ip_forward`` are shared by all live machines: the
first one in sets them up, the last one out puts them back.

The host must let us do this (root, overlayfs, veth, cgroups); `require()`
skips with the reason on a laptop that cannot and fails under CI.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from filelock import FileLock

from napkin_testing import CACHE, missing, need

# A private /16 nothing on this host uses (checked before the first machine
# boots); one /30 per slot: .1 is the host end, .2 the machine.
NETWORK = ipaddress.ip_network(os.environ.get("NAPKIN_MACHINE_NET", "10.213.0.0/16"))
STATE = Path(os.environ.get("NAPKIN_MACHINE_STATE", "/var/tmp/napkin-machines"))
ROOTFS_CACHE = CACHE / "rootfs"
CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
CGROUP_PARENT = "napkin-machines"
PREFIX = "napkin-"
NFT_TABLE = "napkin_machines"

RELEASES = ("bookworm", "trixie")
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "python3",
    "sudo",
    "ca-certificates",
)
# Downloaded (not installed) into the base's apt cache, so the provisioning
# script installs from local files instead of fetching the same .debs for
# every machine. The script still runs `apt-get install` for real.
PREFETCH_PACKAGES = (
    "nginx",
    "postgresql",
    "python3-venv",
    "python3-pip",
    "git",
    "rclone",
    "age",
    "certbot",
    "python3-certbot-nginx",
    "openssl",
    "curl",
    "sqlite3",
    "acl",
    "rsync",
    "ufw",
    "unattended-upgrades",
    "logrotate",
    "gnupg",
)
# Bump when the recipe in `_build_base` changes: it is part of the cache key.
BASE_RECIPE = 2
# Certificate authorities this host trusts beyond Debian's (a network that
# inspects TLS on its way to PyPI): a VM on the same network would trust them
# too, so the base does.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")

BOOT_TIMEOUT = float(os.environ.get("NAPKIN_MACHINE_BOOT_TIMEOUT", "120"))


class MachineError(RuntimeError):
    """A machine could not be built, booted or reached; the message says why."""


# --- can this host run machines? ---------------------------------------------


def require() -> None:
    """Skip (fail under CI) with the reason when this host cannot boot machines."""
    need("systemd-nspawn", "debootstrap", "nft", "ip", "nsenter", "ssh", "ssh-keygen")
    if os.geteuid() != 0:
        missing("systemd-nspawn machines need root (overlay mounts, veth, cgroups)")
    if "overlay" not in Path("/proc/filesystems").read_text():
        missing("the kernel has no overlayfs")
    for hierarchy in CGROUP_HIERARCHIES:
        if not os.access(hierarchy, os.W_OK):
            missing(
                f"{hierarchy} is not a writable cgroup hierarchy (needs hybrid cgroups)"
            )
    probe = f"nkprobe{os.getpid() % 100000}"
    made = subprocess.run(
        ["ip", "link", "add", probe, "type", "veth", "peer", "name", probe + "p"],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        missing(f"cannot create a veth pair: {made.stderr.strip()}")
    subprocess.run(["ip", "link", "del", probe], capture_output=True, check=False)


# --- the base root filesystem ------------------------------------------------


@dataclass(frozen=True)
class Mirror:
    debian: str
    security: str | None


def host_mirror() -> Mirror:
    """The Debian mirror apt on this host already uses (NAPKIN_DEBIAN_MIRROR wins)."""
    override = os.environ.get("NAPKIN_DEBIAN_MIRROR")
    debian = security = None
    sources = [
        Path("/etc/apt/sources.list"),
        *sorted(Path("/etc/apt/sources.list.d").glob("*")),
    ]
    for path in sources:
        if not path.is_file() or path.suffix not in {".list", ".sources", ""}:
            continue
        text = path.read_text(errors="replace")
        entries: list[tuple[str, list[str]]] = []
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.findall(r"^URIs:\s*(.+)$", stanza, flags=re.MULTILINE)
                suites = re.findall(r"^Suites:\s*(.+)$", stanza, flags=re.MULTILINE)
                for uri in " ".join(uris).split():
                    entries.append((uri, " ".join(suites).split()))
        else:
            for line in text.splitlines():
                match = re.match(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
                if match:
                    entries.append((match.group(1), [match.group(2)]))
        for uri, suites in entries:
            if not uri.startswith(("http://", "https://")):
                continue
            if any(s.endswith("-security") for s in suites):
                security = security or uri.rstrip("/")
            elif any(s in RELEASES or s.startswith(RELEASES) for s in suites):
                debian = debian or uri.rstrip("/")
    debian = override or debian
    if not debian:
        raise MachineError(
            "no Debian mirror found in /etc/apt/sources.list*; set NAPKIN_DEBIAN_MIRROR"
        )
    return Mirror(debian=debian, security=None if override else security)


def base_rootfs(release: str = "bookworm") -> Path:
    """The cached base root filesystem for `release`, built on first use.

    Built under a file lock (parallel workers build it once) into a temporary
    directory that is renamed into place when complete, so a crash never
    leaves a half-built base that looks finished.
    """
    if release not in RELEASES:
        raise MachineError(f"unknown release {release!r}; known: {', '.join(RELEASES)}")
    mirror = host_mirror()
    recipe = json.dumps(
        [
            BASE_RECIPE,
            release,
            mirror.debian,
            mirror.security,
            BASE_PACKAGES,
            PREFETCH_PACKAGES,
        ]
    )
    cas = "".join(p.read_text() for p in extra_cas())
    key = hashlib.sha256((recipe + cas).encode()).hexdigest()[:12]
    target = ROOTFS_CACHE / f"{release}-{key}"
    ROOTFS_CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / ".napkin-complete").exists():
            for stale in ROOTFS_CACHE.glob(f".build-{release}-{key}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            shutil.rmtree(target, ignore_errors=True)
            build = Path(
                tempfile.mkdtemp(prefix=f".build-{release}-{key}-", dir=ROOTFS_CACHE)
            )
            try:
                _build_base(build / "root", release, mirror)
                (build / "root" / ".napkin-complete").write_text(recipe + "\n")
                (build / "root").rename(target)
            finally:
                shutil.rmtree(build, ignore_errors=True)
    return target


def extra_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    """Run a host command; on failure raise MachineError with its output."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run([str(c) for c in cmd], check=False, **kwargs)
    if result.returncode != 0:
        out = ((result.stdout or "") + (result.stderr or ""))[-4000:]
        raise MachineError(
            f"{shlex.join(map(str, cmd))} exited {result.returncode}:\n{out}"
        )
    return result


def _build_base(root: Path, release: str, mirror: Mirror) -> None:
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(BASE_PACKAGES),
            release,
            root,
            mirror.debian,
        ]
    )
    lines = [
        f"deb {mirror.debian} {release} main",
        f"deb {mirror.debian} {release}-updates main",
    ]
    if mirror.security:
        lines.append(f"deb {mirror.security} {release}-security main")
    (root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
    # Every machine gets its own identity at boot: no machine-id, no host keys.
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    dbus_id.unlink(missing_ok=True)
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    # apt's daily timers would take the dpkg lock at a random moment of a test;
    # a user's provisioning script on a fresh VM must cope with them, but a
    # test that fails one run in fifty for that reason tells nobody anything.
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        (root / "etc/systemd/system" / timer).unlink(missing_ok=True)
        (root / "etc/systemd/system" / timer).symlink_to("/dev/null")
    chroot = ["chroot", root, "env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"]
    if extra_cas():
        for ca in extra_cas():
            shutil.copy(ca, root / "usr/local/share/ca-certificates" / ca.name)
        _run([*chroot, "update-ca-certificates"])
        # pip and uv bundle their own roots; tell them to use the system's.
        (root / "etc/pip.conf").write_text(
            "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
        )
        (root / "etc/uv").mkdir(exist_ok=True)
        (root / "etc/uv/uv.toml").write_text("native-tls = true\n")
    # Fill the apt cache (lists and .debs) without installing anything.
    _run([*chroot, "apt-get", "update", "-qq"])
    _run(
        [
            *chroot,
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--download-only",
            *PREFETCH_PACKAGES,
        ]
    )


# --- slots: names, addresses, locks -----------------------------------------


def _slot_name(slot: int) -> str:
    return f"{PREFIX}{slot}"


def _slot_subnet(slot: int) -> ipaddress.IPv4Network:
    base = int(NETWORK.network_address) + 4 * slot
    if base + 4 > int(NETWORK.broadcast_address) + 1:
        raise MachineError(f"no free /30 left in {NETWORK}")
    return ipaddress.ip_network(f"{ipaddress.ip_address(base)}/30")


def _veth(name: str) -> str:
    return ("ve-" + name)[:15]


def _try_lock(path: Path):
    """An open, exclusively flock()ed file, or None when someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _live_slots() -> list[int]:
    """Slots whose lock is held by a running process (this one included)."""
    live = []
    for path in (STATE / "slots").glob("*.lock"):
        fd = _try_lock(path)
        if fd is None:
            live.append(int(path.stem))
        else:
            os.close(fd)
    return sorted(live)


def _claim_slot() -> tuple[int, int]:
    (STATE / "slots").mkdir(parents=True, exist_ok=True)
    for slot in range(NETWORK.num_addresses // 4):
        fd = _try_lock(STATE / "slots" / f"{slot}.lock")
        if fd is not None:
            _remove_leftovers(slot)
            return slot, fd
    raise MachineError(f"every /30 of {NETWORK} is in use")


def _cgroups(name: str) -> list[Path]:
    return [h / CGROUP_PARENT / name for h in CGROUP_HIERARCHIES]


def _cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for top in _cgroups(name):
        if top.exists():
            for procs in top.rglob("cgroup.procs"):
                try:
                    pids.update(int(p) for p in procs.read_text().split())
                except OSError:
                    pass
    return pids


def _kill_cgroup(name: str) -> None:
    """SIGKILL every process of the machine's cgroups, then remove them bottom-up."""
    for _ in range(50):
        pids = _cgroup_pids(name)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    for top in _cgroups(name):
        if not top.exists():
            continue
        dirs = sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
        )
        for cgroup in [*dirs, top]:
            for _ in range(20):
                try:
                    cgroup.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
    for hierarchy in CGROUP_HIERARCHIES:
        try:
            (hierarchy / CGROUP_PARENT).rmdir()  # only when no machine is left
        except OSError:
            pass


def _in_cgroups(name: str) -> list[str]:
    """A command prefix that moves the process into `name`'s cgroups, then execs."""
    for cgroup in _cgroups(name):
        cgroup.mkdir(parents=True, exist_ok=True)
    enter = (
        'for c in "$@"; do [ "$c" = -- ] && break; echo $$ > "$c/cgroup.procs"; shift; done; '
        'shift; exec "$@"'
    )
    return ["sh", "-c", enter, "sh", *map(str, _cgroups(name)), "--"]


def _is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == target for line in mounts)


def _unmount(path: Path) -> None:
    for attempt in range(30):
        if not _is_mounted(path):
            return
        flags = ["-l"] if attempt == 29 else []
        subprocess.run(["umount", *flags, str(path)], capture_output=True, check=False)
        time.sleep(0.1)


def _remove_leftovers(slot: int) -> None:
    """Whatever a crashed run left under this (unlocked) slot's name."""
    name = _slot_name(slot)
    _kill_cgroup(name)
    _kill_cgroup(f"{name}-host")
    subprocess.run(["ip", "link", "del", _veth(name)], capture_output=True, check=False)
    machine_dir = STATE / name
    if machine_dir.exists():
        _unmount(machine_dir / "merged")
        shutil.rmtree(machine_dir, ignore_errors=True)
    for nspawn_state in (
        Path("/run/systemd/nspawn/propagate") / name,
        Path("/run/systemd/nspawn/unix-export") / name,
    ):
        shutil.rmtree(nspawn_state, ignore_errors=True)


def sweep_stale() -> list[int]:
    """Clean up after crashed runs: every unlocked slot's leftovers, and NAT if idle.

    Returns the slots that had something to clean. Safe while other sessions
    run: a slot in use is locked and left alone.
    """
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "slots").mkdir(exist_ok=True)
    names = {p.name for p in STATE.glob(f"{PREFIX}*")}
    for hierarchy in CGROUP_HIERARCHIES:
        names.update(p.name for p in (hierarchy / CGROUP_PARENT).glob(f"{PREFIX}*"))
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=False
    ).stdout
    names.update(m.group(1) for m in re.finditer(r"ve-(napkin-\d+)[@:]", links))
    slots = {
        int(m.group(1)) for m in map(re.compile(rf"{PREFIX}(\d+)").match, names) if m
    }
    cleaned = []
    for slot in sorted(slots):
        fd = _try_lock(STATE / "slots" / f"{slot}.lock")
        if fd is None:
            continue
        try:
            _remove_leftovers(slot)
            cleaned.append(slot)
        finally:
            os.close(fd)
    with FileLock(str(STATE / "nat.lock")):
        if not _live_slots():
            _nat_down()
    return cleaned


# --- NAT for apt and pip, shared by all live machines ------------------------


def _sysctl_path() -> Path:
    return Path("/proc/sys/net/ipv4/ip_forward")


def _nat_up() -> None:
    """Called under nat.lock by every machine; only the first one changes anything."""
    saved = STATE / "nat.json"
    if not saved.exists():
        _check_network_free()
        saved.write_text(json.dumps({"ip_forward": _sysctl_path().read_text().strip()}))
    original = json.loads(saved.read_text())["ip_forward"]
    ve = f'"ve-{PREFIX}*"'
    # Forward only what apt and pip need: DNS to any resolver, HTTP(S) out
    # (the Debian mirror and PyPI); nothing between machines, nothing else.
    # When the host did not route before, it still routes nothing else.
    others = "" if original == "1" else "        drop\n"
    ruleset = f"""
table inet {NFT_TABLE} {{
    chain forward {{
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
        iifname {ve} ip saddr {NETWORK} oifname != {ve} meta l4proto {{ tcp, udp }} th dport 53 accept
        iifname {ve} ip saddr {NETWORK} oifname != {ve} tcp dport {{ 80, 443 }} accept
        iifname {ve} drop
        oifname {ve} drop
{others}    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr {NETWORK} oifname != {ve} masquerade
    }}
}}
"""
    exists = subprocess.run(
        ["nft", "list", "table", "inet", NFT_TABLE], capture_output=True, check=False
    )
    if exists.returncode != 0:
        _run(["nft", "-f", "-"], input=ruleset)
    _sysctl_path().write_text("1\n")


def _nat_down() -> None:
    """Remove the table and restore ip_forward (caller holds nat.lock, no live slot)."""
    subprocess.run(
        ["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True, check=False
    )
    saved = STATE / "nat.json"
    if saved.exists():
        original = json.loads(saved.read_text())["ip_forward"]
        _sysctl_path().write_text(original + "\n")
        saved.unlink()


def _check_network_free() -> None:
    """NETWORK must not overlap any address or route on the host (ours excepted)."""
    out = _run(["ip", "-4", "-o", "route", "show", "table", "all"]).stdout
    out += _run(["ip", "-4", "-o", "addr", "show"]).stdout
    for line in out.splitlines():
        if f"ve-{PREFIX}" in line:
            continue
        for match in re.finditer(r"(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", line):
            try:
                net = ipaddress.ip_network(match.group(1), strict=False)
            except ValueError:
                continue
            if net.prefixlen > 0 and net.overlaps(NETWORK):
                raise MachineError(
                    f"{NETWORK} overlaps {net} on this host ({line.strip()}); "
                    "choose another range with NAPKIN_MACHINE_NET"
                )


# --- a machine ---------------------------------------------------------------


@dataclass
class SSHKey:
    """A throwaway client key pair."""

    private: Path

    @property
    def public(self) -> str:
        return Path(str(self.private) + ".pub").read_text().strip()

    @classmethod
    def generate(cls, directory: Path, name: str = "id_ed25519") -> SSHKey:
        directory.mkdir(parents=True, exist_ok=True)
        private = directory / name
        _run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"napkin-test-{name}",
                "-f",
                private,
            ]
        )
        return cls(private)


@dataclass
class Machine:
    """A booted throwaway Debian machine; use `boot()` and always `destroy()`."""

    release: str = "bookworm"
    slot: int = -1
    name: str = ""
    dir: Path = Path()
    address: str = ""
    host_address: str = ""
    key: SSHKey | None = None
    known_hosts: Path = Path()
    host_key: str = ""
    boots: int = 0
    _lock_fd: int | None = None
    _process: subprocess.Popen | None = None
    _log: object = None
    init_pid: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    # -- life cycle --

    @classmethod
    def boot(cls, release: str = "bookworm", key: SSHKey | None = None) -> Machine:
        """Build (once) the base, claim a slot, overlay, boot and wait for SSH."""
        require()
        started = time.monotonic()
        base = base_rootfs(release)
        machine = cls(release=release)
        machine.timings["base"] = time.monotonic() - started
        try:
            machine._create(base, key)
            machine._launch()
        except BaseException:
            machine.destroy()
            raise
        machine.timings["boot"] = time.monotonic() - started - machine.timings["base"]
        return machine

    def _create(self, base: Path, key: SSHKey | None) -> None:
        STATE.mkdir(parents=True, exist_ok=True)
        self.slot, self._lock_fd = _claim_slot()
        self.name = _slot_name(self.slot)
        subnet = _slot_subnet(self.slot)
        self.host_address, self.address = str(subnet[1]), str(subnet[2])
        self.dir = STATE / self.name
        for sub in ("upper", "work", "merged", "host"):
            (self.dir / sub).mkdir(parents=True)
        with FileLock(str(STATE / "nat.lock")):
            _nat_up()
        _run(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={base},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}",
                self.dir / "merged",
            ]
        )
        root = self.root
        (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        (root / "etc/hostname").write_text(self.name + "\n")
        (root / "etc/hosts").write_text(
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
        )
        # Its own host keys. Not RSA: generating one takes seconds of CPU on
        # a busy 2-core runner, and nothing here needs it.
        keys = []
        for kind in ("ed25519", "ecdsa"):
            path = f"/etc/ssh/ssh_host_{kind}_key"
            _run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    kind,
                    "-N",
                    "",
                    "-C",
                    f"root@{self.name}",
                    "-f",
                    root / path.lstrip("/"),
                ]
            )
            keys.append(f"HostKey {path}")
        (root / "etc/ssh/sshd_config.d/00-napkin-host-keys.conf").write_text(
            "# Written by the template's tests (tests/machines.py): no RSA host key.\n"
            + "\n".join(keys)
            + "\n"
        )
        self.host_key = (
            (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]
        )
        self.host_key = " ".join(self.host_key)
        self.known_hosts = self.dir / "host" / "known_hosts"
        self.known_hosts.write_text(f"{self.address} {self.host_key}\n")
        self.key = key or SSHKey.generate(self.dir / "host" / "client")
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(self.key.public + "\n")
        (ssh_dir / "authorized_keys").chmod(0o600)

    @property
    def root(self) -> Path:
        """The machine's file system as seen from the host (the overlay mount)."""
        return self.dir / "merged"

    @property
    def veth(self) -> str:
        return _veth(self.name)

    def _launch(self) -> None:
        started = time.monotonic()
        for cgroup in _cgroups(self.name):
            cgroup.mkdir(parents=True, exist_ok=True)
        self.boots += 1
        # Open for as long as nspawn runs; closed in _stop_nspawn().
        self._log = open(self.dir / "host" / f"console-{self.boots}.log", "wb")  # noqa: SIM115
        # The shell moves itself into the machine's own cgroups before exec'ing
        # nspawn, so everything the machine starts stays under one directory
        # that teardown can empty and remove.
        cmd = [
            *_in_cgroups(self.name),
            "systemd-nspawn",
            "--quiet",
            "-D",
            str(self.root),
            "-M",
            self.name,
            "-b",
            "--network-veth",
            "--register=no",
            "--keep-unit",
            "--console=passive",
            "--link-journal=no",
            "--resolv-conf=copy-host",
        ]
        self._process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.init_pid = self._wait(self._find_init, "the container's init process")
        self._wait(lambda: _link_exists(self.veth), f"the host end {self.veth}")
        _run(["ip", "addr", "add", f"{self.host_address}/30", "dev", self.veth])
        _run(["ip", "link", "set", self.veth, "up"])
        inside = ["nsenter", "-t", str(self.init_pid), "-n", "ip"]
        self._wait(
            lambda: (
                subprocess.run(
                    [*inside, "link", "show", "host0"], capture_output=True, check=False
                ).returncode
                == 0
            ),
            "host0 inside the machine",
        )
        _run([*inside, "addr", "add", f"{self.address}/30", "dev", "host0"])
        _run([*inside, "link", "set", "host0", "up"])
        _run([*inside, "route", "add", "default", "via", self.host_address])
        self._wait(self._ssh_ready, f"sshd on {self.address}")
        self.timings[f"launch-{self.boots}"] = time.monotonic() - started

    def spawn(self, cmd: list[str], **popen) -> subprocess.Popen:
        """Start a host-side helper of this machine (a git daemon, an S3 server, wrk).

        It runs in the machine's own host cgroup, so the sweep after a crashed
        run finds and ends it with the machine; stop it yourself when done.
        """
        return subprocess.Popen(
            [*_in_cgroups(f"{self.name}-host"), *map(str, cmd)], **popen
        )

    def _wait(self, probe, what: str, timeout: float = BOOT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise MachineError(
                    f"{self.name}: systemd-nspawn exited {self._process.returncode} "
                    f"while waiting for {what}:\n{self.console_tail()}"
                )
            result = probe()
            if result:
                return result
            time.sleep(0.05)
        raise MachineError(
            f"{self.name}: no {what} after {timeout:.0f}s:\n{self.console_tail()}"
        )

    def _find_init(self) -> int:
        nspawn = self._process.pid
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == nspawn:
                pid = int(stat.parent.name)
                status = (stat.parent / "status").read_text()
                nspid = re.search(r"^NSpid:\s*(.*)$", status, flags=re.MULTILINE)
                if nspid and nspid.group(1).split()[-1] == "1":
                    return pid
        return 0

    def _ssh_ready(self) -> bool:
        try:
            with socket.create_connection((self.address, 22), timeout=1):
                pass
        except OSError:
            return False
        return self.ssh("true", check=False, timeout=15).returncode == 0

    def console_tail(self, lines: int = 40) -> str:
        logs = sorted((self.dir / "host").glob("console-*.log"))
        if not logs:
            return "(no console log)"
        text = logs[-1].read_bytes().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _stop_nspawn(self, timeout: float = 60) -> int | None:
        """Wait for nspawn to exit (after poweroff/reboot or SIGTERM); SIGKILL at the end."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_cgroup(self.name)
            self._process.kill()
            return self._process.wait(10)
        finally:
            self._process = None
            if self._log is not None:
                self._log.close()
                self._log = None

    def shutdown(self) -> None:
        """Power the machine off (nspawn exits on SIGTERM after a clean shutdown)."""
        if self.running():
            self._process.send_signal(signal.SIGTERM)
        self._stop_nspawn()
        _kill_cgroup(self.name)
        subprocess.run(
            ["ip", "link", "del", self.veth], capture_output=True, check=False
        )

    def reboot(self) -> None:
        """`systemctl reboot` inside, then relaunch nspawn on the same overlay.

        nspawn exits when the machine reboots (it is not supervised by a host
        systemd); booting the same overlay again is what a VM's reboot is.
        """
        self.ssh("systemctl reboot", check=False, timeout=30)
        self._stop_nspawn()
        _kill_cgroup(self.name)
        subprocess.run(
            ["ip", "link", "del", self.veth], capture_output=True, check=False
        )
        self._launch()

    def destroy(self) -> None:
        """Stop the machine and remove everything it had on the host; idempotent."""
        try:
            if self._process is not None:
                # A throwaway machine needs no clean shutdown: its overlay is
                # deleted next. SIGKILL everything in its cgroups (nspawn too).
                _kill_cgroup(self.name)
                self._stop_nspawn(timeout=10)
        finally:
            if self.slot >= 0 and self._lock_fd is not None:
                _remove_leftovers(self.slot)
                with FileLock(str(STATE / "nat.lock")):
                    os.close(self._lock_fd)
                    self._lock_fd = None
                    if not _live_slots():
                        _nat_down()

    # -- using it --

    def ssh_options(self, key: SSHKey | None = None) -> list[str]:
        key = key or self.key
        return [
            "-i",
            str(key.private),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ServerAliveInterval=15",
        ]

    def ssh(
        self,
        command: str,
        *,
        user: str = "root",
        check: bool = True,
        input: str | None = None,
        timeout: float | None = 900,
        key: SSHKey | None = None,
        env: dict | None = None,
    ) -> subprocess.CompletedProcess:
        """Run a shell command over SSH; on failure (check) raise with its output."""
        cmd = ["ssh", *self.ssh_options(key), f"{user}@{self.address}", command]
        result = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
        if check and result.returncode != 0:
            raise MachineError(
                f"{self.name}: `{command}` as {user} exited {result.returncode}\n"
                f"--- stdout (tail)\n{result.stdout[-3000:]}\n"
                f"--- stderr (tail)\n{result.stderr[-3000:]}"
            )
        return result

    def put(self, local: Path, remote: str, *, user: str = "root") -> None:
        """Copy a local file, or a directory's contents, to `remote` over SSH."""
        local = Path(local)
        if local.is_dir():
            data = subprocess.run(
                ["tar", "-C", str(local), "-cf", "-", "."],
                capture_output=True,
                check=True,
            ).stdout
            unpack = (
                f"mkdir -p {shlex.quote(remote)} && tar -C {shlex.quote(remote)} -xf -"
            )
        else:
            data = local.read_bytes()
            unpack = f"cat > {shlex.quote(remote)}"
        cmd = ["ssh", *self.ssh_options(), f"{user}@{self.address}", unpack]
        result = subprocess.run(cmd, input=data, capture_output=True, check=False)
        if result.returncode != 0:
            raise MachineError(
                f"{self.name}: copying {local} to {remote} failed:\n"
                f"{result.stderr.decode(errors='replace')[-3000:]}"
            )

    def nsenter(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command in all the machine's namespaces (no SSH involved)."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-a", *cmd],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise MachineError(
                f"{self.name}: {shlex.join(cmd)} exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result

    def journal(self, unit: str | None = None, lines: int = 80) -> str:
        args = ["journalctl", "--no-pager", "-n", str(lines)]
        if unit:
            args += ["-u", unit]
        return self.nsenter(*args, check=False).stdout


def _link_exists(name: str) -> bool:
    return (
        subprocess.run(
            ["ip", "link", "show", name], capture_output=True, check=False
        ).returncode
        == 0
    )


# --- what a test can check after teardown ------------------------------------


def leftovers(machine: Machine) -> list[str]:
    """Everything of `machine` still on the host (empty after a clean destroy)."""
    found = []
    if _link_exists(machine.veth):
        found.append(f"link {machine.veth}")
    for cgroup in [*_cgroups(machine.name), *_cgroups(f"{machine.name}-host")]:
        if cgroup.exists():
            found.append(f"cgroup {cgroup}")
    if _is_mounted(machine.root):
        found.append(f"mount {machine.root}")
    if machine.dir.exists():
        found.append(f"directory {machine.dir}")
    if machine._process is not None and machine._process.poll() is None:
        found.append(f"process {machine._process.pid}")
    return found


def nat_active() -> bool:
    return (
        subprocess.run(
            ["nft", "list", "table", "inet", NFT_TABLE],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


# --- putting a baked project on a machine -------------------------------------

GIT_ENV = {
    "GIT_AUTHOR_NAME": "napkin tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "napkin tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_SYSTEM": "/dev/null",
}


def git(repo: Path, *args: str) -> str:
    """git in `repo` with a fixed identity and none of the host's configuration."""
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise MachineError(f"git {shlex.join(args)} in {repo}: {result.stderr.strip()}")
    return result.stdout.strip()


class GitRemote:
    """A bare repository on the host, served read-only by `git daemon` to one machine.

    It stands in for GitHub: the project pushes to it (`origin`) and the
    server fetches from it (``url``), on the host end of the machine's link
    only. Use as a context manager; the daemon stops on exit.
    """

    def __init__(self, project: Path, directory: Path, machine: Machine, name: str):
        self.project, self.machine = project, machine
        self.bare = directory / f"{name}.git"
        directory.mkdir(parents=True, exist_ok=True)
        git(
            directory,
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            str(self.bare),
        )
        if not (project / ".git").exists():
            git(project, "init", "--quiet", "--initial-branch=main")
        git(project, "remote", "add", "origin", str(self.bare))
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"git://{self.machine.host_address}:{self.port}/{self.bare.name}"

    def __enter__(self) -> Self:
        # Another process may take the port between our probe and git daemon's
        # bind: try a few.
        for _ in range(5):
            with socket.socket() as sock:
                sock.bind((self.machine.host_address, 0))
                self.port = sock.getsockname()[1]
            self.process = self.machine.spawn(
                [
                    "git",
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    "--informative-errors",
                    f"--listen={self.machine.host_address}",
                    f"--port={self.port}",
                    f"--base-path={self.bare.parent}",
                    str(self.bare.parent),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    socket.create_connection(
                        (self.machine.host_address, self.port), 1
                    ).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.process.terminate()
            self.process.wait(10)
        raise MachineError(f"git daemon did not start on {self.machine.host_address}")

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def commit(self, message: str, edit=None) -> str:
        """Commit everything in the project (after `edit(project)`), push, return the id."""
        if edit is not None:
            edit(self.project)
        git(self.project, "add", "-A")
        git(self.project, "commit", "--quiet", "--allow-empty", "-m", message)
        git(self.project, "push", "--quiet", "origin", "HEAD:main")
        return git(self.project, "rev-parse", "HEAD")


BROKEN_APP = """
import sys

if "gunicorn" in sys.argv[0]:
    raise RuntimeError("napkin tests: this revision fails its health check")
"""


def break_app(project: Path) -> None:
    """Make the project a revision whose web app cannot start (the rest still works).

    bin/release and the worker import the package as usual; gunicorn's workers
    fail to boot, so /healthz never reports this revision.
    """
    init = (
        project / project.name / "__init__.py"
    )  # the package is named like the project
    init.write_text(init.read_text() + BROKEN_APP)


def https(
    machine: Machine,
    domain: str,
    path: str,
    cert: Path,
    method: str = "GET",
    data: dict | None = None,
) -> tuple[int, str]:
    """A request from the host to nginx on the machine for `domain`, verifying `cert`.

    curl's --resolve sends the right SNI and Host without touching name
    resolution on the host.
    """
    cmd = [
        "curl",
        "-sS",
        "--max-time",
        "30",
        "--resolve",
        f"{domain}:443:{machine.address}",
        "--cacert",
        str(cert),
        "-X",
        method,
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
    ]
    if data is not None:
        cmd += ["-H", "Content-Type: application/json", "--data", json.dumps(data)]
    result = subprocess.run(
        [*cmd, f"https://{domain}{path}"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise MachineError(
            f"curl https://{domain}{path} on {machine.address}: {result.stderr}"
        )
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body
