"""What the build says about its CUDA kernels, checkable on any machine: the clear error for
CUDA tensors reaching a build without CUDA kernels, and `negrec env`'s report."""

from __future__ import annotations

import importlib

import pytest
import torch

import negrec
from negrec.env import environment

# The submodule (the package attribute `negrec.ops.fused_loss` is the function).
fused_loss_module = importlib.import_module("negrec.ops.fused_loss")


def test_cuda_tensors_without_cuda_kernels_get_a_clear_error(native, monkeypatch):
    monkeypatch.setattr(fused_loss_module, "_CUDA_KERNELS", False)
    with pytest.raises(RuntimeError) as info:
        fused_loss_module.require_kernels_for(torch.device("cuda", 0))
    msg = str(info.value)
    assert msg.startswith("negrec.fused_loss: got CUDA tensors, but negrec._C was built without "
                          "its CUDA kernels (NEGREC_CUDA=")
    assert negrec.build_info()["CUDA_REASON"] in msg  # why the build left them out
    assert "NEGREC_CUDA=ON pip install --no-build-isolation --force-reinstall --no-deps" in msg
    # CPU tensors, or a build with CUDA kernels, pass.
    fused_loss_module.require_kernels_for(torch.device("cpu"))
    monkeypatch.setattr(fused_loss_module, "_CUDA_KERNELS", True)
    fused_loss_module.require_kernels_for(torch.device("cuda", 0))


def test_the_flag_matches_the_build(native):
    assert fused_loss_module._CUDA_KERNELS is negrec.cuda_kernels_available()
    assert negrec.cuda_kernels_available() == bool(negrec.build_info()["CUDA_KERNELS"])


def test_env_reports_which_kernels_are_registered(native):
    env = environment()
    assert env["cuda_kernels_compiled"] == negrec.cuda_kernels_available()
    ops = {o["op"]: o["kernels"] for o in env["ops"]}
    for op in ("negrec::fused_loss", "negrec::fused_loss_backward"):
        assert "CPU" in ops[op]
        # TORCH_LIBRARY_IMPL(negrec, CUDA, ...) exists exactly when the CUDA glue was compiled.
        assert ("CUDA" in ops[op]) == negrec.cuda_kernels_available()
