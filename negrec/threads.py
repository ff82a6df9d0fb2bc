"""negrec's thread policy: how many CPU threads torch uses and how idle OpenMP threads wait.

Why it exists. torch (this CPU wheel: ATen's OpenMP backend, GNU libgomp; MKL on the same
runtime) starts one intra-op thread per CPU it sees, and by default an idle libgomp thread
*spins* for a while before it sleeps. On a machine whose cores are busy with other work, the
spinning threads take CPU time from the threads that hold the work, and every parallel region
waits for its slowest, descheduled thread: training slowed many times more than the CPU share it
lost (issue "Fast on a busy machine"). The policy:

* intra-op threads = the CPUs this process may actually use: its CPU affinity
  (``os.sched_getaffinity``) capped by the cgroup CPU quota (v2 ``cpu.max``, v1
  ``cpu.cfs_quota_us``/``cpu.cfs_period_us``, the tightest along the process's cgroup path),
  not the host's core count;
* idle OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``: sleep at once instead of
  spinning). libgomp reads this variable once, when it is loaded (at ``import torch``), so it
  must be in the environment before that; setting it later has no effect;
* the native collator runs between training steps on the same intra-op pool (its
  ``at::parallel_for`` regions), never beside it, so collate and intra-op threads do not add up.

Overrides, strongest first: ``--threads`` (command line), ``NEGREC_THREADS``, then
``OMP_NUM_THREADS``; each takes a positive integer, ``auto`` (the CPUs available) or ``off``
(``OMP_NUM_THREADS``: an integer only). ``off`` leaves everything as torch and the environment
have it (negrec's behaviour before this policy). A user's own ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT`` is left as it is.

Who applies it. Only processes negrec controls: the command line (:mod:`negrec.cli`) and the
benchmarks in ``benches/`` (``configure(replay=True)`` at the start of their ``main``; not
``compare_recbole.py``, whose two libraries must run under the same settings). Importing negrec
or calling its library functions never changes torch's thread count or the environment; a
program that calls ``negrec.cli.main(argv)`` gets its own thread count back when the command
returns (:func:`configured`); a program that wants the policy calls :func:`configure`
explicitly.

This module is at the bottom of negrec's layers: it imports nothing from negrec but
:mod:`negrec.errors`, and imports torch only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from negrec.errors import UserError

__all__ = ["CpuBudget", "ThreadPolicy", "available_cpus", "cgroup_cpu_quota", "child_environment",
           "configure", "configured", "describe", "openmp_runtime_loaded", "parse_threads_setting", "report",
           "resolve_policy"]

THREADS_ENV = "NEGREC_THREADS"
# set (to "1") beside OMP_WAIT_POLICY by negrec's command line, so that `negrec env` and child
# processes can tell negrec's default from a user's choice
WAIT_SET_BY_NEGREC_ENV = "NEGREC_SET_OMP_WAIT_POLICY"
# environment variables that choose how idle OpenMP threads wait; a user who sets any of them
# keeps their choice
WAIT_ENV_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
PASSIVE_WAIT = {"OMP_WAIT_POLICY": "PASSIVE"}
DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_SELF_CGROUP = Path("/proc/self/cgroup")
# OpenMP runtimes whose presence in /proc/self/maps means one is loaded (libgomp: GNU, torch's
# Linux wheels; libiomp5: Intel; libomp: LLVM)
OPENMP_LIBRARIES = ("libgomp", "libiomp5", "libomp")
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
    ``off``); ``threads_source``: which override or default chose it; ``cpus``: the CPUs
    available; ``wait_env``: environment variables that must be in place before the OpenMP
    runtime loads (empty: leave the wait policy as the environment has it); ``wait_source``:
    why."""

    threads: int | None
    threads_source: str
    cpus: CpuBudget
    wait_env: dict[str, str] = field(default_factory=dict)
    wait_source: str = ""

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
                            cpus=cpus, wait_env={},
                            wait_source=f"{source}=off: as the environment has it")
    if setting is None or setting == "auto":
        count, source = cpus.usable, (f"{source}=auto: " if source else "") + "CPUs available"
    else:
        count = int(setting)
    wait_env, wait_source = _wait_policy(environ)
    return ThreadPolicy(threads=count, threads_source=source, cpus=cpus, wait_env=wait_env,
                        wait_source=wait_source)


def _positive(value: int, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{source}: expected {SETTING_HELP}; got {value!r}")
    return value


def _wait_policy(environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    user_set = {k: environ[k] for k in WAIT_ENV_KEYS if k in environ}
    if user_set and environ.get(WAIT_SET_BY_NEGREC_ENV) != "1":
        return {}, "the environment's " + ", ".join(f"{k}={v}" for k, v in user_set.items())
    return dict(PASSIVE_WAIT), "negrec's default: idle threads sleep instead of spinning"


# ----------------------------------------------------------------------------- applying it

def openmp_runtime_loaded() -> bool:
    """Whether an OpenMP runtime is already loaded in this process (it has then read its wait
    policy). Reads ``/proc/self/maps``; where that is missing, an imported torch counts as one."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "torch" in sys.modules
    return any(lib in maps for lib in OPENMP_LIBRARIES)


def missing_wait_env(policy: ThreadPolicy, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``policy.wait_env`` that ``environ`` (default ``os.environ``) lacks."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in policy.wait_env.items() if environ.get(k) != v}


_configured: ThreadPolicy | None = None  # the policy configure() applied in this process
_wait_set_before_load = False  # configure() put the wait policy in os.environ before one loaded


def configure(threads: int | str | None = None, *, replay: bool = False) -> ThreadPolicy:
    """Apply the policy to this process, explicitly (the library never does it on its own):
    the wait policy, then torch's intra-op threads (``torch.set_num_threads``). Returns it.

    The wait policy takes effect only if it is in the environment when the OpenMP runtime
    loads, i.e. at ``import torch``, which ``import negrec`` does. So in a program that imports
    negrec it comes from the environment the program started with (export
    ``OMP_WAIT_POLICY=PASSIVE``), or from ``replay=True``: the process is replaced by the same
    command line with the wait policy in its environment (:func:`replay_with_wait_env`; what
    negrec's command line does). Otherwise only the thread count changes, and :func:`report`
    says so. (Where no OpenMP runtime is loaded yet, the policy is put in ``os.environ``.)"""
    global _configured, _wait_set_before_load
    policy = resolve_policy(threads)
    missing = missing_wait_env(policy)
    if missing and not openmp_runtime_loaded():
        os.environ.update(missing, **{WAIT_SET_BY_NEGREC_ENV: "1"})
        _wait_set_before_load = True
    elif missing and replay:
        replay_with_wait_env(missing)
    if policy.threads is not None:
        import torch

        torch.set_num_threads(policy.threads)
    _configured = policy
    return policy


@contextlib.contextmanager
def configured(threads: int | str | None = None, *, owns_process: bool) -> Iterator[ThreadPolicy]:
    """:func:`configure` for a block of work (a command of negrec's command line).

    ``owns_process``: negrec runs as the program (the ``negrec`` console script, ``python -m
    negrec``, a benchmark): the wait policy is put in place by a restart
    (``configure(replay=True)``) and the policy stays. Otherwise (``negrec.cli.main(argv)``
    called from a user's program or a test) the thread count holds for the block only: torch's
    previous count, and what :func:`report` says, are restored when it ends."""
    import torch

    global _configured
    before, before_policy = torch.get_num_threads(), _configured
    policy = configure(threads, replay=owns_process)
    try:
        yield policy
    finally:
        if not owns_process:
            torch.set_num_threads(before)
            _configured = before_policy


def replay_with_wait_env(missing: Mapping[str, str]) -> None:
    """Replace this process with the same command line plus ``missing`` in its environment
    (negrec's command line: ``import negrec`` loads torch, hence the OpenMP runtime, before the
    command can set its wait policy). Costs one more interpreter start and ``import torch``.
    Returns without doing anything where the command line cannot be replayed (not POSIX, a
    script read from stdin, an interpreter embedded without ``sys.orig_argv``)."""
    argv = list(getattr(sys, "orig_argv", []))
    if os.name != "posix" or not _replayable(argv[1:]):
        return
    env = dict(os.environ, **missing, **{WAIT_SET_BY_NEGREC_ENV: "1"})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


def _replayable(interpreter_args: list[str]) -> bool:
    """Whether the interpreter's arguments run negrec in a way that can be started again:
    ``-m negrec``, ``-c CODE`` or a script file (the ``negrec`` console script); not a script
    read from stdin."""
    args = iter(interpreter_args)
    for arg in args:
        if arg in ("-m", "-c"):
            return True
        if arg in ("-X", "-W", "--check-hash-based-pycs"):  # options that take a value
            next(args, None)
        elif arg == "-" or not arg.startswith("-"):
            return arg != "-" and Path(arg).is_file()
    return False


def child_environment(policy: ThreadPolicy, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that starts a child Python process (one that does not apply the policy
    itself, e.g. a benchmark script) with ``policy`` in force from its first instruction:
    ``base`` (default ``os.environ``) plus the wait policy and ``OMP_NUM_THREADS``, which
    the OpenMP runtime and torch read at start-up. Policy ``off``: ``base`` unchanged."""
    env = dict(os.environ if base is None else base)
    if policy.wait_env:
        env.update(policy.wait_env, **{WAIT_SET_BY_NEGREC_ENV: "1"})
    if policy.threads is not None:
        env["OMP_NUM_THREADS"] = str(policy.threads)
    return env


def startup_environment() -> dict[str, str] | None:
    """The environment this process was started with (``/proc/self/environ``): what an OpenMP
    runtime loaded at start-up read. ``None`` where it cannot be read."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return None
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {k: v for k, _, v in pairs}


def wait_policy_in_effect(policy: ThreadPolicy) -> str:
    """One line: how idle OpenMP threads of this process wait, as far as negrec can tell (the
    policy counts as in effect when its variables were in the environment the process started
    with, or :func:`configure` set them before an OpenMP runtime loaded)."""
    if not policy.wait_env:
        return f"unchanged ({policy.wait_source})"
    setting = ", ".join(f"{k}={v}" for k, v in policy.wait_env.items())
    at_start = startup_environment()
    if at_start is None:  # no /proc: judge by the current environment
        at_start = dict(os.environ)
    if _wait_set_before_load or not missing_wait_env(policy, at_start):
        return f"{setting} ({policy.wait_source})"
    if openmp_runtime_loaded():
        return (f"{setting} not in effect: the OpenMP runtime loaded before negrec could set it "
                "(start the process with it in the environment)")
    return f"{setting} not set yet"


def describe(policy: ThreadPolicy) -> dict[str, str]:
    """The policy as printed by ``negrec env``: label -> one line."""
    threads = ("torch's own setting" if policy.threads is None
               else f"{policy.threads} intra-op threads ({policy.threads_source})")
    if policy.threads is not None and policy.threads > policy.cpus.usable:
        threads += f", more than the {policy.cpus.usable} CPUs available"
    return {
        "threads": threads,
        "CPUs available": policy.cpus.describe(),
        "OpenMP wait": wait_policy_in_effect(policy),
        "collation": "between steps on the same intra-op pool (never beside it)",
        "overrides": "--threads N|auto|off, NEGREC_THREADS, OMP_NUM_THREADS; "
                     "OMP_WAIT_POLICY or GOMP_SPINCOUNT",
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
