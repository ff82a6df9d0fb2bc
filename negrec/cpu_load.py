"""Intra-op threads that follow the CPUs other work leaves free.

Why. On a machine whose cores are busy with other processes, torch's intra-op threads fight
them for CPUs that are not free: each parallel region waits for its slowest, descheduled thread,
and libgomp's idle threads spin before they sleep, taking CPU time from the threads holding the
work. Measured on 2 cores beside 2 busy processes, the fixed training run of
``benches/bench_contention.py`` was many times slower with 2 threads than with 1, while on an
idle machine 2 spinning threads were the fastest setting (docs/performance.md). No fixed setting
is right for both, so the command line measures the load and adapts.

How. :class:`ThreadGovernor` samples, at most once per :data:`INTERVAL_S`, how many of the CPUs
in this process's affinity mask other processes kept busy (``/proc/stat``: user, system, irq,
softirq and steal time of those CPUs, minus this process's own CPU time), and sets torch's
intra-op threads to the CPUs left free (rounded so that more than half a CPU of other work
counts as one taken), between 1 and the policy's count. Other work at a *lower* priority
(a positive nice value, ``/proc/stat``'s "nice" column) is not counted when this process runs at
nice 0: the scheduler gives it only what this process leaves. Long loops call
:func:`adapt_threads` (the training steps through :class:`negrec.progress.Progress`, catalogue
scoring per block); it does nothing unless a governor is installed, which only negrec's command
line and benchmarks do (:func:`negrec.threads.configure`), so library calls never change a
program's threads.

Where ``/proc/stat`` cannot be read (not Linux) no governor is installed and the count stays
fixed. Bottom layer: imports nothing from negrec, and torch only inside functions.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["INTERVAL_S", "ThreadGovernor", "adapt_threads", "install", "installed", "other_busy_cpus",
           "uninstall"]

#: Seconds between two load samples (a sample costs one read of /proc/stat, ~20 us).
INTERVAL_S = 1.0
#: Length of the first, blocking sample taken when a governor is installed, so that a command
#: started beside busy processes does not spend its first second fighting them.
FIRST_SAMPLE_S = 0.2
#: CPUs of other work below which no CPU counts as taken: kernel threads, a shell, and the
#: kernel time of low-priority processes (``/proc/stat`` counts only their user time as "nice";
#: a niced process that starts and imports torch spends a good part of a CPU in the kernel).
#: A busy competitor is above it even when spinning threads of ours take a third of its CPU.
TOLERANCE_CPUS = 0.5
PROC_STAT = Path("/proc/stat")
# /proc/stat's per-CPU columns: user nice system idle iowait irq softirq steal guest guest_nice
_BUSY_COLUMNS = (0, 2, 5, 6, 7)  # user, system, irq, softirq, steal (guest time is in user)
_NICE_COLUMN = 1


def _clock_ticks() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100


def busy_seconds(cpus: Sequence[int], *, count_nice: bool, stat: Path = PROC_STAT) -> float | None:
    """CPU-seconds the CPUs ``cpus`` have spent busy since boot (user, system, irq, softirq,
    steal; plus "nice" time when ``count_nice``), from ``stat``; ``None`` when it cannot be read
    or lacks one of them."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    columns = _BUSY_COLUMNS + ((_NICE_COLUMN,) if count_nice else ())
    wanted, ticks = {f"cpu{c}" for c in cpus}, 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if name in wanted:
            fields = rest.split()
            try:
                ticks += sum(int(fields[i]) for i in columns if i < len(fields))
            except ValueError:
                return None
            wanted.discard(name)
    return None if wanted else ticks / _clock_ticks()


def other_busy_cpus(busy_delta_s: float, own_delta_s: float, wall_delta_s: float) -> float:
    """CPUs that other work kept busy over a window: (busy CPU-seconds of our CPUs - our own
    CPU-seconds) / wall seconds, at least 0 (jiffy rounding can make it slightly negative)."""
    if wall_delta_s <= 0:
        return 0.0
    return max(0.0, (busy_delta_s - own_delta_s) / wall_delta_s)


def free_threads(others: float, cpus: int, maximum: int) -> int:
    """Threads worth running on ``cpus`` CPUs when other work keeps ``others`` of them busy:
    the CPUs left, a fraction above :data:`TOLERANCE_CPUS` counting as a whole CPU taken,
    between 1 and ``maximum``."""
    taken = max(0, math.ceil(others - TOLERANCE_CPUS))
    return max(1, min(maximum, cpus - taken))


class ThreadGovernor:
    """Keeps torch's intra-op threads at the CPUs other work leaves free (module docstring).

    ``maximum``: the policy's thread count (never exceeded); ``cpus``: the CPU numbers of the
    affinity mask; ``set_threads``: how a count is applied (``torch.set_num_threads``);
    ``clock`` / ``own_cpu`` / ``busy``: wall clock, this process's CPU seconds and the CPUs'
    busy seconds, parameters so that tests can drive it. ``history`` records each change as
    ``(seconds since start, others' CPUs, threads)``."""

    def __init__(self, maximum: int, cpus: Sequence[int], *, set_threads: Callable[[int], None],
                 clock: Callable[[], float] = time.monotonic,
                 own_cpu: Callable[[], float] = time.process_time,
                 busy: Callable[[], float | None] | None = None,
                 interval_s: float = INTERVAL_S) -> None:
        self.maximum, self.cpus = maximum, list(cpus)
        self._set, self._clock, self._own, self.interval_s = set_threads, clock, own_cpu, interval_s
        count_nice = _niceness() > 0  # our own time is then in the "nice" column
        self._busy = busy or (lambda: busy_seconds(self.cpus, count_nice=count_nice))
        self.threads = maximum
        self.others = 0.0
        self._start = clock()
        self._sample = self._read()
        self.history: list[tuple[float, float, int]] = []

    def _read(self) -> tuple[float, float, float | None]:
        return self._clock(), self._own(), self._busy()

    def tick(self, *, force: bool = False) -> int:
        """Resample when :attr:`interval_s` has passed since the last sample (or ``force``) and
        apply the new count if it changed; returns the count in force."""
        if not force and self._clock() - self._sample[0] < self.interval_s:
            return self.threads
        now = self._read()
        (t0, own0, busy0), (t1, own1, busy1) = self._sample, now
        self._sample = now
        if busy0 is None or busy1 is None:
            return self.threads
        self.others = other_busy_cpus(busy1 - busy0, own1 - own0, t1 - t0)
        wanted = free_threads(self.others, len(self.cpus), self.maximum)
        if wanted != self.threads:
            self._set(wanted)
            self.threads = wanted
            self.history.append((round(t1 - self._start, 3), round(self.others, 2), wanted))
        return self.threads


def _niceness() -> int:
    try:
        return os.nice(0)
    except (AttributeError, OSError):
        return 0


def _affinity() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


_governor: ThreadGovernor | None = None


def install(maximum: int, *, first_sample_s: float = FIRST_SAMPLE_S) -> ThreadGovernor | None:
    """Start governing torch's intra-op threads in this process (at most ``maximum``) after a
    first sample of ``first_sample_s`` seconds; ``None`` (nothing installed) where the load
    cannot be read. Replaces a governor installed before."""
    global _governor
    import torch

    cpus = _affinity()
    if busy_seconds(cpus, count_nice=False) is None:
        _governor = None
        return None
    _governor = ThreadGovernor(maximum, cpus, set_threads=torch.set_num_threads)
    if first_sample_s > 0:
        time.sleep(first_sample_s)
        _governor.tick(force=True)
    return _governor


def uninstall() -> None:
    """Stop governing (the caller restores the thread count it wants)."""
    global _governor
    _governor = None


def installed() -> ThreadGovernor | None:
    """The governor in force in this process, if any."""
    return _governor


def adapt_threads() -> None:
    """Called by long loops between units of work: with a governor installed, resamples the
    load once per :data:`INTERVAL_S` and adjusts torch's threads; otherwise does nothing (a
    library call never changes a program's threads). Must run on the thread that runs the
    work (torch's thread count is per calling thread under OpenMP)."""
    if _governor is not None:
        _governor.tick()
