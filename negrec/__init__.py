"""negrec: sequential recommenders that learn from negative feedback.

The native op ``torch.ops.negrec.fused_loss`` (sampled or full softmax plus the
not-to-recommend term) is wrapped by :func:`negrec.ops.fused_loss`. ``negrec.measure(...)``
(:func:`negrec.experiments.recommenders.measure`) measures any recommender's responsiveness.

``import negrec`` stays light: it imports neither torch nor the compiled extension.
``negrec.ops``, ``negrec.build_info``, ``negrec.extension_available``,
``negrec.cuda_kernels_available`` and ``negrec.measure`` are loaded on first use (importing
``negrec.ops``, or anything that runs a native piece, loads the extension and registers
``torch.ops.negrec.*``), so that reading data (``negrec.data.load_table``, ``EventLog.open``,
``EventLog.save_store``) runs without torch.
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("negrec")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "build_info", "cuda_kernels_available", "extension_available", "measure",
           "ops"]

_EXTENSION_NAMES = ("build_info", "cuda_kernels_available", "extension_available")


def __getattr__(name: str):
    if name in _EXTENSION_NAMES:
        from negrec import _extension

        return getattr(_extension, name)
    if name == "ops":
        import negrec.ops  # (sets the attribute: later lookups do not come here)

        return negrec.ops
    if name == "measure":  # the application layer
        from negrec.experiments.recommenders import measure

        return measure
    raise AttributeError(f"module 'negrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
