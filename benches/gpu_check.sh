#!/usr/bin/env bash
# One-shot check of the CUDA kernels on a GPU machine that has only its own packages (python3
# with a CUDA torch, nvcc, cmake, ninja, pytest, hypothesis) and no network:
#
#   1. builds negrec._C from this working tree with CMake directly (no pip, no download), with
#      NEGREC_CUDA=ON, and stages it with a copy of the negrec/ package;
#   2. prints `python -m negrec.env`;
#   3. runs tests/test_fused_loss_cuda.py and tests/test_cuda_build.py (which must not skip);
#   4. runs benches/bench_fused_loss.py --device cuda --quick;
#   5. prints a short table.
#
# Exits non-zero if the build, a test or the benchmark fails. Sized for under 8 minutes: each
# step's timeout is capped by what is left of NEGREC_GPU_BUDGET_S (default 470 s).
#
#   bash benches/gpu_check.sh                    # on the GPU machine
#   NEGREC_CUDA=OFF bash benches/gpu_check.sh    # anywhere: checks the build/stage/test logic
#                                                # without CUDA (CUDA tests skip, no benchmark)
# Environment: PYTHON (default python3), CMAKE (default cmake), NEGREC_GPU_WORK (scratch
# folder, default /tmp/negrec-gpu-check), OUT (where logs and results are copied, default
# $NEGREC_GPU_WORK/out), CUDA_PATH / CUDAToolkit_ROOT (the toolkit, if nvcc is not on PATH).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
CMAKE="${CMAKE:-cmake}"
MODE="${NEGREC_CUDA:-ON}"
WORK="${NEGREC_GPU_WORK:-/tmp/negrec-gpu-check}"
OUTDIR="${OUT:-$WORK/out}"
BUDGET="${NEGREC_GPU_BUDGET_S:-470}"
START=$(date +%s)
BUILD="$WORK/build"
STAGE="$WORK/stage"
mkdir -p "$WORK" "$OUTDIR"
SUMMARY="$OUTDIR/summary.txt"
: > "$SUMMARY"

note() { echo "$*" | tee -a "$SUMMARY"; }

# run_step NAME CAP_SECONDS LOGFILE COMMAND...: runs with timeout min(CAP, time left), tees the
# log, records the outcome, and stops the script (non-zero) on failure.
run_step() {
  local name="$1" cap="$2" log="$3"
  shift 3
  local left=$(( BUDGET - ($(date +%s) - START) ))
  if (( left < 15 )); then
    note "FAIL  $name: no time left in the ${BUDGET}s budget"
    exit 1
  fi
  local limit=$(( cap < left ? cap : left ))
  local t0=$(date +%s) rc=0
  echo "=== $name (timeout ${limit}s) ==="
  set +e
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  local dt=$(( $(date +%s) - t0 ))
  if (( rc != 0 )); then
    [[ $rc -eq 124 ]] && note "FAIL  $name: timed out after ${limit}s (log: $log)" \
                      || note "FAIL  $name: exit $rc after ${dt}s (log: $log)"
    tail -n 40 "$log" || true
    exit 1
  fi
  note "ok    $name (${dt}s)"
}

echo "=== machine ==="
{
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi: not found"
  "$PYTHON" --version
  "$CMAKE" --version | head -n 1
  command -v ninja >/dev/null && echo "ninja $(ninja --version)" || echo "ninja: not found (default generator)"
  "$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available', torch.cuda.is_available())"
} 2>&1 | tee "$OUTDIR/machine.txt"

# ---- 1. build and stage ----------------------------------------------------------------------
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
CONFIGURE=("$CMAKE" -S "$REPO" -B "$BUILD" "${GEN[@]}" -DNEGREC_CUDA="$MODE"
           -DPython_EXECUTABLE="$(command -v "$PYTHON")" -DCMAKE_BUILD_TYPE=Release)
[[ -n "${CUDAToolkit_ROOT:-}" ]] && CONFIGURE+=(-DCUDAToolkit_ROOT="$CUDAToolkit_ROOT")
rm -rf "$BUILD" "$STAGE"
run_step "configure (NEGREC_CUDA=$MODE)" 90 "$OUTDIR/configure.log" "${CONFIGURE[@]}"
run_step "build" 240 "$OUTDIR/build.log" "$CMAKE" --build "$BUILD" --parallel "$(nproc)"
mkdir -p "$STAGE"
cp -r "$REPO/negrec" "$STAGE/negrec"
find "$STAGE/negrec" -name "__pycache__" -prune -exec rm -rf {} +
rm -f "$STAGE"/negrec/_C*.so "$STAGE/negrec/_build_info.py"  # never a stale build's
run_step "stage" 30 "$OUTDIR/install.log" "$CMAKE" --install "$BUILD" --prefix "$STAGE"
export PYTHONPATH="$STAGE${PYTHONPATH:+:$PYTHONPATH}"
CHECK_IMPORT="import negrec, sys; sys.exit(0 if negrec.extension_available() and negrec.__file__.startswith('$STAGE') else 1)"
(cd /tmp && "$PYTHON" -c "$CHECK_IMPORT") || { note "FAIL  staged negrec does not load its extension from $STAGE"; exit 1; }

# ---- 2. environment ------------------------------------------------------------------------------
(cd /tmp && "$PYTHON" -m negrec.env) | tee "$OUTDIR/env.txt"
WANT_CUDA=$( [[ "$MODE" == "OFF" ]] && echo 0 || echo 1 )
if (( WANT_CUDA )); then
  (cd /tmp && "$PYTHON" -c "import negrec, sys; sys.exit(0 if negrec.cuda_kernels_available() else 1)") \
    || { note "FAIL  negrec._C was built without its CUDA kernels (see env above)"; exit 1; }
fi

# ---- 3. tests ---------------------------------------------------------------------------------------
# NEGREC_REQUIRE_CUDA=1 turns the CUDA module's skip (no GPU / no kernels) into an error.
cd "$REPO"
run_step "pytest (CUDA tests)" 240 "$OUTDIR/pytest.log" \
  env NEGREC_REQUIRE_CUDA="$WANT_CUDA" "$PYTHON" -m pytest -p no:cacheprovider -q -rs \
  --junitxml="$OUTDIR/pytest.xml" tests/test_fused_loss_cuda.py tests/test_cuda_build.py
PYTEST_LINE=$(grep -E "(passed|failed|skipped|error)" "$OUTDIR/pytest.log" | tail -n 1)

# ---- 4. benchmark ---------------------------------------------------------------------------------
if (( WANT_CUDA )); then
  run_step "benchmark (--device cuda --quick)" 200 "$OUTDIR/bench.log" \
    "$PYTHON" benches/bench_fused_loss.py --device cuda --quick --csv "$OUTDIR/bench_fused_loss.csv"
else
  note "skip  benchmark (NEGREC_CUDA=OFF)"
fi

# ---- 5. table -------------------------------------------------------------------------------------
echo
echo "==================== gpu_check summary ===================="
cat "$SUMMARY"
echo "tests: $PYTEST_LINE"
if (( WANT_CUDA )); then
  grep -E "^N=|^shape" "$OUTDIR/bench.log" || true
  tail -n 1 "$OUTDIR/bench.log"
fi
echo "total: $(( $(date +%s) - START ))s; logs in $OUTDIR"
