"""``python -m negrec.env`` (or ``negrec env``): what negrec runs on and how it was built."""

from __future__ import annotations

import platform
import sys
from typing import Any

import torch

from negrec.files import strict_json
from negrec.threads import report as thread_policy_report  # thread policy


def environment() -> dict[str, Any]:
    """torch, CUDA, the extension's build options and which kernels are compiled in."""
    import negrec
    from negrec._extension import _C

    info = negrec.build_info()
    ops = []
    if _C is not None:
        for op in ("fused_loss", "fused_loss_backward"):
            handle = getattr(torch.ops.negrec, op)
            backends = [k for k in ("CPU", "CUDA") if torch._C._dispatch_has_kernel_for_dispatch_key(
                handle.default.name(), k)]
            ops.append({"op": f"negrec::{op}", "kernels": backends})
    return {
        "negrec": negrec.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "torch_threads": torch.get_num_threads(),
        "thread_policy": thread_policy_report(),  # thread policy (negrec/threads.py)
        "extension": info,
        "cuda_kernels_compiled": negrec.cuda_kernels_available(),
        "ops": ops,
    }


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="negrec env", description=__doc__)
    ap.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = ap.parse_args(argv)
    env = environment()
    if args.json:
        print(strict_json(env, indent=2))
        return 0
    ext = env["extension"]
    print(f"negrec          {env['negrec']}")
    print(f"python          {env['python']} on {env['platform']}")
    print(f"torch           {env['torch']} (CUDA {env['torch_cuda'] or 'none'}), "
          f"{env['torch_threads']} threads")
    for label, line in env["thread_policy"]["lines"].items():  # thread policy
        print(f"{label:<15} {line}")
    print(f"GPU             {', '.join(env['cuda_devices']) if env['cuda_devices'] else 'none visible'}")
    if not ext["extension"]:
        print(f"negrec._C       MISSING: {ext['reason']}")
        return 0
    print(f"negrec._C       built with torch {ext['TORCH_VERSION']}, {ext['BUILD_TYPE']}, "
          f"{ext['CXX_COMPILER']}, pybind11 {ext['PYBIND11_VERSION']}")
    print(f"CPU kernels     compiled; float32 row kernels use {ext['cpu_float_isa']}")
    print(f"CUDA kernels    {'compiled' if ext['CUDA_KERNELS'] else 'not compiled'} "
          f"(NEGREC_CUDA={ext['CUDA_OPTION']}: {ext['CUDA_REASON']})")
    print(f"sanitizers      {ext['SANITIZE'] or 'none'}")
    for op in env["ops"]:
        print(f"{op['op']:<28} kernels: {', '.join(op['kernels'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
