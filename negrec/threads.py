"""negrec's thread policy: how many CPU threads torch uses.

Why it exists. torch (this CPU wheel: ATen's OpenMP backend, GNU libgomp; MKL on the same
runtime) starts one intra-op thread per CPU it sees, and by default an idle libgomp thread
*spins* for a while before it sleeps. On a machine whose cores are busy with other work, the
spinning threads take CPU time from the threads that hold the work, and every parallel region
waits for its slowest, descheduled thread: training slowed many times more than the CPU share it
lost (issue "Fast on a busy machine"). The policy:

* intra-op threads at most the CPUs this process may actually use: its CPU affinity
  (``os.sched_getaffinity``) capped by the cgroup CPU quota (v2 ``cpu.max``, v1
  ``cpu.cfs_quota_us``/``cpu.cfs_period_us``, the tightest along the process's cgroup path),
  not the host's core count;
* with the automatic count (the default), the count follows the CPUs other processes leave
  free, resampled once a second while negrec works (:mod:`negrec.cpu_load`): all of them on an
  idle machine, where spinning threads are fastest, fewer (down to 1) beside busy processes, so
  that no thread waits for a CPU that is not free. The OpenMP wait policy is left as the
  environment has it (libgomp's default spins briefly); with as many threads as free CPUs
  spinning costs nobody else. (An earlier policy set ``OMP_WAIT_POLICY=PASSIVE`` instead; on
  an idle machine it was slower than one thread: docs/performance.md);
* the native collator runs between training steps on the same intra-op pool (its
  ``at::parallel_for`` regions), never beside it, so collate and intra-op threads do not add up.

Overrides, strongest first: ``--threads`` (command line), ``NEGREC_THREADS``, then
``OMP_NUM_THREADS``; each takes a positive integer (a fixed count), ``auto`` (the CPUs
available, adapting to load) or ``off`` (``OMP_NUM_THREADS``: an integer only). ``off`` leaves
everything as torch and the environment have it.

Who applies it. Only processes negrec controls: the command line (:mod:`negrec.cli`) and the
benchmarks in ``benches/`` (``configure()`` at the start of their ``main``; not
``compare_recbole.py``, whose two libraries must run under the same settings). Importing negrec
or calling its library functions never changes torch's thread count or the environment; a
program that calls ``negrec.cli.main(argv)`` gets its own thread count back when the command
returns (:func:`configured`); a program that wants the policy calls :func:`configure`
explicitly.

This module is at the bottom of negrec's layers: it imports nothing from negrec but
:mod:`negrec.errors` and :mod:`negrec.cpu_load`, and imports torch only inside the functions
that need it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from negrec import cpu_load
from negrec.errors import UserError

__all__ = ["CpuBudget", "ThreadPolicy", "available_cpus", "cgroup_cpu_quota", "child_environment",
           "configure", "configured", "describe", "parse_threads_setting", "report",
           "resolve_policy"]

THREADS_ENV = "NEGREC_THREADS"
# environment variables that choose how idle OpenMP threads wait (reported, never set)
WAIT_ENV_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_SELF_CGROUP = Path("/proc/self/cgroup")
SETTING_HELP = "a positive integer, 'auto' (the CPUs available to the process) or 'off'"


# ----------------------------------------------------------------------------- CPUs available

@dataclass(frozen=True)
class CpuBudget:
    """The CPUs this process may use.

    ``affinity``: CPUs in its affinity mask; ``quota``: the cgroup CPU quota in CPUs (e.g. 1.5),
    ``None`` when there is none; ``usable``: threads worth running, the affinity capped by the
    quota rounded down, at least 1 (a thread beyond a fractional quota only gets the process
    throttled, which stalls every parallel region)."""

    affinity: int
    quota: float | None
    usable: int

    def describe(self) -> str:
        quota = "no cgroup CPU quota" if self.quota is None else f"cgroup quota {self.quota:g} CPUs"
        return f"{self.usable} (affinity {self.affinity} CPUs, {quota})"


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the OS has no affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def available_cpus(*, affinity: int | None = None, cgroup_root: Path = DEFAULT_CGROUP_ROOT,
                   self_cgroup: Path = DEFAULT_SELF_CGROUP) -> CpuBudget:
    """The CPUs this process may use (affinity and cgroup quota; see :class:`CpuBudget`).

    ``cgroup_root`` (where the cgroup file systems are mounted) and ``self_cgroup`` (the
    process's ``/proc/self/cgroup``) are parameters so that tests can point them at fakes."""
    affinity = affinity_cpus() if affinity is None else affinity
    quota = cgroup_cpu_quota(cgroup_root, self_cgroup)
    usable = affinity if quota is None else min(affinity, max(1, math.floor(quota)))
    return CpuBudget(affinity=affinity, quota=quota, usable=max(1, usable))


def cgroup_cpu_quota(cgroup_root: Path = DEFAULT_CGROUP_ROOT,
                     self_cgroup: Path = DEFAULT_SELF_CGROUP) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup path, cgroup v2 and v1 alike;
    ``None`` without one (or without cgroups, e.g. not Linux). Unreadable or malformed cgroup
    files count as no quota: they describe the host, not the user's input."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2: "0::/path"
            mount = _v2_mount(cgroup_root)
            if mount is not None:
                quotas += [q for d in _levels(mount, path) if (q := _v2_quota(d)) is not None]
        elif "cpu" in controllers.split(","):  # cgroup v1: "N:cpu,cpuacct:/path"
            for mount in _v1_cpu_mounts(cgroup_root):
                quotas += [q for d in _levels(mount, path) if (q := _v1_quota(d)) is not None]
    return min(quotas) if quotas else None


def _v2_mount(root: Path) -> Path | None:
    # pure v2: the root is the v2 mount; hybrid (v1 controllers + v2): it is root/unified
    for mount in (root, root / "unified"):
        if (mount / "cgroup.controllers").exists():
            return mount
    return None


def _v1_cpu_mounts(root: Path) -> list[Path]:
    # the cpu controller's mount; "cpu" is often a link to "cpu,cpuacct": read each once
    mounts = [m for m in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu") if m.is_dir()]
    return list({m.resolve(): m for m in mounts}.values())


def _levels(mount: Path, cgroup_path: str) -> list[Path]:
    """The directories of ``cgroup_path`` and its ancestors under ``mount`` that exist (a limit
    on an ancestor applies too). In a container the mount is often the container's own cgroup
    while the path still names it from the host's root; then only the mount itself exists."""
    parts = [p for p in cgroup_path.strip().split("/") if p]
    candidates = [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]
    return [d for d in candidates if d.is_dir()]


def _v2_quota(directory: Path) -> float | None:
    try:
        fields = (directory / "cpu.max").read_text().split()  # "max 100000" or "150000 100000"
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()  # -1: no quota
        period = (directory / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


# ----------------------------------------------------------------------------- the policy

@dataclass(frozen=True)
class ThreadPolicy:
    """What negrec's command line sets, and why.

    ``threads``: torch intra-op threads to set (``None``: leave torch's own setting, policy
    ``off``), the most the governor uses when ``adaptive``; ``threads_source``: which override
    or default chose it; ``cpus``: the CPUs available; ``adaptive``: the count follows the CPUs
    other work leaves free (:mod:`negrec.cpu_load`; the automatic count only: a number given
    by the user is kept as it is)."""

    threads: int | None
    threads_source: str
    cpus: CpuBudget
    adaptive: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_threads_setting(text: str, source: str) -> int | str:
    """A thread setting (``--threads``, ``NEGREC_THREADS``): a positive integer, ``"auto"`` or
    ``"off"``; anything else is a :class:`UserError` naming ``source``."""
    value = text.strip().lower()
    if value in ("auto", "off"):
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise UserError(f"{source}: expected {SETTING_HELP}; got {text!r}")
    return number


def _omp_num_threads(text: str) -> int:
    # OMP_NUM_THREADS may list one count per nesting level ("4,2"); the first is the outer team
    first = text.split(",")[0].strip()
    try:
        number = int(first)
    except ValueError:
        number = 0
    if number < 1:
        raise UserError(f"OMP_NUM_THREADS: expected a positive integer; got {text!r}")
    return number


def resolve_policy(threads: int | str | None = None, *, environ: Mapping[str, str] | None = None,
                   cpus: CpuBudget | None = None) -> ThreadPolicy:
    """The policy for ``threads`` (``--threads``: an integer, ``"auto"``, ``"off"`` or
    ``None`` for not given) under ``environ`` (default ``os.environ``) and ``cpus`` (default:
    :func:`available_cpus`). Pure: reads, sets nothing."""
    environ = os.environ if environ is None else environ
    cpus = available_cpus() if cpus is None else cpus
    setting: int | str | None = None
    source = ""
    if threads is not None:
        setting, source = (parse_threads_setting(threads, "--threads") if isinstance(threads, str)
                           else _positive(threads, "--threads")), "--threads"
    elif environ.get(THREADS_ENV, "").strip():
        setting, source = parse_threads_setting(environ[THREADS_ENV], THREADS_ENV), THREADS_ENV
    elif environ.get("OMP_NUM_THREADS", "").strip():
        setting, source = _omp_num_threads(environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    if setting == "off":
        return ThreadPolicy(threads=None, threads_source=f"{source}=off: torch's own setting",
                            cpus=cpus)
    if setting is None or setting == "auto":
        return ThreadPolicy(threads=cpus.usable, cpus=cpus, adaptive=True,
                            threads_source=(f"{source}=auto: " if source else "")
                            + "CPUs available, fewer while other work keeps some busy")
    return ThreadPolicy(threads=int(setting), threads_source=source, cpus=cpus)


def _positive(value: int, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{source}: expected {SETTING_HELP}; got {value!r}")
    return value


# ----------------------------------------------------------------------------- applying it

_configured: ThreadPolicy | None = None  # the policy configure() applied in this process


def configure(threads: int | str | None = None) -> ThreadPolicy:
    """Apply the policy to this process, explicitly (the library never does it on its own):
    torch's intra-op threads (``torch.set_num_threads``) and, for the automatic count, the
    governor that lowers them while other work keeps CPUs busy
    (:func:`negrec.cpu_load.install`; its first load sample takes 0.2 s). Returns the policy."""
    global _configured
    policy = resolve_policy(threads)
    cpu_load.uninstall()
    if policy.threads is not None:
        import torch

        torch.set_num_threads(policy.threads)
        if policy.adaptive:
            cpu_load.install(policy.threads)
    _configured = policy
    return policy


@contextlib.contextmanager
def configured(threads: int | str | None = None, *, owns_process: bool) -> Iterator[ThreadPolicy]:
    """:func:`configure` for a block of work (a command of negrec's command line).

    ``owns_process``: negrec runs as the program (the ``negrec`` console script, ``python -m
    negrec``, a benchmark): the policy stays. Otherwise (``negrec.cli.main(argv)`` called from a
    user's program or a test) it holds for the block only: the governor stops, and torch's
    previous count, and what :func:`report` says, are restored when it ends."""
    import torch

    global _configured
    before, before_policy = torch.get_num_threads(), _configured
    policy = configure(threads)
    try:
        yield policy
    finally:
        if not owns_process:
            cpu_load.uninstall()
            torch.set_num_threads(before)
            _configured = before_policy


def child_environment(policy: ThreadPolicy, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that starts a child Python process (one that does not apply the policy
    itself, e.g. a benchmark script) with ``policy``'s thread count from its first instruction:
    ``base`` (default ``os.environ``) plus ``OMP_NUM_THREADS``, which torch reads at start-up
    (a child that does not apply the policy has no governor). Policy ``off``: ``base``
    unchanged."""
    env = dict(os.environ if base is None else base)
    if policy.threads is not None:
        env["OMP_NUM_THREADS"] = str(policy.threads)
    return env


def wait_policy(environ: Mapping[str, str] | None = None) -> str:
    """One line: how idle OpenMP threads wait, as the environment sets it (negrec never sets it)."""
    environ = os.environ if environ is None else environ
    user_set = [f"{k}={environ[k]}" for k in WAIT_ENV_KEYS if k in environ]
    if user_set:
        return ", ".join(user_set) + " (the environment's)"
    return "the OpenMP runtime's default (libgomp: idle threads spin briefly, then sleep)"


def describe(policy: ThreadPolicy) -> dict[str, str]:
    """The policy as printed by ``negrec env``: label -> one line."""
    threads = ("torch's own setting" if policy.threads is None
               else f"{policy.threads} intra-op threads ({policy.threads_source})")
    if policy.threads is not None and policy.threads > policy.cpus.usable:
        threads += f", more than the {policy.cpus.usable} CPUs available"
    governor = cpu_load.installed()
    load = ("not adapted (a fixed count)" if not policy.adaptive else
            "adapted once a second to the CPUs other work leaves free" + (
                f"; now {governor.threads} threads, other work keeps {governor.others:.1f} CPUs "
                "busy" if governor is not None else ""))
    return {
        "threads": threads,
        "CPUs available": policy.cpus.describe(),
        "load": load,
        "OpenMP wait": wait_policy(),
        "collation": "between steps on the same intra-op pool (never beside it)",
        "overrides": "--threads N|auto|off, NEGREC_THREADS, OMP_NUM_THREADS",
    }


def report() -> dict[str, Any]:
    """For ``negrec env``: the policy :func:`configure` applied in this process (or, where it
    was not called, the one negrec's command line would apply, marked so), as the lines
    :func:`describe` prints and as data."""
    policy = _configured if _configured is not None else resolve_policy()
    lines = describe(policy)
    if _configured is None:
        lines["threads"] += " [not applied in this process: negrec's command line applies it]"
    return {"applied": _configured is not None, "lines": lines, "policy": policy.as_dict()}
