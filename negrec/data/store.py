"""The event store: an event log as a folder of uncompressed ``.npy`` arrays and a JSON
manifest, opened by memory-mapping the arrays read-only (:meth:`negrec.data.log.EventLog.open`).

Opening maps the files and reads only their headers and the manifest: its time and memory do
not grow with the number of events, and every process that opens the store (DataLoader
workers, DDP ranks) shares the same pages of the operating system's page cache. The manifest
holds what the log needs besides its arrays (source, load report, item metadata names, titles),
what was checked when the store was written (value ranges, statistics), a SHA-256 of every
array file and a content hash over all of it.

On open, the manifest is checked against its content hash and every array file against its
recorded size, dtype and shape (cheap); :func:`verify` (``negrec data verify DIR``,
``EventLog.open(DIR, verify=True)``) also hashes every byte of every file.

The arrays of an opened store pickle by reference (:func:`reference`): the store's folder, the
array's name and the manifest's content hash, mapped again where they are unpickled, so that a
DataLoader worker started with ``spawn`` or ``forkserver`` (or any process a log is sent to)
shares the store's pages instead of receiving a private copy of its events.

This module knows files, not event logs (``negrec.data.log`` builds the EventLog), so that the
two do not import each other.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from negrec.errors import UserError

__all__ = ["FORMAT", "MANIFEST", "HoldsMappedArrays", "MappedArray", "StoreError", "read_store",
           "reference", "verify", "write_store"]

FORMAT, VERSION = "negrec-event-store", 1
MANIFEST = "manifest.json"
_HASH_CHUNK = 1 << 24


class StoreError(UserError):
    """A store that cannot be opened: missing, from another program, or not what its manifest
    says (truncated, edited, or written only in part)."""


class _HashingWriter:
    """A binary file that hashes (SHA-256) and counts what is written through it."""

    def __init__(self, f):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.size += len(view)
        return self.f.write(view)

    def __getattr__(self, name):
        return getattr(self.f, name)


def _content_hash(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON, without its own hash."""
    body = {k: v for k, v in manifest.items() if k != "content_hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_store(out: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any], *,
                overwrite: bool = False) -> Path:
    """Writes ``arrays`` (name -> array; no object arrays) and ``meta`` (JSON values) as a
    store in the folder ``out``, atomically: into a temporary folder beside it, renamed to
    ``out`` when complete. An ``out`` that exists is an error unless ``overwrite`` (then it is
    replaced)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists; pass overwrite=True to replace it")
    if out.exists() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not an event store (no {MANIFEST}); refusing to "
                        "replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        files = {}
        for name, array in arrays.items():
            array = np.asarray(array)
            if array.dtype.hasobject:
                raise TypeError(f"write_store: array {name!r} holds Python objects")
            path = tmp / f"{name}.npy"
            with open(path, "wb") as f:
                writer = _HashingWriter(f)
                np.save(writer, array, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            files[name] = {"file": path.name, "dtype": array.dtype.str, "shape": list(array.shape),
                           "bytes": writer.size, "sha256": writer.sha.hexdigest()}
        manifest = {"format": FORMAT, "version": VERSION, "arrays": files, **meta}
        manifest["content_hash"] = _content_hash(manifest)
        text = json.dumps(manifest, indent=1, allow_nan=False)
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old.{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _manifest(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such event store (a folder written by "
                                "`negrec data convert`)")
    path = folder / MANIFEST
    if not path.exists():
        raise StoreError(f"{folder}: not an event store (no {MANIFEST}; write one with "
                         "`negrec data convert`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: unreadable manifest ({exc}); the store is corrupt") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path}: not a negrec event store manifest (format "
                         f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("version") != VERSION:
        raise StoreError(f"{path}: event store version {manifest.get('version')!r}; this negrec "
                         f"reads version {VERSION} (convert the data again)")
    if manifest.get("content_hash") != _content_hash(manifest):
        raise StoreError(f"{path}: the manifest does not match its content hash (edited or "
                         "corrupt); convert the data again")
    return manifest


def read_store(folder: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays memory-mapped read-only, manifest) of the store ``folder``: reads the manifest
    and each array's header, and checks them against each other and the file sizes (time and
    memory independent of the number of events). The arrays are plain read-only ndarrays
    (views of the maps) that pickle by reference (:func:`reference`)."""
    folder = Path(folder).resolve()  # (a reference must hold wherever it is unpickled)
    manifest = _manifest(folder)
    arrays = {}
    for name, rec in manifest["arrays"].items():
        path = folder / rec["file"]
        if not path.exists():
            raise StoreError(f"{path}: missing from the event store {folder}")
        size = path.stat().st_size
        if size != rec["bytes"]:
            raise StoreError(f"{path}: {size} bytes, the manifest says {rec['bytes']} (truncated "
                             "or replaced); convert the data again")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise StoreError(f"{path}: not a readable .npy array ({exc})") from None
        if array.dtype.str != rec["dtype"] or list(array.shape) != rec["shape"]:
            raise StoreError(f"{path}: holds {array.dtype.str} {list(array.shape)}, the manifest "
                             f"says {rec['dtype']} {rec['shape']}; convert the data again")
        arrays[name] = _register(np.asarray(array), MappedArray(str(folder), name,
                                                                 manifest["content_hash"]))
    return arrays, manifest


# ---- pickling the mapped arrays by reference ---------------------------------------------------

@dataclass(frozen=True)
class MappedArray:
    """A reference to the whole array ``name`` of the store ``folder`` (absolute) whose
    manifest has ``content_hash``: unpickled, it is that array mapped again (the same array
    object for every reference to it in the process, while one is alive), or a
    :class:`StoreError` when the store is gone or was written again since."""

    folder: str
    name: str
    content_hash: str

    def __reduce__(self):
        return _remap, (self.folder, self.name, self.content_hash)


#: id of a mapped array -> (a weak reference to it, its MappedArray)
_MAPPED: dict[int, tuple[weakref.ref, MappedArray]] = {}
#: (folder, content hash, name) -> the array mapped last, while it is alive
_REMAPPED: "weakref.WeakValueDictionary[tuple[str, str, str], np.ndarray]" = \
    weakref.WeakValueDictionary()


def _register(array: np.ndarray, ref: MappedArray) -> np.ndarray:
    key = id(array)
    _MAPPED[key] = (weakref.ref(array, lambda _, key=key: _MAPPED.pop(key, None)), ref)
    _REMAPPED[(ref.folder, ref.content_hash, ref.name)] = array
    return array


def reference(value):
    """``value``, or the :class:`MappedArray` that pickles as it when it is a whole array of an
    opened store (a part, a copy or any other value is itself): what an object that holds
    such arrays pickles in their place (its ``__getstate__``)."""
    if isinstance(value, np.ndarray):
        entry = _MAPPED.get(id(value))
        if entry is not None and entry[0]() is value:
            return entry[1]
    return value


class HoldsMappedArrays:
    """A base for objects whose fields may be a store's mapped arrays (an opened EventLog, its
    item metadata, a split's rows): pickled, those arrays go by reference (:func:`reference`),
    the other fields by value; copied (``copy.copy``, ``copy.deepcopy``), every field is
    copied as for any object."""

    def __getstate__(self) -> dict:
        return {name: reference(value) for name, value in self.__dict__.items()}

    def __copy__(self):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __deepcopy__(self, memo: dict):
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update({name: copy.deepcopy(value, memo)
                             for name, value in self.__dict__.items()})
        return new


def _remap(folder: str, name: str, content_hash: str) -> np.ndarray:
    """The array a :class:`MappedArray` refers to, mapped (again)."""
    array = _REMAPPED.get((folder, content_hash, name))
    if array is not None:
        return array
    arrays, manifest = read_store(folder)
    if manifest["content_hash"] != content_hash:
        raise StoreError(f"{folder}: the event store was written again since this log was "
                         f"pickled (content hash {manifest['content_hash']}, was {content_hash}); "
                         "open it again")
    return arrays[name]


def verify(folder: str | Path) -> dict[str, Any]:
    """Checks every byte of every array file of the store against the SHA-256 in its
    manifest (and the manifest against its content hash); returns the manifest. Raises
    :class:`StoreError` naming the first file that differs."""
    folder = Path(folder)
    manifest = _manifest(folder)
    for name, rec in manifest["arrays"].items():
        path = folder / rec["file"]
        if not path.exists():
            raise StoreError(f"{path}: missing from the event store {folder}")
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                sha.update(chunk)
        if sha.hexdigest() != rec["sha256"]:
            raise StoreError(f"{path}: content differs from the manifest's SHA-256 (corrupt or "
                             "modified); convert the data again")
    return manifest
