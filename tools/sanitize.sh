#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer run of negrec's native code.
#
#   bash tools/sanitize.sh            # build (or reuse) and run everything below
#
# 1. Builds negrec with NEGREC_SANITIZE=address,undefined (CUDA off) into its own virtual
#    environment and build folder, both outside the repository (defaults /tmp/venv-asan and
#    /tmp/build-asan), and checks that the installed extension really is instrumented.
# 2. Runs the native tests -- fused loss (tests/test_fused_loss.py), collator and samplers
#    (tests/test_collate_samplers.py), the fuzz tests (tests/test_fuzz_native.py, "ci"
#    profile unless NEGREC_FUZZ_PROFILE is set) and the reliability regressions
#    (tests/test_native_reliability.py, whose child processes inherit the preload and options)
#    -- in a Python process with libasan preloaded, halt_on_error=1 for both sanitizers: any
#    memory error or undefined behaviour aborts the run.
#    Leak detection is OFF in this process: CPython and libtorch keep (by design) memory alive
#    until exit that LeakSanitizer reports, and an LSan suppression matches any frame of an
#    allocation's stack, so a suppression of the interpreter or libtorch would also hide every
#    leak of negrec's kernels (which always run under those frames).
# 3. Leak checking instead runs a standalone C++ harness (written below, compiled with the same
#    sanitizers against the same libtorch and negrec sources, no Python): it calls the fused
#    loss forward and backward, the collator and the alias sampler, including their error paths,
#    many times, with detect_leaks=1. Suppressions: tools/lsan.supp (libtorch-internal
#    allocations only; see the file).
#
# Environment: PYTHON (interpreter for a new venv, default python3.11), NEGREC_ASAN_VENV,
# NEGREC_ASAN_BUILD, NEGREC_ASAN_JOBS (default 2), NEGREC_ASAN_PYTEST_ARGS (extra pytest args),
# NEGREC_ASAN_SKIP_BUILD=1 (reuse the installed build).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VENV=${NEGREC_ASAN_VENV:-/tmp/venv-asan}
BUILD=${NEGREC_ASAN_BUILD:-/tmp/build-asan}
JOBS=${NEGREC_ASAN_JOBS:-2}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
T0=$(date +%s)
say() { printf '\n== sanitize.sh [%ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

CXX=${CXX:-g++}
LIBASAN=$("$CXX" -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ] || [ "$LIBASAN" = libasan.so ]; then
  echo "sanitize.sh: libasan.so not found for $CXX (install the compiler's sanitizer runtime)" >&2
  exit 2
fi
LIBASAN=$(readlink -f "$LIBASAN")
# libstdc++ preloaded right after libasan: the Python binary does not link it, and ASan resolves
# the real __cxa_throw when it starts; without it the first C++ exception thrown by the
# extension (every input check) aborts with "CHECK failed ... real___cxa_throw".
LIBSTDCXX=$(readlink -f "$("$CXX" -print-file-name=libstdc++.so)")
PRELOAD="$LIBASAN $LIBSTDCXX"

# ---- 1. environment and instrumented build ---------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch==2.13.0
  "$VENV/bin/pip" install --quiet "scikit-build-core>=0.10" "cmake>=3.26" ninja numpy pytest \
    hypothesis pyyaml tqdm matplotlib
fi
PY="$VENV/bin/python"
if [ "${NEGREC_ASAN_SKIP_BUILD:-0}" != 1 ]; then
  say "building negrec with NEGREC_SANITIZE=address,undefined in $BUILD"
  CMAKE_BUILD_PARALLEL_LEVEL=$JOBS NEGREC_SANITIZE=address,undefined NEGREC_CUDA=OFF \
    "$VENV/bin/pip" install --no-build-isolation --no-deps --force-reinstall --quiet "$REPO" \
      --config-settings=build-dir="$BUILD" \
      --config-settings=cmake.define.NEGREC_CUDA_COMPILE_CHECK=OFF
fi
grep -q -- '-fsanitize=address,undefined' "$BUILD/build.ninja" || {
  echo "sanitize.sh: $BUILD/build.ninja has no -fsanitize flags" >&2; exit 1; }

cd /tmp  # import the installed package, never the source tree
# (find negrec/_C*.so without importing negrec: importing it needs libasan preloaded)
SO=$("$PY" -c "import glob, importlib.util as u, os; d = u.find_spec('negrec').submodule_search_locations[0]; print(glob.glob(os.path.join(d, '_C*.so'))[0])")
case "$SO" in "$REPO"/*) echo "sanitize.sh: negrec._C resolves into the repository ($SO)" >&2; exit 1;; esac
ldd "$SO" | grep -q libasan || { echo "sanitize.sh: $SO is not linked against libasan" >&2; exit 1; }
ldd "$SO" | grep -q libubsan || { echo "sanitize.sh: $SO is not linked against libubsan" >&2; exit 1; }

# ---- 2. native tests in Python under ASan + UBSan ---------------------------------------------
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:exitcode=86:detect_leaks=0:allocator_may_return_null=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:detect_odr_violation=0:print_summary=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:report_error_type=1"
LOGDIR=${NEGREC_ASAN_LOGDIR:-$BUILD/logs}
mkdir -p "$LOGDIR"
rm -f "$LOGDIR"/asan.* "$LOGDIR"/ubsan.*
say "checking the instrumented extension loads"
LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$LOGDIR/asan" \
  UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$LOGDIR/ubsan" \
  "$PY" -c "import negrec._extension, negrec._C as C; assert C.SANITIZE == 'address,undefined', C.SANITIZE; print('negrec._C', C.__file__, 'sanitizers:', C.SANITIZE)"

say "native tests under ASan+UBSan (leaks off in the Python process)"
# torch.compile tests are left out: they compile and load inductor C++ (not negrec code),
# which is slow under ASan and adds nothing about negrec's kernels.
set +e
LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$LOGDIR/asan" \
  UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$LOGDIR/ubsan" OMP_NUM_THREADS=2 \
  "$VENV/bin/pytest" -p no:cacheprovider -q -m "not cuda" -k "not compile" \
    "$REPO/tests/test_fused_loss.py" "$REPO/tests/test_collate_samplers.py" \
    "$REPO/tests/test_fuzz_native.py" "$REPO/tests/test_native_reliability.py" \
    ${NEGREC_ASAN_PYTEST_ARGS:-}
rc=$?
set -e
reports=$(ls "$LOGDIR"/asan.* "$LOGDIR"/ubsan.* 2>/dev/null || true)
if [ -n "$reports" ]; then
  echo "sanitize.sh: sanitizer reports:" >&2
  for r in $reports; do echo "--- $r" >&2; head -60 "$r" >&2; done
  exit 1
fi
if [ $rc -ne 0 ]; then echo "sanitize.sh: pytest failed (exit $rc)" >&2; exit $rc; fi

# ---- 3. standalone C++ harness with leak checking ---------------------------------------------
say "standalone C++ harness (ASan+UBSan+LSan) against libtorch, no Python"
TORCH=$("$PY" -c "import os, torch; print(os.path.dirname(torch.__file__))")
HB="$BUILD/harness"
mkdir -p "$HB"
cat > "$HB/harness.cpp" <<'CPP'
// Drives negrec's kernels through the torch dispatcher (forward, backward, input checks) and
// the data-layer kernels directly, on ordinary and edge-case inputs, in a plain C++ process.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "cpu/fused_loss_cpu.h"
#include "data/collate.h"
#include "data/sampler.h"

using at::Tensor;
using FwdSig = std::tuple<Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
    const std::optional<Tensor>&, const std::optional<Tensor>&, const std::optional<Tensor>&,
    double, c10::string_view);
using BwdSig = std::tuple<Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
    const Tensor&, const std::optional<Tensor>&, const std::optional<Tensor>&,
    const std::optional<Tensor>&, double, c10::string_view, const Tensor&, const Tensor&);

static int expected_errors = 0, runs = 0;

static void expect_error(const char* what, const std::function<void()>& f) {
  try {
    f();
  } catch (const c10::Error&) {
    ++expected_errors;
    return;
  }
  std::fprintf(stderr, "harness: expected an error for: %s\n", what);
  std::exit(3);
}

int main() {
  auto fwd = c10::Dispatcher::singleton().findSchemaOrThrow("negrec::fused_loss", "")
                 .typed<FwdSig>();
  auto bwd = c10::Dispatcher::singleton().findSchemaOrThrow("negrec::fused_loss_backward", "")
                 .typed<BwdSig>();
  const double inf = std::numeric_limits<double>::infinity();
  for (int rep = 0; rep < 3; ++rep) {
    for (auto dt : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf}) {
      for (int64_t N : {0, 1, 7, 33}) {
        for (int64_t K : {0, 1, 5, 70}) {
          for (int64_t D : {0, 1, 3, 17}) {
            at::manual_seed(N * 10000 + K * 100 + D + rep);
            auto q = at::randn({N, D}).to(dt), t = at::randn({N, D}).to(dt);
            auto n = at::randn({K, D}).to(dt);
            auto tid = at::randint(-3, 4, {N}, at::kLong), nid = at::randint(-3, 4, {K}, at::kLong);
            auto lab = at::randint(-1, 2, {N}, at::kChar);
            auto acc = dt == at::kDouble ? at::kDouble : at::kFloat;
            std::optional<Tensor> w = at::rand({N}, acc), tl = -at::rand({N}, acc),
                                  nl = -at::rand({K}, acc);
            if ((N + K) % 2) { w.reset(); nl.reset(); }
            for (const char* red : {"mean", "sum", "none"}) {
              auto [loss, la, ln] = fwd.call(q, t, n, tid, nid, lab, w, tl, nl, 0.7, red);
              auto g = std::string(red) == "none" ? at::ones({N}, loss.options()) : at::ones({}, loss.options());
              auto [dq, dtg, dn] = bwd.call(g, q, t, n, tid, nid, lab, w, tl, nl, 0.7, red, la, ln);
              ++runs;
            }
            if (N > 0 && K > 0 && D > 0) {  // non-finite embeddings propagate, never crash
              auto qq = q.clone();
              qq.view(-1)[0].fill_(rep == 0 ? NAN : (rep == 1 ? inf : -inf));
              auto [loss, la, ln] = fwd.call(qq, t, n, tid, nid, lab, w, tl, nl, 1.0, "none");
              auto [dq, dtg, dn] = bwd.call(at::ones({N}, loss.options()), qq, t, n, tid, nid,
                                            lab, w, tl, nl, 1.0, "none", la, ln);
              ++runs;
              // the error paths
              expect_error("label 2", [&] { fwd.call(q, t, n, tid, nid, lab * 0 + 2, w, tl, nl, 1.0, "mean"); });
              expect_error("neg_logq inf", [&] { fwd.call(q, t, n, tid, nid, lab, w, tl, at::full({K}, -inf, at::TensorOptions().dtype(acc)), 1.0, "mean"); });
              expect_error("weight < 0", [&] { fwd.call(q, t, n, tid, nid, lab, -at::ones({N}, acc), tl, nl, 1.0, "mean"); });
              expect_error("K mismatch", [&] { fwd.call(q, t, n, tid, nid.narrow(0, 0, K - 1), lab, w, tl, nl, 1.0, "mean"); });
              expect_error("D mismatch", [&] { fwd.call(q, t, at::randn({K, D + 1}).to(dt), tid, nid, lab, w, tl, nl, 1.0, "mean"); });
              expect_error("int ids", [&] { fwd.call(q, t, n, tid.to(at::kInt), nid, lab, w, tl, nl, 1.0, "mean"); });
              expect_error("temperature 0", [&] { fwd.call(q, t, n, tid, nid, lab, w, tl, nl, 0.0, "mean"); });
              expect_error("reduction", [&] { fwd.call(q, t, n, tid, nid, lab, w, tl, nl, 1.0, "avg"); });
              expect_error("lse short", [&] { bwd.call(at::ones({}), q, t, n, tid, nid, lab, w, tl, nl, 1.0, "mean", at::zeros({N + 1}, acc), at::zeros({N}, acc)); });
            }
          }
        }
      }
    }
    // non-contiguous and overlapping (stride-0) views
    {
      auto base = at::randn({6, 8});
      auto q = base.t().narrow(0, 0, 5).narrow(1, 0, 4);       // [5, 4], transposed strides
      auto t = at::randn({4}).expand({5, 4});                   // stride 0 rows
      auto n = at::randn({9, 8}).slice(0, 0, 9, 2).narrow(1, 0, 4);  // [5, 4], row step 2
      auto tid = at::arange(5, at::kLong).flip(0), nid = at::full({5}, 2, at::kLong);
      auto lab = at::tensor({1, -1, 0, 1, -1}, at::kLong);
      auto [loss, la, ln] = fwd.call(q, t, n, tid, nid, lab, {}, {}, {}, 1.0, "sum");
      bwd.call(at::ones({}), q, t, n, tid, nid, lab, {}, {}, {}, 1.0, "sum", la, ln);
      ++runs;
    }

    // issue 16: huge temperatures with accidental hits, float64 weights beyond float32, missing
    // and sparse arguments, the tile configuration changed while other threads run kernels
    {
      auto q = at::randn({6, 3}), t = at::randn({6, 3}), n = at::randn({9, 3});
      auto tid = at::arange(6, at::kLong), nid = at::arange(9, at::kLong);  // hits in every row
      auto lab = at::tensor({1, -1, 1, -1, 0, 1}, at::kLong);
      for (double T : {1e38, 2e45, 1e300}) {
        auto [loss, la, ln] = fwd.call(q, t, n, tid, nid, lab, {}, {}, {}, T, "none");
        TORCH_CHECK(at::isfinite(loss).all().item<bool>(), "NaN loss at T = ", T);
        auto [dq, dtg, dn] = bwd.call(at::ones({6}), q, t, n, tid, nid, lab, {}, {}, {}, T, "none", la, ln);
        TORCH_CHECK(at::isfinite(dq).all().item<bool>() && at::isfinite(dn).all().item<bool>());
        ++runs;
      }
      for (double w : {1e39, 1e-50, 5e-324}) {
        std::optional<Tensor> wt = at::full({6}, w, at::kDouble);
        auto [loss, la, ln] = fwd.call(q, t, n, tid, nid, lab, wt, {}, {}, 1.0, "mean");
        TORCH_CHECK(std::isfinite(loss.item<double>()), "mean not finite for weights ", w);
        auto [dq, dtg, dn] = bwd.call(at::ones({}), q, t, n, tid, nid, lab, wt, {}, {}, 1.0, "mean", la, ln);
        TORCH_CHECK(at::isfinite(dq).all().item<bool>());
        ++runs;
      }
      expect_error("label undefined", [&] { fwd.call(q, t, n, tid, nid, Tensor(), {}, {}, {}, 1.0, "mean"); });
      expect_error("sparse label", [&] { fwd.call(q, t, n, tid, nid, lab.to_sparse(), {}, {}, {}, 1.0, "mean"); });
      expect_error("sparse query", [&] { fwd.call(q.to_sparse(), t, n, tid, nid, lab, {}, {}, {}, 1.0, "mean"); });
      expect_error("temperature 1e-39", [&] { fwd.call(q, t, n, tid, nid, lab, {}, {}, {}, 1e-39, "mean"); });
      expect_error("logq 1e39", [&] { fwd.call(q, t, n, tid, nid, lab, {}, {}, at::full({9}, 1e39, at::kDouble), 1.0, "mean"); });
      expect_error("tile 0", [&] { negrec::cpu::set_tile_config({0, 5}); });
      expect_error("tile too large", [&] { negrec::cpu::set_tile_config({65536, 1 << 20}); });
      const auto big_q = at::randn({64, 8}), big_t = at::randn({64, 8}), big_n = at::randn({1500, 8});
      const auto big_tid = at::randint(0, 300, {64}, at::kLong), big_nid = at::randint(0, 300, {1500}, at::kLong);
      const auto big_lab = at::randint(-1, 2, {64}, at::kLong);
      const Tensor want = std::get<0>(fwd.call(big_q, big_t, big_n, big_tid, big_nid, big_lab, {}, {}, {}, 1.0, "none"));
      std::vector<std::thread> workers;
      bool all_equal = true;
      std::atomic<bool> stop{false};
      std::thread flipper([&] {
        const negrec::cpu::TileConfig configs[] = {{4, 16}, {64, 4096}, {3, 50}, {256, 65536}};
        for (int i = 0; !stop.load(); ++i) negrec::cpu::set_tile_config(configs[i % 4]);
        negrec::cpu::set_tile_config({128, 1024});
      });
      std::vector<char> equal(3, 1);
      for (int w = 0; w < 3; ++w) {
        workers.emplace_back([&, w] {
          for (int it = 0; it < 10; ++it) {
            auto [loss, la, ln] = fwd.call(big_q, big_t, big_n, big_tid, big_nid, big_lab, {}, {}, {}, 1.0, "none");
            bwd.call(at::ones({64}), big_q, big_t, big_n, big_tid, big_nid, big_lab, {}, {}, {}, 1.0, "none", la, ln);
            equal[w] &= static_cast<char>(at::allclose(loss, want, 1e-4, 1e-5));
          }
        });
      }
      for (auto& w : workers) w.join();
      stop.store(true);
      flipper.join();
      for (char e : equal) all_equal = all_equal && e;
      TORCH_CHECK(all_equal, "results changed while the tile configuration was being changed");
      runs += 30;
    }

    // collator: a CSR log with empty users, all codes allowed and filtered, both paddings
    {
      auto offsets = at::tensor({0, 0, 3, 3, 9, 10}, at::kLong);
      auto items = at::tensor({0, 1, 2, 3, 4, 0, 1, 2, 3, 4}, at::kLong);
      auto fb = at::tensor({1, 2, 3, 4, 1, 1, 4, 3, 1, 2}, at::kChar);
      for (bool filtered : {false, true}) {
        for (bool targets : {true, false}) {
          for (bool crop : {false, true}) {
            negrec::data::CollateConfig cfg;
            cfg.max_len = 4;
            cfg.left_pad = crop;
            cfg.random_crop = crop;
            cfg.with_targets = targets;
            if (filtered) cfg.input_allowed = {false, true, false, false, true};
            cfg.label_of = {0, 1, 0, -1, -1};
            cfg.weight_of = {0.f, 1.f, 0.f, 0.5f, 2.f};
            auto users = at::tensor({0, 1, 2, 3, 4, 1, 3}, at::kLong);
            auto ends = at::tensor({-1, 0, 1, 2, -1, 5, 0}, at::kLong);
            for (int64_t threads : {1, 3}) {
              negrec::data::collate(offsets, items, fb, users, Tensor(), 5, cfg, 42, threads);
              negrec::data::collate(offsets, items, fb, users, ends, 5, cfg, 42, threads);
              ++runs;
            }
          }
        }
      }
      negrec::data::CollateConfig cfg;
      cfg.max_len = 3;
      auto users = at::tensor({3}, at::kLong);
      expect_error("user out of range", [&] { negrec::data::collate(offsets, items, fb, at::tensor({5}, at::kLong), Tensor(), 5, cfg, 0, 1); });
      expect_error("negative user", [&] { negrec::data::collate(offsets, items, fb, at::tensor({-1}, at::kLong), Tensor(), 5, cfg, 0, 1); });
      expect_error("item out of range", [&] { negrec::data::collate(offsets, items, fb, users, Tensor(), 2, cfg, 0, 1); });
      expect_error("bad code", [&] { negrec::data::collate(offsets, items, fb * 0, users, Tensor(), 5, cfg, 0, 1); });
      expect_error("bad offsets", [&] { negrec::data::collate(at::tensor({0, 0, 3, 3, 99, 10}, at::kLong), items, fb, users, Tensor(), 5, cfg, 0, 1); });
      expect_error("decreasing offsets", [&] { negrec::data::collate(at::tensor({0, 0, 3, 3, 2, 10}, at::kLong), items, fb, users, Tensor(), 5, cfg, 0, 3); });
      expect_error("int32 items", [&] { negrec::data::collate(offsets, items.to(at::kInt), fb, users, Tensor(), 5, cfg, 0, 1); });
      expect_error("ends shape", [&] { negrec::data::collate(offsets, items, fb, users, at::zeros({2}, at::kLong), 5, cfg, 0, 1); });
      cfg.max_len = 0;
      expect_error("max_len 0", [&] { negrec::data::collate(offsets, items, fb, users, Tensor(), 5, cfg, 0, 1); });
      cfg.max_len = 3;
      cfg.weight_of = {0.f, std::numeric_limits<float>::infinity(), 0.f, 0.f, 1.f};
      expect_error("inf weight", [&] { negrec::data::collate(offsets, items, fb, users, Tensor(), 5, cfg, 0, 1); });
      expect_error("sparse users", [&] { negrec::data::collate(offsets, items, fb, users.to_sparse(), Tensor(), 5, negrec::data::CollateConfig{}, 0, 1); });
    }

    // alias sampler
    {
      negrec::data::AliasTable table(at::tensor({0.0, 1.0, 2.0, 0.0, 1e-300, 5.0}, at::kDouble));
      auto s = table.sample(1000, 7);
      TORCH_CHECK(s.min().item<int64_t>() >= 0 && s.max().item<int64_t>() < 6);
      negrec::data::AliasTable again(table.weights());  // what unpickling does
      TORCH_CHECK(at::equal(again.sample(1000, 7), s));
      negrec::data::AliasTable big(at::tensor({1e308, 1e308, 1.0}, at::kDouble));
      TORCH_CHECK(std::abs(big.probabilities()[0].item<double>() - 0.5) < 1e-12);
      table.sample(0, 1);
      ++runs;
      expect_error("empty weights", [&] { negrec::data::AliasTable(at::zeros({0}, at::kDouble)); });
      expect_error("zero sum", [&] { negrec::data::AliasTable(at::zeros({3}, at::kDouble)); });
      expect_error("nan weight", [&] { negrec::data::AliasTable(at::tensor({1.0, NAN}, at::kDouble)); });
      expect_error("negative k", [&] { table.sample(-1, 0); });
      expect_error("sparse weights", [&] { negrec::data::AliasTable(at::ones({3}, at::kDouble).to_sparse()); });
      expect_error("complex weights", [&] { negrec::data::AliasTable(at::ones({3}, at::kComplexFloat)); });
    }
  }
  std::printf("harness: %d kernel runs, %d expected errors raised, no sanitizer report\n", runs,
              expected_errors);
  return 0;
}
CPP
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
INC="-I$REPO/csrc -I$TORCH/include -I$TORCH/include/torch/csrc/api/include"
ABI=$("$PY" -c "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))")
SRCS="csrc/ops.cpp csrc/fused_loss_checks.cpp csrc/cpu/fused_loss_kernel.cpp csrc/cpu/vec_math.cpp csrc/data/collate.cpp csrc/data/sampler.cpp"
pids=()
objs=()
for src in $SRCS "$HB/harness.cpp"; do
  case "$src" in /*) path="$src";; *) path="$REPO/$src";; esac
  obj="$HB/$(basename "${src%.cpp}").o"
  objs+=("$obj")
  if [ ! -e "$obj" ] || [ "$path" -nt "$obj" ]; then
    "$CXX" -std=c++20 -fPIC -fopenmp $SAN -D_GLIBCXX_USE_CXX11_ABI=$ABI $INC -c "$path" -o "$obj" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
"$CXX" $SAN -fopenmp "${objs[@]}" -o "$HB/harness" -L"$TORCH/lib" \
  -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -Wl,--as-needed -Wl,-rpath,"$TORCH/lib"
SUPP="$REPO/tools/lsan.supp"
ASAN_OPTIONS="halt_on_error=1:exitcode=86:detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1" \
  LSAN_OPTIONS="suppressions=$SUPP:print_suppressions=1:report_objects=1" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87" OMP_NUM_THREADS=2 \
  "$HB/harness"

say "clean: ASan+UBSan native tests passed, harness passed with leak checking"
