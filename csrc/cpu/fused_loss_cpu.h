// Tuning knobs of the CPU fused-loss kernel (csrc/cpu/fused_loss_kernel.cpp).
#pragma once

#include <cstdint>

namespace negrec::cpu {

// Rows per block (the GEMM's m) and candidates per tile (its n). A tile of logits
// [rows, cols] lives in a per-thread buffer sized from the call's snapshot of this
// configuration; the defaults were picked with benches/bench_fused_loss.py --tune on a 2-core
// AVX2 machine.
struct TileConfig {
  int64_t rows = 128;
  int64_t cols = 1024;
};

// Accepted ranges (set_tile_config): each tile buffer holds rows * cols accumulation values
// per thread, at most kMaxTileElements (128 MiB in float64).
inline constexpr int64_t kMaxTileRows = 1 << 16;
inline constexpr int64_t kMaxTileCols = 1 << 20;
inline constexpr int64_t kMaxTileElements = int64_t{1} << 24;

// The process-wide configuration, read atomically as one value. Each kernel call reads it
// exactly once and passes that snapshot down, so a concurrent set_tile_config never changes
// the tile shape in the middle of a call (it applies from the next call on).
TileConfig tile_config();

// Validates (ValueError naming rows/cols and the accepted range) and publishes `config`.
void set_tile_config(TileConfig config);

}  // namespace negrec::cpu
