// Launcher interface of the CUDA kernels of negrec::fused_loss and negrec::fused_loss_backward.
//
// Only CUDA toolkit types cross this boundary (raw device pointers, sizes, cudaStream_t), so the
// kernels in fused_loss_kernels.cu compile with nvcc alone, without torch headers: a CUDA-free
// torch (CI) still compile-checks them. The torch glue (fused_loss_cuda.cpp) validates the
// inputs, converts them to the layouts below, allocates every buffer and output with torch's
// caching allocator, calls these launchers on the current stream and checks the result.
//
// Conventions shared by both sides:
//  * "acc" is the accumulation dtype: double for Float64 inputs, float otherwise. Weights and
//    per-row losses are double whatever the inputs.
//  * Embedding buffers (query, target_emb, neg_emb) are row-major with row stride `width`
//    elements and a 16-byte-aligned base; `width` is D, or D rounded up to a multiple of 8 on
//    the tensor-core path (Plan::width; the glue zero-pads the extra columns, which add 0 to
//    every dot product, and drops them from the gradients).
//  * Rows are processed in a compacted order: `perm` lists the rows that take part first, in
//    their original order (stable), and `*count` (on the device, so no host synchronisation is
//    needed) says how many do. Per-row workspaces indexed by "p" use this compacted position;
//    outputs indexed by "i" use the original row index i = perm[p].
//  * All index arithmetic is int64: N * K may exceed 2^31 (nothing of that size is stored).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace negrec::cuda {

enum class DType : int32_t { Float32 = 0, Float64 = 1, BFloat16 = 2, Float16 = 3 };

enum class ReductionKind : int32_t { None = 0, Sum = 1, Mean = 2 };

// What the launchers need to know about the device (queried by the glue).
struct DeviceInfo {
  int num_sms = 1;
  int max_smem_per_block_optin = 48 * 1024;  // cudaDevAttrMaxSharedMemoryPerBlockOptin
};

// Which kernel family serves a problem and how the work is split across thread blocks.
struct Plan {
  // bfloat16/float16 with D <= 256 (and enough shared memory): mma.sync tensor-core tiles with
  // float32 accumulation. Otherwise SIMT FMA tiles (float32, float64, and wide bf16/fp16).
  bool tensor_cores = false;
  int64_t width = 0;   // row width/stride of the embedding buffers (see above)
  int fwd_splits = 1;  // forward: candidate range split in this many parts (partial LSEs merged)
  int dq_splits = 1;   // grad query: candidate range split (partial sums in dq_part)
  int dn_splits = 1;   // grad neg: row range split (partial sums in dn_part)
};

Plan plan_fused_loss(DType dtype, int64_t N, int64_t K, int64_t D, const DeviceInfo& dev);

struct Problem {
  DType dtype = DType::Float32;
  int64_t N = 0, K = 0, width = 0;
  const void* query = nullptr;       // [N, width] input dtype
  const void* target_emb = nullptr;  // [N, width]
  const void* neg_emb = nullptr;     // [K, width]
  const int64_t* target_ids = nullptr;  // [N]
  const int64_t* neg_ids = nullptr;     // [K]
  const int8_t* label = nullptr;        // [N] in {-1, 0, 1}
  const double* weight = nullptr;     // [N] float64 (not acc: see fused_loss_kernels.cu), or null (= 1)
  const void* target_logq = nullptr;  // [N] acc dtype, or null (= 0)
  const void* neg_logq = nullptr;     // [K] acc dtype, or null (= 0)
  double inv_temperature = 1.0;
  const int64_t* perm = nullptr;   // [N] rows that take part first (stable)
  const int64_t* count = nullptr;  // [1] how many rows take part
};

// Forward: perm/count select the rows with label != 0.
struct ForwardOutputs {
  void* part_max = nullptr;     // [fwd_splits, N] acc workspace (running max per split)
  double* part_sum = nullptr;   // [fwd_splits, N] workspace (sum of exp(z - max) per split)
  void* lse_all = nullptr;      // [N] acc, zero-initialised (rows with label 0 stay 0)
  void* lse_neg = nullptr;      // [N] acc, zero-initialised
  double* row_nll = nullptr;     // [N] float64, zero-initialised: per-row unweighted loss
  double* row_weight = nullptr;  // [N] float64, zero-initialised: weight of contributing rows
};

// Backward: perm/count select the contributing rows (label != 0, and not a label -1 row whose
// lse_neg is -inf).
struct BackwardArgs {
  ReductionKind reduction = ReductionKind::Mean;
  const double* grad_loss = nullptr;  // [N] for None, [1] otherwise
  // Mean: the weights of the contributing rows normalised by their max (weight_scale [1]) and
  // the sum of the normalised weights (denom [1]); row i's share is (w_i / scale) / denom.
  const double* denom = nullptr;
  const double* weight_scale = nullptr;
  const void* lse_all = nullptr;      // [N] acc
  const void* lse_neg = nullptr;      // [N] acc
  void* alpha = nullptr;  // [N] acc workspace (indexed by p)
  void* beta = nullptr;   // [N] acc workspace
  void* g0 = nullptr;     // [N] acc workspace
  unsigned int* amax_bits = nullptr;  // [1] zero-initialised workspace
  void* dq_part = nullptr;  // [dq_splits, N, width] acc workspace
  void* dn_part = nullptr;  // [dn_splits, K, width] acc workspace
  void* grad_query = nullptr;   // [N, width] input dtype, zero-initialised
  void* grad_target = nullptr;  // [N, width] input dtype, zero-initialised
  void* grad_neg = nullptr;     // [K, width] input dtype, zero-initialised
};

// The first failing CUDA call, if any: every kernel launch is followed by cudaGetLastError().
struct LaunchResult {
  cudaError_t error = cudaSuccess;
  const char* what = "";
};

LaunchResult launch_fused_loss_forward(const Problem& problem, const Plan& plan,
                                       const ForwardOutputs& out, const DeviceInfo& dev,
                                       cudaStream_t stream);

LaunchResult launch_fused_loss_backward(const Problem& problem, const Plan& plan,
                                        const BackwardArgs& args, const DeviceInfo& dev,
                                        cudaStream_t stream);

}  // namespace negrec::cuda
