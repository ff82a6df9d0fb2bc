"""Progress of long work: bars that name the stage, and log lines when bars are off.

The library reports through one path: the ``negrec`` logger of :mod:`logging` (stage changes,
per-epoch validation figures, heartbeats) and, where the caller asked for them, tqdm bars.
It never configures logging handlers; the command line does (``negrec.cli`` shows INFO lines
on stderr), and a Python user decides with ``logging.getLogger("negrec")``.

A stage label (``with stage("train 2/15: input_ntr, seed 1"): ...``) prefixes every bar and
log line inside it, so nested work (an epoch inside a training run inside the demo) says where
it is: ``train 2/15: input_ntr, seed 1 | epoch 3/20``. With bars off (``--no-progress``) a
:class:`Progress` logs a heartbeat line at least every :data:`HEARTBEAT_S` seconds.
"""

from __future__ import annotations

import contextvars
import logging
import time
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

from negrec.cpu_load import adapt_threads

__all__ = ["HEARTBEAT_S", "Progress", "label", "log", "stage"]

#: The logger of the whole package.
log = logging.getLogger("negrec")

#: Longest silence, in seconds, of a :class:`Progress` whose bar is off.
HEARTBEAT_S = 30.0

_STAGE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("negrec_stage",
                                                                         default=())
T = TypeVar("T")


def label(text: str = "") -> str:
    """``text`` prefixed with the enclosing stage labels (``"a | b | text"``)."""
    return " | ".join((*_STAGE.get(), text) if text else _STAGE.get())


@contextmanager
def stage(text: str) -> Iterator[None]:
    """Everything inside is labelled ``text`` (nested stages add up); logs the stage's start."""
    token = _STAGE.set((*_STAGE.get(), text))
    log.info(label())
    try:
        yield
    finally:
        _STAGE.reset(token)


class Progress:
    """A tqdm bar labelled with the stage (``show``), or heartbeat log lines (``not show``).

    ``for x in Progress(items, "simulating histories", show=...)`` or as a context manager
    with :meth:`update`. ``total`` counts the units of work; ``initial`` those already done;
    ``heartbeat=False``: no log lines either (e.g. a data-parallel rank other than the first).
    """

    def __init__(self, iterable: Iterable[T] | None = None, desc: str = "", *, show: bool,
                 total: int | None = None, initial: int = 0, unit: str = "it",
                 heartbeat: bool = True) -> None:
        from tqdm.auto import tqdm

        self.iterable = iterable
        self.desc = label(desc)
        self.show = show
        self.heartbeat = heartbeat and not show
        self.total = total if total is not None else _len(iterable)
        self.n = initial
        self._last = time.monotonic()
        self.bar = tqdm(total=self.total, initial=initial, desc=self.desc, disable=not show,
                        leave=False, unit=unit)

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None, "Progress: iterate only when given an iterable"
        try:
            for x in self.iterable:
                yield x
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        self.bar.update(n)
        adapt_threads()  # a no-op unless the command line governs threads (negrec/cpu_load.py)
        if self.heartbeat and time.monotonic() - self._last >= HEARTBEAT_S:
            self._last = time.monotonic()
            of = f"/{self.total}" if self.total is not None else ""
            log.info("%s: %d%s", self.desc, self.n, of)

    def set_postfix(self, **values) -> None:
        self.bar.set_postfix(**values)

    def close(self) -> None:
        self.bar.close()


def _len(iterable) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
