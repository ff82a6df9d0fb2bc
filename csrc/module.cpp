// The Python module negrec._C. Loading it registers torch.ops.negrec (csrc/ops.cpp and the
// per-backend kernel files); the functions bound here describe the build and expose tuning
// knobs for the benchmarks; the data-layer bindings register through bindings.h.
#include <pybind11/pybind11.h>
#include <torch/version.h>

#include "bindings.h"
#include "cpu/fused_loss_cpu.h"
#include "cpu/vec_math.h"
#include "negrec_build_info.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "negrec native extension: torch.ops.negrec kernels and the data-layer hot paths";
  m.attr("BUILT_WITH_TORCH") = NEGREC_BUILT_WITH_TORCH;
  m.attr("BUILD_TYPE") = NEGREC_BUILD_TYPE;
  m.attr("SANITIZE") = NEGREC_SANITIZE;
#ifdef NEGREC_WITH_CUDA
  m.attr("CUDA_KERNELS") = true;
#else
  m.attr("CUDA_KERNELS") = false;
#endif
  m.def("cpu_float_isa", &negrec::cpu::vec::float_isa,
        "Instruction set the float32 CPU row kernels use: 'avx2+fma' or 'scalar'.");
  m.def(
      "_force_scalar_cpu_kernels",
      [](py::handle force) {
        negrec::cpu::vec::force_scalar_float(
            negrec::py_args::to_bool(force, {"_force_scalar_cpu_kernels", "force"}));
      },
      py::arg("force"),
      "Testing/benchmarking: force the scalar float32 CPU row kernels (True) or restore the "
      "best available (False). Calls already running keep the kernels they started with.");
  m.def(
      "_set_cpu_tile_config",
      [](py::handle rows, py::handle cols) {
        constexpr const char* kWhere = "_set_cpu_tile_config";
        negrec::cpu::TileConfig config;
        config.rows = negrec::py_args::to_int64(rows, {kWhere, "rows"}, 1, negrec::cpu::kMaxTileRows);
        config.cols = negrec::py_args::to_int64(cols, {kWhere, "cols"}, 1, negrec::cpu::kMaxTileCols);
        negrec::translate_errors([&] { negrec::cpu::set_tile_config(config); });
      },
      py::arg("rows"), py::arg("cols"),
      "Benchmarking: set the CPU fused-loss tile (rows per block, candidates per tile); calls "
      "already running keep the tile they started with.");
  m.def("_get_cpu_tile_config", []() {
    const negrec::cpu::TileConfig t = negrec::cpu::tile_config();
    return py::make_tuple(t.rows, t.cols);
  });
  negrec::bind_data(m);
}
