from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `python -m pytest` puts the repository root first on sys.path, where the source package
# negrec/ has no compiled extension: drop it so the installed package is the one tested.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != REPO]

import pytest
import torch
from hypothesis import HealthCheck, settings

# Hypothesis profiles: "ci" (default, fast) and "long" (thorough fuzzing; NEGREC_HYPOTHESIS=long).
settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("NEGREC_HYPOTHESIS", "ci"))

ML100K = Path(os.environ.get("NEGREC_ML100K", REPO.parent / "shared" / "data" / "ml-100k"))


def pytest_report_header(config):
    import negrec

    info = negrec.build_info()
    where = Path(negrec.__file__).parent
    return [
        f"negrec {negrec.__version__} from {where}",
        f"negrec._C: {'loaded, built with torch ' + info['TORCH_VERSION'] if info['extension'] else 'MISSING (' + info['reason'] + ')'}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
    ]


@pytest.fixture(scope="session")
def native():
    """The compiled extension; tests of the native kernels fail loudly without it."""
    import negrec

    if not negrec.extension_available():
        pytest.fail(
            "negrec._C is not loaded (" + negrec.build_info()["reason"] + "). Install the "
            "package (pip install --no-build-isolation .) and run pytest from the repository "
            "root with the `pytest` command, so the installed package is imported."
        )
    from negrec import _extension

    return _extension._C


@pytest.fixture(scope="session")
def ml100k_dir():
    if not (ML100K / "u.data").exists():
        pytest.skip(f"MovieLens-100K not found at {ML100K} (set NEGREC_ML100K to its folder)")
    return ML100K
