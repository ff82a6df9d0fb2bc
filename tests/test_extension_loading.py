"""How negrec loads its compiled extension: present, absent (fallback), or built for another
torch (refused with instructions). The last two run in subprocesses on a copy of the
installed package."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import negrec


def _copy_package(tmp_path: Path, keep_extension: bool, build_torch: str | None) -> Path:
    src = Path(negrec.__file__).parent
    dst = tmp_path / "negrec"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    # an editable install keeps the compiled extension and its build record in site-packages,
    # apart from the sources: copy them in beside the sources, as a wheel installs them
    for module in ("negrec._C", "negrec._build_info"):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin and Path(spec.origin).parent != src:
            shutil.copy2(spec.origin, dst)
    if not keep_extension:
        for f in dst.glob("_C*.so"):
            f.unlink()
        (dst / "_build_info.py").unlink(missing_ok=True)
    if build_torch is not None:
        text = (dst / "_build_info.py").read_text()
        lines = [f'TORCH_VERSION = "{build_torch}"' if line.startswith("TORCH_VERSION =") else line
                 for line in text.splitlines()]
        (dst / "_build_info.py").write_text("\n".join(lines) + "\n")
    return tmp_path


# An editable install (scikit-build-core) puts a finder ahead of sys.path that maps ``negrec``
# to the source tree, so the copy on PYTHONPATH would never be imported: the subprocesses drop
# it first. A no-op for a regular install.
_WITHOUT_EDITABLE_FINDERS = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if not "
                             "type(f).__module__.startswith('_editable_skbc_')]\n")


def _run(pythonpath: Path, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([sys.executable, "-c", _WITHOUT_EDITABLE_FINDERS + textwrap.dedent(code)],
                          env=env, capture_output=True, text=True, timeout=300,
                          cwd=str(pythonpath))


def test_extension_is_loaded(native):
    assert negrec.extension_available()
    info = negrec.build_info()
    assert info["TORCH_VERSION"].split("+")[0] == torch.__version__.split("+")[0]
    assert info["cpu_float_isa"] in ("avx2+fma", "scalar")
    assert hasattr(torch.ops.negrec, "fused_loss")


def test_missing_extension_falls_back_to_reference_with_a_warning(native, tmp_path):
    root = _copy_package(tmp_path, keep_extension=False, build_torch=None)
    proc = _run(root, """
        import warnings, torch, negrec
        assert negrec.__file__.startswith(%r), negrec.__file__
        assert not negrec.extension_available()
        assert "without its compiled extension" in negrec.build_info()["reason"]
        q = torch.randn(5, 3, dtype=torch.float64); n = torch.randn(4, 3, dtype=torch.float64)
        kw = dict(target_ids=torch.arange(5), neg_ids=torch.arange(10, 14),
                  label=torch.tensor([1, -1, 0, 1, -1]))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss = negrec.ops.fused_loss(q, q, n, **kw)
        assert any("pure-PyTorch reference" in str(w.message) for w in caught), caught
        ref = negrec.ops.fused_loss_reference(q, q, n, **kw)
        assert torch.equal(loss, ref)
        print("fallback-ok")
    """ % str(root))
    assert proc.returncode == 0, proc.stderr
    assert "fallback-ok" in proc.stdout


@pytest.mark.parametrize("first_use", ["import negrec.ops", "import negrec; negrec.build_info()",
                                       "from negrec.data import Collator"])
def test_extension_built_for_another_torch_is_refused(native, tmp_path, first_use):
    """Refused where it is first loaded (``import negrec`` itself loads neither torch nor the
    extension: reading data needs neither)."""
    root = _copy_package(tmp_path, keep_extension=True, build_torch="2.0.0+cpu")
    light = _run(root, "import sys, negrec, negrec.data; assert 'torch' not in sys.modules")
    assert light.returncode == 0, light.stderr
    proc = _run(root, first_use)
    assert proc.returncode != 0
    assert "ExtensionMismatchError" in proc.stderr
    assert f"negrec._C was built against torch 2.0.0+cpu, but torch {torch.__version__} is installed" in proc.stderr
    assert "pip install --no-build-isolation --force-reinstall --no-deps" in proc.stderr
    assert "Segmentation fault" not in proc.stderr
