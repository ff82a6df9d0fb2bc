"""negrec: sequential recommenders that learn from negative feedback.

The native op ``torch.ops.negrec.fused_loss`` (sampled or full softmax plus the
not-to-recommend term) is wrapped by :func:`negrec.ops.fused_loss`. ``negrec.measure(...)``
(:func:`negrec.experiments.recommenders.measure`) measures any recommender's responsiveness;
it is imported on first use, so ``import negrec`` stays light.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from negrec._extension import build_info, cuda_kernels_available, extension_available
from negrec import ops

try:
    __version__ = _metadata.version("negrec")
except _metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "build_info", "cuda_kernels_available", "extension_available", "measure",
           "ops"]


def __getattr__(name: str):
    if name == "measure":  # the application layer, loaded on first use
        from negrec.experiments.recommenders import measure

        return measure
    raise AttributeError(f"module 'negrec' has no attribute {name!r}")
