"""Writing files safely: atomically (a crash or a full disk never leaves a torn file) and, for
JSON, strictly (NaN and infinities, which JSON has no spelling for, become ``null``).

This module imports nothing from negrec, so every layer may write through it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = ["append_csv", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "json_safe",
           "strict_json", "stale_temporaries", "write_json"]


def _atomic_write(path: str | Path, write: Callable[[Any], None]) -> Path:
    """Calls ``write(file)`` on a temporary file in the target folder, fsyncs it and renames
    it over ``path``: a crash at any moment leaves either the old or the new file, never a
    torn one. On failure the temporary file is removed and an OSError underneath (e.g. a full
    disk) is raised as an OSError naming ``path`` and what happened to the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    writer = None
    try:
        with os.fdopen(fd, "wb") as f:
            writer = _ErrorRecordingWriter(f)
            write(writer)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        # torch.save reports a failed write (e.g. a full disk) as an opaque RuntimeError of its
        # zip writer: surface the OSError underneath, with what it means for the file
        os_error = exc if isinstance(exc, OSError) else getattr(writer, "error", None)
        if os_error is not None and isinstance(exc, Exception):
            keep = "the previous file is unchanged" if path.exists() else "no file was written"
            raise OSError(os_error.errno, f"writing {path} failed ({os_error.strerror or os_error}); "
                          f"{keep}, the partial temporary file was removed", str(path)) from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)``, atomically (see :func:`_atomic_write`)."""
    import torch  # (here: writing data files needs no torch)

    return _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (see :func:`_atomic_write`)."""
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically (see :func:`_atomic_write`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def stale_temporaries(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """The temporary files an interrupted atomic write of one of ``names`` left in ``folder``
    (``.NAME.*.tmp``; a writer that is killed cannot remove its own)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for name in names for p in folder.glob(f".{name}.*.tmp") if p.is_file())


class _ErrorRecordingWriter:
    """The file object handed to the writer: remembers the first OSError of a write."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as exc:
            if self.error is None:
                self.error = exc
            raise

    def __getattr__(self, name):
        return getattr(self._f, name)


def json_safe(x: Any) -> Any:
    """``x`` as strict JSON values: NaN / inf (an undefined figure, e.g. a ratio whose
    denominator is 0) become ``None``; numpy scalars and arrays become Python numbers and lists;
    tuples become lists and mapping keys strings."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def strict_json(data: Any, **kwargs) -> str:
    """``data`` as strict JSON text (see :func:`json_safe`); ``kwargs`` go to ``json.dumps``."""
    return json.dumps(json_safe(data), allow_nan=False, **kwargs)


def write_json(path: str | Path, data: Any) -> Path:
    """Writes ``data`` as strict, indented JSON, atomically."""
    return atomic_write_text(path, strict_json(data, indent=2))


def append_csv(path: str | Path, rows: Sequence[Mapping[str, Any]],
               fields: Sequence[str] | None = None) -> Path:
    """Appends ``rows`` (dicts) to the long CSV ``path`` in the column order ``fields``
    (default: the keys of the first row), writing the header first when the file is new or
    empty; the benches' records.

    Raises ValueError, before writing anything, when a row's keys are not the columns, or the
    existing file's header is not (a bench whose columns changed would otherwise append rows
    under another version's header, and every later read would misplace them)."""
    path = Path(path)
    if not rows:
        return path
    fields = list(fields if fields is not None else rows[0])
    for i, row in enumerate(rows):
        if set(row) != set(fields):
            raise ValueError(f"append_csv({path}): row {i} has the keys {sorted(row)}; "
                             f"expected the columns {sorted(fields)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != fields:
            raise ValueError(f"{path}: its columns are {header}, these rows' are {fields}: "
                             f"write to another file (e.g. --csv) or move this one aside")
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return path
