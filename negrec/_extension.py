"""Loading ``negrec._C``, the compiled extension, which is built against exactly one torch.

Three outcomes, never a crash and never a silent fallback for a broken build:

* the extension loads (the normal case);
* negrec was installed without it (no ``_C`` and no build record): every native piece falls
  back to its pure-PyTorch equivalent, each with one warning at its first use
  (:func:`warn_fallback`; :func:`extension_available` is ``False``): the fused loss to
  ``negrec.ops.fused_loss_reference``, the collator to
  ``negrec.data.collate_reference.collate_python``, the popularity sampler's alias table to
  ``torch.multinomial``;
* it exists but was built against another torch: loading it raises
  :class:`ExtensionMismatchError` naming both versions and how to rebuild. (Loading it anyway
  could crash the interpreter: torch's C++ ABI is not stable across releases.)

It is loaded when this module is first imported: by ``negrec.ops``, the collator, the samplers
or ``negrec.build_info()``; ``import negrec`` alone (and reading data) does not. This module
imports torch first, whose libraries ``negrec._C`` links against: a process that imports
``negrec._C`` itself must have imported torch (or this module) before.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from types import ModuleType
from typing import Any

import torch

REBUILD_HINT = (
    "rebuild negrec against the installed torch with "
    "`pip install --no-build-isolation --force-reinstall --no-deps <path to negrec source>`, "
    "or install the torch it was built for"
)


class ExtensionMismatchError(ImportError):
    """negrec._C was compiled against a different torch than the one installed."""


def _release(version: str) -> str:
    # CPU and CUDA wheels of one release ("2.13.0+cpu", "2.13.0+cu130") share the C++ ABI that
    # negrec._C links against; different releases do not.
    return version.split("+", 1)[0]


def _load() -> tuple[ModuleType | None, ModuleType | None, str | None]:
    has_c = importlib.util.find_spec("negrec._C") is not None
    try:
        build_info = importlib.import_module("negrec._build_info")
    except ModuleNotFoundError:
        build_info = None
    if not has_c and build_info is None:
        return None, None, (
            "negrec was installed without its compiled extension negrec._C "
            "(e.g. imported from a source checkout that was never built)"
        )
    if build_info is None:
        raise ExtensionMismatchError(
            "negrec._C is present but negrec/_build_info.py is missing, so the torch it was "
            f"built against is unknown; {REBUILD_HINT}"
        )
    if not has_c:
        raise ImportError(
            "negrec/_build_info.py is present but negrec._C is missing: the installation is "
            f"incomplete; {REBUILD_HINT}"
        )
    built = build_info.TORCH_VERSION
    if _release(built) != _release(torch.__version__):
        raise ExtensionMismatchError(
            f"negrec._C was built against torch {built}, but torch {torch.__version__} is "
            f"installed; {REBUILD_HINT} (pip install torch=={_release(built)})"
        )
    try:
        ext = importlib.import_module("negrec._C")
    except ImportError as exc:
        raise ExtensionMismatchError(
            f"negrec._C (built against torch {built}) failed to load under torch "
            f"{torch.__version__}: {exc}; {REBUILD_HINT}"
        ) from exc
    return ext, build_info, None


_C, _BUILD_INFO, MISSING_REASON = _load()


def extension_available() -> bool:
    """Whether the compiled extension (``torch.ops.negrec`` kernels) is loaded."""
    return _C is not None


def cuda_kernels_available() -> bool:
    """Whether the extension was built with its CUDA kernels (they still need a GPU to run)."""
    return _C is not None and bool(_C.CUDA_KERNELS)


def build_info() -> dict[str, Any]:
    """How the extension was built (torch version, CUDA, sanitizers, ...), or why it is absent."""
    if _BUILD_INFO is None:
        return {"extension": False, "reason": MISSING_REASON}
    info = {k: v for k, v in vars(_BUILD_INFO).items() if k.isupper()}
    info["extension"] = True
    info["cpu_float_isa"] = _C.cpu_float_isa()
    return info


_warned: set[str] = set()


def warn_fallback(component: str, fallback: str) -> None:
    """The one policy for a missing extension: ``component`` serves through its pure-PyTorch
    ``fallback`` (slower), with one RuntimeWarning per component and process.
    (``negrec.ops.fused_loss`` words its own warning the same way.)"""
    if component in _warned:
        return
    _warned.add(component)
    warnings.warn(f"{component}: {MISSING_REASON}; using {fallback} (pure PyTorch, slower). "
                  "Install negrec with `pip install .` to build the native code.",
                  RuntimeWarning, stacklevel=3)
