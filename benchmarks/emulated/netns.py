"""An emulated data center on one box: network namespaces as hosts, a bridge as the switch.

Layout for ``N`` hosts (all names start with :data:`PREFIX`, so leftovers of a crashed run are
recognisable and removed before the next one):

* namespace ``dmtbsw`` holds the switch: bridge ``br0`` and one switch-side veth ``sH`` per host;
* namespace ``dmtbH`` (H = 0..N-1) is host H: ``lo`` and the host-side veth ``eth0`` with the
  private test address ``10.77.0.(H+1)/24``. Ranks of host H run inside this namespace
  (:func:`enter_netns`) with ``GLOO_SOCKET_IFNAME=eth0``: traffic between ranks of the same host
  goes to the host's own address and takes the local route (loopback, unthrottled); traffic to
  another host crosses ``eth0 -> sH -> br0 -> sG -> eth0``.
* Both ends of every veth are shaped on egress (``tbf`` for the rate, ``netem`` for the delay as
  its child), so a host's NIC is limited to ``rate`` in each direction like a real NIC, and one
  cross-host packet sees ``2 x delay`` one way (host egress + switch egress).

Nothing is created in the root namespace; deleting the ``N + 1`` namespaces removes every veth and
the bridge. :class:`Emulation` is a context manager that tears down in ``finally`` and on
SIGINT/SIGTERM; :func:`cleanup_leftovers` runs first, so setup is idempotent. A lock file
(:data:`LOCK_FILE`, ``flock``) keeps two runs on one machine from deleting each other's network.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from dmt_compile.errors import DmtError

__all__ = ["NetnsUnavailable", "EmulationError", "Emulation", "LinkSpec", "parse_rate", "parse_time",
           "check_netns_permitted", "cleanup_leftovers", "list_leftovers", "enter_netns", "PREFIX",
           "HOST_IFNAME", "SUBNET", "RankNetns", "rank_cores", "host_ns", "bench_running"]

PREFIX = "dmtb"
SWITCH_NS = PREFIX + "sw"
HOST_IFNAME = "eth0"
SUBNET = "10.77.0"
CLONE_NEWNET = 0x40000000
LOCK_FILE = "/run/dmtb-bench.lock" if os.path.isdir("/run") else "/tmp/dmtb-bench.lock"
_NS_RE = re.compile(rf"^{PREFIX}(sw|\d+)$")


class NetnsUnavailable(DmtError):
    """Network namespaces cannot be used here (not root, no iproute2, or `ip netns add` refused)."""


class EmulationError(DmtError):
    """Building or shaping the emulated network failed."""


def _ip_bin() -> str:
    return shutil.which("ip") or "/usr/sbin/ip"


def _tc_bin() -> str:
    return shutil.which("tc") or "/usr/sbin/tc"


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise EmulationError(f"command {' '.join(cmd)!r} failed ({proc.returncode}): {proc.stderr.strip()}",
                             "run as root on Linux with iproute2; see docs/BENCHMARKS.md")
    return proc


_UNITS_BITS = {"": 1, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
               "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}


def parse_rate(text: str | float) -> float:
    """A tc-style rate (``1gbit``, ``500mbit``, ``100mbps`` = bytes) -> bits per second."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS_BITS:
        raise EmulationError(f"cannot parse rate {text!r}", "write e.g. 1gbit, 500mbit, 10gbit")
    bits = float(m.group(1)) * _UNITS_BITS[m.group(2).lower()]
    if bits <= 0:
        raise EmulationError(f"rate {text!r} must be positive", "write e.g. 1gbit")
    return bits


def parse_time(text: str | float | None) -> float:
    """A tc-style time (``100us``, ``1ms``, ``0``) -> seconds."""
    if text is None:
        return 0.0
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|ms|us|usec|msec|sec|)\s*", str(text))
    if not m:
        raise EmulationError(f"cannot parse time {text!r}", "write e.g. 100us, 1ms, 0")
    scale = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "usec": 1e-6}[m.group(2)]
    return float(m.group(1)) * scale


@dataclass(frozen=True)
class LinkSpec:
    """Shaping of every host NIC (each direction): ``rate_bits`` bit/s, ``delay_s`` per egress."""

    rate_bits: float
    delay_s: float = 0.0

    @property
    def rate_bytes(self) -> float:
        return self.rate_bits / 8.0

    def tc_args(self, dev: str, ns: str) -> list[list[str]]:
        rate = f"{int(self.rate_bits)}bit"
        # burst must hold at least rate/HZ bytes; 64 KiB (or ~1 ms of traffic) keeps tbf accurate at 1-10 Gbit/s
        burst = max(64 * 1024, int(self.rate_bytes * 1e-3))
        tc = _tc_bin()
        cmds = [[_ip_bin(), "netns", "exec", ns, tc, "qdisc", "replace", "dev", dev, "root", "handle", "1:",
                 "tbf", "rate", rate, "burst", str(burst), "latency", "100ms"]]
        if self.delay_s > 0:
            cmds.append([_ip_bin(), "netns", "exec", ns, tc, "qdisc", "replace", "dev", dev, "parent", "1:1",
                         "handle", "10:", "netem", "delay", f"{self.delay_s * 1e6:.0f}us", "limit", "100000"])
        return cmds


def check_netns_permitted() -> None:
    """Raise :class:`NetnsUnavailable` unless we are root and `ip netns add` works."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise NetnsUnavailable("the emulated multi-host benchmark needs root (network namespaces, veth, tc)",
                               "run it as root (e.g. sudo), or in a container with CAP_NET_ADMIN and CAP_SYS_ADMIN")
    if not os.path.exists(_ip_bin()) or not os.path.exists(_tc_bin()):
        raise NetnsUnavailable("iproute2 ('ip' and 'tc') is not installed", "install iproute2")
    probe = PREFIX + "probe"
    subprocess.run([_ip_bin(), "netns", "del", probe], capture_output=True)
    proc = subprocess.run([_ip_bin(), "netns", "add", probe], capture_output=True, text=True)
    subprocess.run([_ip_bin(), "netns", "del", probe], capture_output=True)
    if proc.returncode != 0:
        raise NetnsUnavailable(f"`ip netns add` is not permitted here: {proc.stderr.strip()}",
                               "run on a Linux host (or a privileged container) where network namespaces work")


def bench_running() -> bool:
    """Whether another emulated benchmark holds the machine's lock right now."""
    try:
        with open(LOCK_FILE, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def list_leftovers() -> list[str]:
    """Names of this module's namespaces that currently exist."""
    proc = subprocess.run([_ip_bin(), "netns", "list"], capture_output=True, text=True)
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    return sorted(n for n in names if _NS_RE.match(n) or n == PREFIX + "probe")


def cleanup_leftovers() -> list[str]:
    """Delete every namespace (hence veth and bridge) this module may have created; return their names."""
    gone = list_leftovers()
    for name in gone:
        subprocess.run([_ip_bin(), "netns", "del", name], capture_output=True)
    return gone


def host_ns(host: int) -> str:
    return f"{PREFIX}{host}"


def host_addr(host: int) -> str:
    return f"{SUBNET}.{host + 1}"


class Emulation:
    """``with Emulation(num_hosts, LinkSpec(1e9, 100e-6)) as emu:`` builds the network, always removes it."""

    def __init__(self, num_hosts: int, link: LinkSpec, lock_wait_s: float = 0.0):
        self.lock_wait_s = lock_wait_s  # wait this long for another run's lock before giving up
        if not 1 <= num_hosts <= 200:
            raise EmulationError(f"{num_hosts} hosts is out of range", "emulate 1..200 hosts")
        self.num_hosts = num_hosts
        self.link = link
        self._old_handlers: dict[int, Any] = {}
        self._lock: Any = None
        self.up = False

    # ---- setup / teardown -------------------------------------------------------------
    def setup(self) -> None:
        check_netns_permitted()
        self._lock = open(LOCK_FILE, "w")
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    self._lock.close()
                    self._lock = None
                    raise EmulationError("another emulated benchmark is running on this machine (it holds "
                                         f"{LOCK_FILE})", "wait for it to finish; runs cannot share the namespaces")
                time.sleep(1.0)
        cleanup_leftovers()
        ip = _ip_bin()
        try:
            _run(ip, "netns", "add", SWITCH_NS)
            _run(ip, "-n", SWITCH_NS, "link", "add", "br0", "type", "bridge")
            _run(ip, "-n", SWITCH_NS, "link", "set", "br0", "up")
            _run(ip, "-n", SWITCH_NS, "link", "set", "lo", "up")
            for h in range(self.num_hosts):
                ns, sw = host_ns(h), f"s{h}"
                _run(ip, "netns", "add", ns)
                _run(ip, "-n", ns, "link", "add", HOST_IFNAME, "type", "veth", "peer", "name", sw, "netns", SWITCH_NS)
                _run(ip, "-n", ns, "link", "set", "lo", "up")
                _run(ip, "-n", ns, "addr", "add", f"{host_addr(h)}/24", "dev", HOST_IFNAME)
                _run(ip, "-n", ns, "link", "set", HOST_IFNAME, "up")
                _run(ip, "-n", SWITCH_NS, "link", "set", sw, "master", "br0")
                _run(ip, "-n", SWITCH_NS, "link", "set", sw, "up")
                for cmd in self.link.tc_args(HOST_IFNAME, ns) + self.link.tc_args(sw, SWITCH_NS):
                    proc = _run(*cmd, check=False)
                    if proc.returncode != 0 and "netem" in cmd and "unknown" in proc.stderr:
                        raise EmulationError(
                            f"the kernel ({os.uname().release}) has no netem qdisc, so link delay "
                            f"({self.link.delay_s * 1e6:.0f} us) cannot be emulated: {proc.stderr.strip()}",
                            "leave out --inter-delay (bandwidth shaping with tbf still works), or run on a "
                            "kernel with sch_netem")
                    if proc.returncode != 0:
                        raise EmulationError(f"command {' '.join(cmd)!r} failed ({proc.returncode}): "
                                             f"{proc.stderr.strip()}", "run as root on Linux with iproute2")
            self.up = True
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> list[str]:
        """Delete every namespace of the emulation (idempotent); return what was removed."""
        self.up = False
        if self._lock is None:  # never set up (or another run holds the lock): touch nothing
            return []
        try:
            return cleanup_leftovers()
        finally:
            self._lock.close()
            self._lock = None

    def set_link(self, link: LinkSpec) -> None:
        """Reshape every host NIC (both veth ends) to ``link`` while the emulation is up."""
        self.link = link
        for h in range(self.num_hosts):
            for cmd in link.tc_args(HOST_IFNAME, host_ns(h)) + link.tc_args(f"s{h}", SWITCH_NS):
                _run(*cmd)

    def qdisc_stats(self) -> dict[str, str]:
        """`tc -s qdisc` of every host NIC (for debugging drops/overlimits)."""
        out = {}
        for h in range(self.num_hosts):
            proc = _run(_ip_bin(), "netns", "exec", host_ns(h), _tc_bin(), "-s", "qdisc", "show", "dev",
                        HOST_IFNAME, check=False)
            out[host_ns(h)] = proc.stdout
        return out

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.teardown()
        previous = self._old_handlers.get(signum)
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self) -> "Emulation":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: rely on finally only
                pass
        try:
            self.setup()
        except BaseException:
            self._restore_handlers()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.teardown()
        finally:
            self._restore_handlers()

    def _restore_handlers(self) -> None:
        for sig, handler in self._old_handlers.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):
                pass
        self._old_handlers.clear()


def enter_netns(name: str) -> None:
    """Move the calling thread (call it before any thread or socket is made) into namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsUnavailable(f"setns into {name!r} failed: {os.strerror(err)}", "run as root")
    finally:
        os.close(fd)


def rank_cores(world: int, cores: list[int]) -> list[int]:
    """The core each rank is pinned to: consecutive ranks share a core (a host's ranks stay together)."""
    return [cores[r * len(cores) // world] for r in range(world)]


class RankNetns:
    """Picklable per-rank hook for ``launch_local(child_setup=...)``: rank r joins host r // L's namespace
    and, when ``cores`` is given, is pinned to ``cores[r]`` (before any thread, so gloo's threads too)."""

    def __init__(self, local_size: int, cores: list[int] | None = None):
        self.local_size, self.cores = local_size, cores

    def __call__(self, rank: int) -> None:
        enter_netns(host_ns(rank // self.local_size))
        os.environ["GLOO_SOCKET_IFNAME"] = HOST_IFNAME
        if self.cores is not None:
            os.sched_setaffinity(0, {self.cores[rank]})
