// Tuning knobs of the CPU fused-loss kernel (csrc/cpu/fused_loss_kernel.cpp).
#pragma once

#include <cstdint>

namespace negrec::cpu {

// Rows per block (the GEMM's m) and candidates per tile (its n). A tile of logits
// [rows, cols] lives in a thread-local buffer; the defaults were picked with
// benches/bench_fused_loss.py --tune on a 2-core AVX2 machine.
struct TileConfig {
  int64_t rows = 128;
  int64_t cols = 1024;
};

// The process-wide configuration the kernels read at the start of each call.
TileConfig& tile_config();

}  // namespace negrec::cpu
