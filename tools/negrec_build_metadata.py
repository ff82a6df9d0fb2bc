"""scikit-build-core metadata provider: pin the runtime torch to the torch we compile against.

negrec._C is compiled against one torch and refuses to load under another, so the wheel's
``torch`` requirement must be exactly the torch present at build time: the build-system pin
under an isolated build, the environment's torch under ``--no-build-isolation``. The local
version label (``+cpu``, ``+cu130``) is dropped: CPU and CUDA builds of one torch release share
the C++ ABI that negrec._C links against, and pip cannot resolve local labels from PyPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _torch_release() -> str:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the build requires torch
        raise RuntimeError(
            "negrec's build needs torch importable (build-system requires torch; with "
            "--no-build-isolation, install torch first: pip install torch==2.13.0)"
        ) from exc
    return torch.__version__.split("+", 1)[0]


def dynamic_metadata(
    field: str, settings: Mapping[str, Any], project: Mapping[str, Any] | None = None
) -> list[str]:
    if field != "dependencies":
        raise RuntimeError(f"negrec_build_metadata only provides 'dependencies', not {field!r}")
    extra = settings.get("requires", [])
    if not isinstance(extra, list) or not all(isinstance(r, str) for r in extra):
        raise RuntimeError(f"'requires' must be a list of requirement strings, got {extra!r}")
    return [f"torch=={_torch_release()}", *extra]
