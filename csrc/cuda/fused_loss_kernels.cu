// CUDA kernels of negrec::fused_loss and negrec::fused_loss_backward. Needs only the CUDA
// toolkit (no torch headers): see fused_loss_kernels.cuh for the interface and conventions and
// csrc/fused_loss.h for the math. The semantics (NaN/inf propagation, accidental-hit masking,
// rows left out) are those of the CPU kernel, csrc/cpu/fused_loss_kernel.cpp.
//
// Work decomposition. Every heavy kernel is one template, "tile kernel", run in three modes. A
// thread block owns a tile of "owner" rows and walks a range of tiles of "stream" rows:
//
//   mode        owner rows          stream rows         per stream tile
//   kForward    query rows (BM)     candidates (BN)     S = Q_o N_s^T; online LSE per row
//   kGradQuery  query rows          candidates          S, E = exp(z - beta); acc += E N_s
//   kGradNeg    candidates          query rows          S' = N_o Q_s^T, E = alpha exp(z - beta);
//                                                        acc += E Q_s
//
// z = S / T - neg_logq, with accidental hits (neg_ids[k] == target_ids[i]) at -inf: masked
// after the scaling (as on the CPU and in the reference, so 1/T rounding to 0 gives -inf, not
// -inf * 0 = NaN), and with dL/dz exactly 0 in the backward. Nothing of size [N, K] ever leaves
// the block: the logits live in registers, E in shared memory. Weights and per-row losses are
// float64 (the CPU kernel's choice: a float32 cast would overflow or flush them).
//  * Forward: per row and per thread an online (max, sum) pair; the pairs are merged across
//    threads at the end of the walk, then across the "splits" (blocks that walked different
//    candidate ranges of the same rows, so that small N still fills the GPU) by the finalize
//    kernel, which also computes z0, A = logaddexp(z0, B) and the row loss.
//  * Backward by recomputation: the logits are recomputed tile by tile from the saved
//    log-sum-exps, turned into dL/dz and multiplied into the gradient accumulators, which stay
//    in registers for the whole walk (dQuery rows in the kGradQuery blocks, dNeg rows in the
//    kGradNeg blocks): no atomics, deterministic results, and extra memory O((N + K) D)
//    (split partial sums) instead of O(N K). The price is one more recomputation of the logits:
//    five N x K x D products in forward + backward instead of four.
//  * dL/dz per row (c = weight * upstream scale, p0 = sigmoid(z0 - B)):
//      label +1: dz0 = -c sigmoid(B - z0), dzk = c exp(zk - A)        = alpha exp(zk - beta)
//      label -1: dz0 = c p0,               dzk = -c p0 exp(zk - B)    = alpha exp(zk - beta)
//    (alpha, beta, and g0 = dz0 / T are computed once per row by bwd_rows_kernel; alpha also
//    holds the 1/T of the embedding gradients). For bf16/fp16, E is rounded to the input dtype
//    for the tensor cores: kGradQuery stores exp(zk - beta) in [0, 1] and applies alpha to the
//    float32 result; kGradNeg stores alpha / 2^e * exp(zk - beta) in [-1, 1], with 2^e >=
//    max |alpha| over all rows, and multiplies the float32 result by 2^e (exact), so tiny
//    gradients (e.g. 1 / N of a mean over many rows) never underflow float16.
//
// Two families of tile kernels:
//  * tensor cores (bf16/fp16, D <= 256): BM = 128 owner rows, BN = 64 stream rows, 8 warps in
//    a 4 x 2 grid, mma.sync.m16n8k16 with float32 accumulators, operands from shared memory via
//    ldmatrix. The owner tile [128, D] stays in shared memory for the whole walk; stream tiles
//    [64, D] are double-buffered with cp.async so the next tile loads while this one computes.
//  * SIMT (float32, float64, and bf16/fp16 wider than 256): BM = BN = 64, 16 x 16 threads with
//    4 x 4 register micro-tiles of FMAs in the accumulation dtype (float32 stays float32: no
//    TF32), D walked in chunks of 64 columns.
#include "cuda/fused_loss_kernels.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "negrec's CUDA kernels need sm_80 or newer (cp.async, bfloat16 mma.sync)"
#endif

namespace negrec::cuda {
namespace {

constexpr int kThreads = 256;
constexpr unsigned kFullMask = 0xffffffffu;

enum Mode : int { kForward = 0, kGradQuery = 1, kGradNeg = 2 };

// Tensor-core tile shape (see the file comment).
struct TcTile {
  static constexpr int BM = 128;   // owner rows per block
  static constexpr int BN = 64;    // stream rows per tile
  static constexpr int DV = 128;   // gradient columns per block (grid.z walks D in slices)
  static constexpr int kPad = 8;   // shared-memory row padding (elements): conflict-free ldmatrix
  static constexpr int kMaxDpad = 256;
};

// SIMT tile shape.
struct SimtTile {
  static constexpr int BM = 64;
  static constexpr int BN = 64;
  static constexpr int DC = 64;    // D chunk held in shared memory
  static constexpr int DV = 64;    // gradient columns per block
};

template <typename T>
constexpr bool kIsLowPrecision = std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>;

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
__host__ __device__ constexpr int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ constexpr int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// ---- numerics -------------------------------------------------------------------------------

template <typename A>
__device__ __forceinline__ A pos_inf();
template <>
__device__ __forceinline__ float pos_inf<float>() { return __int_as_float(0x7f800000); }
template <>
__device__ __forceinline__ double pos_inf<double>() {
  return __longlong_as_double(0x7ff0000000000000LL);
}
__device__ __forceinline__ double nan_d() { return __longlong_as_double(0x7ff8000000000000LL); }

__device__ __forceinline__ float as_acc(float x) { return x; }
__device__ __forceinline__ double as_acc(double x) { return x; }
__device__ __forceinline__ float as_acc(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float as_acc(__half x) { return __half2float(x); }

template <typename T>
struct Out;
template <>
struct Out<float> {
  __device__ static float from(float v) { return v; }
};
template <>
struct Out<double> {
  __device__ static double from(double v) { return v; }
};
template <>
struct Out<__nv_bfloat16> {
  __device__ static __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
};
template <>
struct Out<__half> {
  __device__ static __half from(float v) { return __float2half_rn(v); }
};

// Two adjacent elements of a low-precision tile, stored with one 32-bit shared-memory write.
template <typename T>
struct Pair;
template <>
struct Pair<__nv_bfloat16> {
  using type = __nv_bfloat162;
  __device__ static type make(float lo, float hi) { return __floats2bfloat162_rn(lo, hi); }
};
template <>
struct Pair<__half> {
  using type = __half2;
  __device__ static type make(float lo, float hi) { return __floats2half2_rn(lo, hi); }
};

// Accurate exponentials for the SIMT path (float32 must stay float32-accurate); the tensor-core
// path uses __expf (ex2.approx: about 2 ulp plus |x| * 2^-22 relative), far below the
// bf16/fp16 rounding of its inputs and of E. Both give exp(-inf) = 0 and exp(NaN) = NaN.
__device__ __forceinline__ float exp_acc(float x) { return expf(x); }
__device__ __forceinline__ double exp_acc(double x) { return exp(x); }

// log(1 + exp(x)) without overflow or cancellation; NaN passes through (as on the CPU).
__device__ __forceinline__ double softplus_d(double x) {
  if (isnan(x)) return x;
  return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

// 1 / (1 + exp(-x)) for x in [-inf, inf]; NaN gives NaN (as on the CPU).
__device__ __forceinline__ double sigmoid_d(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}

// Online log-sum-exp state: the pair (m, s) stands for s * exp(m); m = -inf (with s = 0) is the
// empty sum. Merging rescales the smaller-max sum; exponent differences are taken in double.
// NaN and +inf logits never enter (m, s): they are tracked as flags (kSawNaN, kSawInf), which is
// exactly the CPU's rule: any NaN makes B NaN, else any +inf makes B +inf.
constexpr int kSawNaN = 1;
constexpr int kSawInf = 2;

template <typename M>
__device__ __forceinline__ void lse_merge(M& m, double& s, M om, double os) {
  if (!(om > -pos_inf<M>())) return;  // other is empty
  if (!(m > -pos_inf<M>())) {
    m = om;
    s = os;
    return;
  }
  if (om > m) {
    s = s * exp(static_cast<double>(m) - static_cast<double>(om)) + os;
    m = om;
  } else {
    s = s + os * exp(static_cast<double>(om) - static_cast<double>(m));
  }
}

// Partials stored per split: max encoded with the flags (NaN for kSawNaN, +inf for kSawInf; a
// genuine running max is never NaN or +inf, since such logits are flagged, not summed).
template <typename M>
__device__ __forceinline__ M encode_max(M m, int flags) {
  if (flags & kSawNaN) return static_cast<M>(nan_d());
  if (flags & kSawInf) return pos_inf<M>();
  return m;
}

template <typename Acc>
__device__ __forceinline__ Acc warp_sum(Acc v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

// <x, y> over n elements by one warp, accumulated in Acc.
template <typename T, typename Acc>
__device__ __forceinline__ Acc warp_dot(const T* x, const T* y, int64_t n, int lane) {
  Acc s = 0;
  for (int64_t d = lane; d < n; d += 32) s = fma(as_acc(x[d]), as_acc(y[d]), s);
  return warp_sum(s);
}

// ---- PTX wrappers (sm_80+) ------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; with valid = false nothing is read and the 16 bytes are zeroed.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lane l supplies the address of row (l % 8) of matrix (l / 8), and
// register j receives, in every lane, elements (row l / 4, columns 2 (l % 4) and +1) of matrix
// j (of its transpose with .trans).
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_u32(p))
               : "memory");
}

// c[16x8] += a[16x16] . b[16x8] with float32 accumulation. Fragments (g = lane / 4, t = lane % 4):
// a: {(g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..)}; b: {(k 2t..2t+1, n g),
// (k 2t+8.., n g)}; c: {(g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1)}.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1);
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&c)[4], const uint32_t (&a)[4],
                                                         uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&c)[4], const uint32_t (&a)[4],
                                                  uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ---- tile kernels -----------------------------------------------------------------------------

// Arguments of a tile kernel. Query-side rows are compacted positions p < *count (global row
// perm[p]); candidate rows are k < K.
template <typename Acc>
struct TileArgs {
  const void* X;       // owner embeddings (query for kForward/kGradQuery, neg_emb for kGradNeg)
  const void* Y;       // stream embeddings
  int64_t width;       // row stride and length of both
  int dpad;            // tensor cores: width rounded up to 16 (shared-memory row length)
  int64_t K;
  int64_t owner_cap;   // leading dimension of the partial outputs: N, or K for kGradNeg
  const int64_t* perm;
  const int64_t* count;
  const int64_t* target_ids;
  const int64_t* neg_ids;
  const Acc* neg_logq;  // may be null
  const Acc* alpha;     // [N] by p (backward)
  const Acc* beta;      // [N] by p (backward)
  const unsigned* amax_bits;  // kGradNeg on tensor cores: bits of max |alpha| (float)
  Acc inv_t;
  Acc* part_max;     // kForward: [splits, N]
  double* part_sum;  // kForward: [splits, N]
  Acc* part;         // backward: [splits, owner_cap, width]
};

// The stream-tile range [t_begin, t_end) of this block's split (blockIdx.y).
__device__ __forceinline__ void split_range(int64_t n_stream, int bn, int64_t& t_begin,
                                            int64_t& t_end) {
  const int64_t tiles = ceil_div(n_stream, bn);
  const int64_t per = ceil_div(tiles, static_cast<int64_t>(gridDim.y));
  t_begin = min64(tiles, static_cast<int64_t>(blockIdx.y) * per);
  t_end = min64(tiles, t_begin + per);
}

// Scale of the kGradNeg tensor-core operand: 2^e >= max |alpha| (a power of two, so scaling by
// it and back is exact), clamped so that neither 2^e nor 2^-e leaves the normal float range.
__device__ __forceinline__ void grad_neg_scale(const unsigned* amax_bits, float& scale,
                                               float& inv_scale) {
  scale = 1.f;
  inv_scale = 1.f;
  const float amax = __uint_as_float(*amax_bits);
  if (amax > 0.f && amax < pos_inf<float>()) {
    int e = 0;
    frexpf(amax, &e);  // amax = f 2^e with f in [0.5, 1): amax < 2^e
    e = max(-120, min(120, e));
    scale = ldexpf(1.f, e);
    inv_scale = ldexpf(1.f, -e);
  }
}

// Dynamic shared memory of the tensor-core tile kernel (bytes).
__host__ __device__ constexpr size_t tc_smem_bytes(int mode, int dpad) {
  const size_t ld = static_cast<size_t>(dpad) + TcTile::kPad;
  size_t bytes = static_cast<size_t>(TcTile::BM + 2 * TcTile::BN) * ld * 2;
  if (mode != kForward) bytes += static_cast<size_t>(TcTile::BM) * (TcTile::BN + TcTile::kPad) * 2;
  return bytes;
}

template <int MODE, typename T>
__global__ void __launch_bounds__(kThreads) tc_tile_kernel(const TileArgs<float> a) {
  static_assert(kIsLowPrecision<T>, "tensor-core tiles take bfloat16 or float16");
  constexpr int BM = TcTile::BM, BN = TcTile::BN, DV = TcTile::DV;
  constexpr bool kOwnerIsQuery = MODE != kGradNeg;
  constexpr int QS = kOwnerIsQuery ? BM : BN;  // query-side rows held in shared memory
  constexpr int CS = kOwnerIsQuery ? BN : BM;  // candidate-side rows
  constexpr int lde = BN + TcTile::kPad;
  constexpr int RM = MODE == kForward ? BM : 1;

  __shared__ int64_t s_qid[QS];
  __shared__ float s_qalpha[QS];
  __shared__ float s_qbeta[QS];
  __shared__ bool s_qvalid[QS];
  __shared__ int64_t s_cid[CS];
  __shared__ float s_clq[CS];
  __shared__ bool s_cvalid[CS];
  __shared__ float s_red_m[RM][2];
  __shared__ double s_red_s[RM][2];
  __shared__ int s_red_f[RM][2];

  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int ld = a.dpad + TcTile::kPad;  // multiple of 8 elements: 16-byte aligned rows
  T* Xs = reinterpret_cast<T*>(smem_raw);  // [BM][ld] owner tile (all of D)
  T* Ys = Xs + BM * ld;                    // [2][BN][ld] stream tiles (double buffer)
  T* Es = Ys + 2 * BN * ld;                // [BM][lde] E (backward)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 1, wn = warp & 1;  // 4 x 2 warps
  const int gid = lane >> 2, tig = lane & 3;
  const float INF = pos_inf<float>();

  const int64_t nq = *a.count;
  const int64_t n_owner = kOwnerIsQuery ? nq : a.K;
  const int64_t n_stream = kOwnerIsQuery ? a.K : nq;
  const int64_t owner0 = static_cast<int64_t>(blockIdx.x) * BM;
  // Query-owned blocks past the active rows have nothing to write (the finalize kernels read
  // p < count only). kGradNeg blocks always run: they must write their (possibly zero) partial.
  if (kOwnerIsQuery && owner0 >= n_owner) return;

  const T* X = static_cast<const T*>(a.X);
  const T* Y = static_cast<const T*>(a.Y);
  const int chunks = a.dpad / 8;  // 16-byte chunks per shared-memory row

  float scale = 1.f, inv_scale = 1.f;
  if constexpr (MODE == kGradNeg) grad_neg_scale(a.amax_bits, scale, inv_scale);

  // Owner side: per-row data and the owner tile (async; waited for with the first stream tile).
  for (int o = tid; o < BM; o += kThreads) {
    const int64_t idx = owner0 + o;
    const bool v = idx < n_owner;
    if constexpr (kOwnerIsQuery) {
      const int64_t row = v ? a.perm[idx] : 0;
      s_qid[o] = v ? a.target_ids[row] : 0;
      s_qbeta[o] = (v && MODE == kGradQuery) ? a.beta[idx] : 0.f;
      s_qalpha[o] = 0.f;  // kGradQuery applies alpha to the float32 result (finalize)
      s_qvalid[o] = v;
    } else {
      s_cid[o] = v ? a.neg_ids[idx] : 0;
      s_clq[o] = (v && a.neg_logq != nullptr) ? a.neg_logq[idx] : 0.f;
      s_cvalid[o] = v;
    }
  }
  for (int i = tid; i < BM * chunks; i += kThreads) {
    const int r = i / chunks, ch = i - r * chunks;
    const int64_t idx = owner0 + r;
    const int64_t col = static_cast<int64_t>(ch) * 8;
    const bool v = idx < n_owner && col < a.width;
    const int64_t row = !v ? 0 : (kOwnerIsQuery ? a.perm[idx] : idx);
    cp_async_16(Xs + r * ld + ch * 8, X + (v ? row * a.width + col : 0), v);
  }
  cp_async_commit();

  auto load_stream_tile = [&](int64_t t, int buf) {
    T* dst = Ys + buf * BN * ld;
    for (int i = tid; i < BN * chunks; i += kThreads) {
      const int r = i / chunks, ch = i - r * chunks;
      const int64_t idx = t * BN + r;
      const int64_t col = static_cast<int64_t>(ch) * 8;
      const bool v = idx < n_stream && col < a.width;
      const int64_t row = !v ? 0 : (kOwnerIsQuery ? idx : a.perm[idx]);
      cp_async_16(dst + r * ld + ch * 8, Y + (v ? row * a.width + col : 0), v);
    }
  };

  int64_t t_begin = 0, t_end = 0;
  split_range(n_stream, BN, t_begin, t_end);
  if (t_begin < t_end) load_stream_tile(t_begin, 0);
  cp_async_commit();

  // Forward state: rows (mt, h) of this thread, over its columns.
  float run_m[2][2];
  double run_s[2][2];
  int run_f[2][2];
  // Backward accumulators: [32 rows x 64 columns] of the block's [BM x DV] gradient slice.
  float acc_o[2][8][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      run_m[mt][h] = -INF;
      run_s[mt][h] = 0.0;
      run_f[mt][h] = 0;
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[mt][nt][e] = 0.f;
    }
  }
  const int dcol0 = static_cast<int>(blockIdx.z) * DV;

  for (int64_t t = t_begin; t < t_end; ++t) {
    const int buf = static_cast<int>((t - t_begin) & 1);
    if (t + 1 < t_end) load_stream_tile(t + 1, buf ^ 1);
    cp_async_commit();  // possibly empty: keeps "all but the newest group" = this tile

    // Stream side: per-row data of tile t (the previous iteration ended with a barrier).
    for (int s = tid; s < BN; s += kThreads) {
      const int64_t idx = t * BN + s;
      const bool v = idx < n_stream;
      if constexpr (kOwnerIsQuery) {
        s_cid[s] = v ? a.neg_ids[idx] : 0;
        s_clq[s] = (v && a.neg_logq != nullptr) ? a.neg_logq[idx] : 0.f;
        s_cvalid[s] = v;
      } else {
        const int64_t row = v ? a.perm[idx] : 0;
        s_qid[s] = v ? a.target_ids[row] : 0;
        s_qalpha[s] = v ? a.alpha[idx] * inv_scale : 0.f;
        s_qbeta[s] = v ? a.beta[idx] : 0.f;
        s_qvalid[s] = v;
      }
    }
    cp_async_wait<1>();
    __syncthreads();

    // S = X Y^T for this warp's 32 x 32 block: rows wm*32 + mt*16 + .., columns wn*32 + nt*8 + ..
    const T* Yb = Ys + buf * BN * ld;
    float acc[2][4][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.f;
    for (int k0 = 0; k0 < a.dpad; k0 += 16) {
      uint32_t af[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        ldsm_x4(af[mt], Xs + (wm * 32 + mt * 16 + (lane & 15)) * ld + k0 + (lane >> 4) * 8);
      }
      uint32_t bf[4][2];
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        // matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
        uint32_t r[4];
        ldsm_x4(r, Yb + (wn * 32 + np * 16 + (lane >> 4) * 8 + (lane & 7)) * ld + k0 +
                       ((lane >> 3) & 1) * 8);
        bf[2 * np][0] = r[0];
        bf[2 * np][1] = r[1];
        bf[2 * np + 1][0] = r[2];
        bf[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma_16816<T>(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
    }

    if constexpr (MODE == kForward) {
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int o = wm * 32 + mt * 16 + gid + 8 * h;
          const int64_t qid = s_qid[o];
          float z[8];
          float tmax = -INF;
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
            for (int j = 0; j < 2; ++j) {
              const int s = wn * 32 + nt * 8 + 2 * tig + j;
              float zz = acc[mt][nt][2 * h + j] * a.inv_t - s_clq[s];
              if (!s_cvalid[s] || s_cid[s] == qid) {
                zz = -INF;  // padding column or accidental hit
              } else if (isnan(zz)) {
                run_f[mt][h] |= kSawNaN;
                zz = -INF;
              } else if (zz == INF) {
                run_f[mt][h] |= kSawInf;
                zz = -INF;
              }
              z[nt * 2 + j] = zz;
              tmax = fmaxf(tmax, zz);
            }
          }
          if (tmax > -INF) {
            const float m_new = fmaxf(run_m[mt][h], tmax);
            float local = 0.f;
#pragma unroll
            for (int e = 0; e < 8; ++e) local += __expf(z[e] - m_new);
            run_s[mt][h] = run_s[mt][h] * static_cast<double>(__expf(run_m[mt][h] - m_new)) +
                           static_cast<double>(local);
            run_m[mt][h] = m_new;
          }
        }
      }
    } else {
      // E tile [owner][stream] in the input dtype.
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int o = wm * 32 + mt * 16 + gid + 8 * h;
#pragma unroll
          for (int nt = 0; nt < 4; ++nt) {
            const int s0 = wn * 32 + nt * 8 + 2 * tig;
            float e[2];
#pragma unroll
            for (int j = 0; j < 2; ++j) {
              const int s = s0 + j;
              const int qi = kOwnerIsQuery ? o : s;
              const int ci = kOwnerIsQuery ? s : o;
              float val = 0.f;  // padding and accidental hits: dL/dz = 0
              if (s_qvalid[qi] && s_cvalid[ci] && s_cid[ci] != s_qid[qi]) {
                const float zz = acc[mt][nt][2 * h + j] * a.inv_t - s_clq[ci];
                const float pe = __expf(zz - s_qbeta[qi]);
                val = MODE == kGradQuery ? pe : s_qalpha[qi] * pe;
              }
              e[j] = val;
            }
            *reinterpret_cast<typename Pair<T>::type*>(Es + o * lde + s0) = Pair<T>::make(e[0], e[1]);
          }
        }
      }
      __syncthreads();
      // acc_o[owner x DV slice] += E[owner x BN] . Y[BN x DV slice]; warp: 32 rows x 64 columns.
#pragma unroll
      for (int k0 = 0; k0 < BN; k0 += 16) {
        uint32_t af[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          ldsm_x4(af[mt], Es + (wm * 32 + mt * 16 + (lane & 15)) * lde + k0 + (lane >> 4) * 8);
        }
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          const int col0 = dcol0 + wn * 64 + np * 16;
          if (col0 < a.dpad) {  // warp-uniform; the slice may be wider than D
            // Y is [k = stream][n = column]: transposed loads give the col-major B fragments.
            // matrices: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15)
            uint32_t r[4];
            ldsm_x4_trans(r, Yb + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + col0 +
                                 (lane >> 4) * 8);
#pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
              mma_16816<T>(acc_o[mt][2 * np], af[mt], r[0], r[1]);
              mma_16816<T>(acc_o[mt][2 * np + 1], af[mt], r[2], r[3]);
            }
          }
        }
      }
    }
    __syncthreads();  // the next iteration overwrites the other stream buffer and the side data
  }
  cp_async_wait<0>();
  __syncthreads();

  if constexpr (MODE == kForward) {
    // Merge each row's state over the 4 lanes of a quad, then over the two column warps.
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int off = 1; off <= 2; off <<= 1) {
          const float om = __shfl_xor_sync(kFullMask, run_m[mt][h], off);
          const double os = __shfl_xor_sync(kFullMask, run_s[mt][h], off);
          const int of = __shfl_xor_sync(kFullMask, run_f[mt][h], off);
          lse_merge(run_m[mt][h], run_s[mt][h], om, os);
          run_f[mt][h] |= of;
        }
        if (tig == 0) {
          const int o = wm * 32 + mt * 16 + gid + 8 * h;
          s_red_m[o][wn] = run_m[mt][h];
          s_red_s[o][wn] = run_s[mt][h];
          s_red_f[o][wn] = run_f[mt][h];
        }
      }
    }
    __syncthreads();
    for (int o = tid; o < BM; o += kThreads) {
      const int64_t p = owner0 + o;
      if (p < n_owner) {
        float m = s_red_m[o][0];
        double s = s_red_s[o][0];
        lse_merge(m, s, s_red_m[o][1], s_red_s[o][1]);
        const int64_t at = static_cast<int64_t>(blockIdx.y) * a.owner_cap + p;
        a.part_max[at] = encode_max(m, s_red_f[o][0] | s_red_f[o][1]);
        a.part_sum[at] = s;
      }
    }
  } else {
    const float out_scale = MODE == kGradNeg ? scale : 1.f;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t orow = owner0 + wm * 32 + mt * 16 + gid + 8 * h;
        if (orow >= n_owner) continue;
        float* dst = a.part + (static_cast<int64_t>(blockIdx.y) * a.owner_cap + orow) * a.width;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          // width is a multiple of 8 on this path, so col and col + 1 are both in or both out.
          const int64_t col = dcol0 + wn * 64 + nt * 8 + 2 * tig;
          if (col < a.width) {
            *reinterpret_cast<float2*>(dst + col) =
                make_float2(acc_o[mt][nt][2 * h] * out_scale, acc_o[mt][nt][2 * h + 1] * out_scale);
          }
        }
      }
    }
  }
}

// Dynamic shared memory of the SIMT tile kernel (bytes).
template <typename Acc>
constexpr size_t simt_smem_bytes(int mode) {
  constexpr int ldc = SimtTile::DC + 1, lde = SimtTile::BN + 1;
  size_t bytes = static_cast<size_t>(SimtTile::BM + SimtTile::BN) * ldc * sizeof(Acc);
  if (mode != kForward) bytes += static_cast<size_t>(SimtTile::BM) * lde * sizeof(Acc);
  return bytes;
}

template <int MODE, typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) simt_tile_kernel(const TileArgs<Acc> a) {
  constexpr int BM = SimtTile::BM, BN = SimtTile::BN, DC = SimtTile::DC, DV = SimtTile::DV;
  // Odd row strides: threads reading down a column hit distinct banks.
  constexpr int ldc = DC + 1, lde = BN + 1;
  constexpr bool kOwnerIsQuery = MODE != kGradNeg;
  constexpr int QS = kOwnerIsQuery ? BM : BN;
  constexpr int CS = kOwnerIsQuery ? BN : BM;

  __shared__ int64_t s_qid[QS];
  __shared__ Acc s_qalpha[QS];
  __shared__ Acc s_qbeta[QS];
  __shared__ bool s_qvalid[QS];
  __shared__ int64_t s_cid[CS];
  __shared__ Acc s_clq[CS];
  __shared__ bool s_cvalid[CS];
  __shared__ int64_t s_own_row[BM];  // global row of each owner row (-1: none)
  __shared__ int64_t s_str_row[BN];  // global row of each stream row (-1: none)

  extern __shared__ __align__(16) unsigned char smem_raw[];
  Acc* Xs = reinterpret_cast<Acc*>(smem_raw);  // [BM][ldc]
  Acc* Ys = Xs + BM * ldc;                     // [BN][ldc]
  Acc* Es = Ys + BN * ldc;                     // [BM][lde] (backward)

  const int tid = threadIdx.x;
  const int tx = tid & 15, ty = tid >> 4;  // columns tx + 16 j, rows ty + 16 i
  const Acc INF = pos_inf<Acc>();

  const int64_t nq = *a.count;
  const int64_t n_owner = kOwnerIsQuery ? nq : a.K;
  const int64_t n_stream = kOwnerIsQuery ? a.K : nq;
  const int64_t owner0 = static_cast<int64_t>(blockIdx.x) * BM;
  if (kOwnerIsQuery && owner0 >= n_owner) return;

  const T* X = static_cast<const T*>(a.X);
  const T* Y = static_cast<const T*>(a.Y);
  const int64_t width = a.width;
  const int64_t nchunks = ceil_div(width, DC);
  const bool resident = nchunks == 1;  // the owner tile holds all of D: load it once

  for (int o = tid; o < BM; o += kThreads) {
    const int64_t idx = owner0 + o;
    const bool v = idx < n_owner;
    if constexpr (kOwnerIsQuery) {
      const int64_t row = v ? a.perm[idx] : -1;
      s_own_row[o] = row;
      s_qid[o] = v ? a.target_ids[row] : 0;
      s_qbeta[o] = (v && MODE == kGradQuery) ? a.beta[idx] : Acc(0);
      s_qalpha[o] = Acc(0);
      s_qvalid[o] = v;
    } else {
      s_own_row[o] = v ? idx : -1;
      s_cid[o] = v ? a.neg_ids[idx] : 0;
      s_clq[o] = (v && a.neg_logq != nullptr) ? a.neg_logq[idx] : Acc(0);
      s_cvalid[o] = v;
    }
  }
  __syncthreads();

  // dst[r][c] = src[row(r)][col0 + c] for c < DC (zero outside the rows and D).
  auto load_rows = [&](Acc* dst, const T* src, const int64_t* rows, int nrows, int64_t col0) {
    for (int i = tid; i < nrows * DC; i += kThreads) {
      const int r = i / DC, c = i - r * DC;
      const int64_t row = rows[r], col = col0 + c;
      dst[r * ldc + c] = (row >= 0 && col < width) ? as_acc(src[row * width + col]) : Acc(0);
    }
  };
  if (resident) load_rows(Xs, X, s_own_row, BM, 0);

  int64_t t_begin = 0, t_end = 0;
  split_range(n_stream, BN, t_begin, t_end);
  const int64_t dcol0 = static_cast<int64_t>(blockIdx.z) * DV;

  Acc run_m[4];
  double run_s[4];
  int run_f[4];
  Acc acc_o[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    run_m[i] = -INF;
    run_s[i] = 0.0;
    run_f[i] = 0;
#pragma unroll
    for (int j = 0; j < 4; ++j) acc_o[i][j] = Acc(0);
  }

  for (int64_t t = t_begin; t < t_end; ++t) {
    for (int s = tid; s < BN; s += kThreads) {
      const int64_t idx = t * BN + s;
      const bool v = idx < n_stream;
      if constexpr (kOwnerIsQuery) {
        s_str_row[s] = v ? idx : -1;
        s_cid[s] = v ? a.neg_ids[idx] : 0;
        s_clq[s] = (v && a.neg_logq != nullptr) ? a.neg_logq[idx] : Acc(0);
        s_cvalid[s] = v;
      } else {
        const int64_t row = v ? a.perm[idx] : -1;
        s_str_row[s] = row;
        s_qid[s] = v ? a.target_ids[row] : 0;
        s_qalpha[s] = v ? a.alpha[idx] : Acc(0);
        s_qbeta[s] = v ? a.beta[idx] : Acc(0);
        s_qvalid[s] = v;
      }
    }
    __syncthreads();

    Acc acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = Acc(0);
    for (int64_t c = 0; c < nchunks; ++c) {
      const int64_t col0 = c * DC;
      if (!resident) load_rows(Xs, X, s_own_row, BM, col0);
      load_rows(Ys, Y, s_str_row, BN, col0);
      __syncthreads();
      const int kw = static_cast<int>(min64(DC, width - col0));
      for (int k = 0; k < kw; ++k) {
        Acc av[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) av[i] = Xs[(ty + 16 * i) * ldc + k];
#pragma unroll
        for (int j = 0; j < 4; ++j) bv[j] = Ys[(tx + 16 * j) * ldc + k];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
      }
      __syncthreads();
    }

    if constexpr (MODE == kForward) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int o = ty + 16 * i;
        const int64_t qid = s_qid[o];
        Acc z[4];
        Acc tmax = -INF;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int s = tx + 16 * j;
          Acc zz = acc[i][j] * a.inv_t - s_clq[s];
          if (!s_cvalid[s] || s_cid[s] == qid) {
            zz = -INF;
          } else if (isnan(zz)) {
            run_f[i] |= kSawNaN;
            zz = -INF;
          } else if (zz == INF) {
            run_f[i] |= kSawInf;
            zz = -INF;
          }
          z[j] = zz;
          tmax = fmax(tmax, zz);
        }
        if (tmax > -INF) {
          const Acc m_new = fmax(run_m[i], tmax);
          Acc local = 0;
#pragma unroll
          for (int j = 0; j < 4; ++j) local += exp_acc(z[j] - m_new);
          run_s[i] = run_s[i] * static_cast<double>(exp_acc(run_m[i] - m_new)) +
                     static_cast<double>(local);
          run_m[i] = m_new;
        }
      }
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int o = ty + 16 * i, s = tx + 16 * j;
          const int qi = kOwnerIsQuery ? o : s;
          const int ci = kOwnerIsQuery ? s : o;
          Acc val = 0;  // padding and accidental hits: dL/dz = 0
          if (s_qvalid[qi] && s_cvalid[ci] && s_cid[ci] != s_qid[qi]) {
            const Acc zz = acc[i][j] * a.inv_t - s_clq[ci];
            const Acc pe = exp_acc(zz - s_qbeta[qi]);
            val = MODE == kGradQuery ? pe : s_qalpha[qi] * pe;
          }
          Es[o * lde + s] = val;
        }
      }
      // The stream rows' gradient-slice columns: already in Ys when it holds all of D.
      if (!resident) load_rows(Ys, Y, s_str_row, BN, dcol0);
      __syncthreads();
      // Ys column c now holds D column dcol0 + c: resident means D <= DC = DV, one slice, and
      // dcol0 == 0; otherwise the slice was just loaded at column 0.
      for (int k = 0; k < BN; ++k) {
        Acc av[4], bv[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) av[i] = Es[(ty + 16 * i) * lde + k];
#pragma unroll
        for (int j = 0; j < 4; ++j) bv[j] = Ys[k * ldc + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc_o[i][j] = fma(av[i], bv[j], acc_o[i][j]);
      }
    }
    __syncthreads();
  }

  if constexpr (MODE == kForward) {
    // A row's 16 threads are the 16 lanes tx = 0..15 of one half-warp.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int off = 1; off <= 8; off <<= 1) {
        const Acc om = __shfl_xor_sync(kFullMask, run_m[i], off);
        const double os = __shfl_xor_sync(kFullMask, run_s[i], off);
        const int of = __shfl_xor_sync(kFullMask, run_f[i], off);
        lse_merge(run_m[i], run_s[i], om, os);
        run_f[i] |= of;
      }
      const int64_t p = owner0 + ty + 16 * i;
      if (tx == 0 && p < n_owner) {
        const int64_t at = static_cast<int64_t>(blockIdx.y) * a.owner_cap + p;
        a.part_max[at] = encode_max(run_m[i], run_f[i]);
        a.part_sum[at] = run_s[i];
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t orow = owner0 + ty + 16 * i;
      if (orow >= n_owner) continue;
      Acc* dst = a.part + (static_cast<int64_t>(blockIdx.y) * a.owner_cap + orow) * width;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t col = dcol0 + tx + 16 * j;
        if (col < width) dst[col] = acc_o[i][j];
      }
    }
  }
}

// ---- per-row kernels --------------------------------------------------------------------------

template <typename T, typename Acc>
struct RowArgs {
  const T* query;
  const T* target_emb;
  int64_t N, width;
  const int64_t* perm;
  const int64_t* count;
  const int8_t* label;
  const double* weight;    // may be null
  const Acc* target_logq;  // may be null
  double inv_t;            // 1/T rounded to Acc, as the CPU kernel uses it
  // forward finalize
  int splits;
  const Acc* part_max;
  const double* part_sum;
  Acc* lse_all_out;
  Acc* lse_neg_out;
  double* row_nll;     // unweighted
  double* row_weight;
  // backward rows
  ReductionKind reduction;
  const double* grad_loss;
  const double* denom;         // sum of (weight / weight_scale) over the contributing rows
  const double* weight_scale;  // max weight of the contributing rows
  const Acc* lse_all;
  const Acc* lse_neg;
  Acc* alpha;
  Acc* beta;
  Acc* g0;
  unsigned* amax_bits;  // may be null
};

constexpr int kRowWarps = kThreads / 32;

// One warp per active row: merge the split partials into B, compute z0, A and the row loss.
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) fwd_finalize_kernel(const RowArgs<T, Acc> a) {
  const int lane = threadIdx.x & 31;
  const int64_t nq = *a.count;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kRowWarps;
  const double INF = pos_inf<double>();
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kRowWarps + (threadIdx.x >> 5); p < nq;
       p += stride) {
    const int64_t i = a.perm[p];
    const Acc dot = warp_dot<T, Acc>(a.query + i * a.width, a.target_emb + i * a.width, a.width, lane);
    if (lane != 0) continue;
    int flags = 0;
    Acc m = -pos_inf<Acc>();
    double s = 0.0;
    for (int sp = 0; sp < a.splits; ++sp) {
      const Acc me = a.part_max[static_cast<int64_t>(sp) * a.N + p];
      const double se = a.part_sum[static_cast<int64_t>(sp) * a.N + p];
      if (isnan(me)) flags |= kSawNaN;
      else if (me == pos_inf<Acc>()) flags |= kSawInf;
      else lse_merge(m, s, me, se);
    }
    double B;
    if (flags & kSawNaN) B = nan_d();
    else if (flags & kSawInf) B = INF;
    else if (s > 0.0) B = static_cast<double>(m) + log(s);
    else B = -INF;  // no negative left for this row
    const double z0 = static_cast<double>(dot) * a.inv_t -
                      (a.target_logq != nullptr ? static_cast<double>(a.target_logq[i]) : 0.0);
    // A = LSE(z0, B), written so that B = -inf gives A = z0 and NaN propagates.
    const double A = B == -INF ? z0 : fmax(z0, B) + log1p(exp(-fabs(z0 - B)));
    a.lse_all_out[i] = static_cast<Acc>(A);
    a.lse_neg_out[i] = static_cast<Acc>(B);
    const double w = a.weight != nullptr ? a.weight[i] : 1.0;
    if (a.label[i] > 0) {
      a.row_nll[i] = softplus_d(B - z0);
      a.row_weight[i] = w;
    } else if (B != -INF) {
      a.row_nll[i] = softplus_d(z0 - B);
      a.row_weight[i] = w;
    }  // else: 1 - p = 0, the row is left out (loss 0, not in the mean's denominator)
  }
}

// One warp per contributing row: z0 and the row's dL/dz coefficients (see the file comment).
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) bwd_rows_kernel(const RowArgs<T, Acc> a) {
  const int lane = threadIdx.x & 31;
  const int64_t nq = *a.count;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kRowWarps;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kRowWarps + (threadIdx.x >> 5); p < nq;
       p += stride) {
    const int64_t i = a.perm[p];
    const Acc dot = warp_dot<T, Acc>(a.query + i * a.width, a.target_emb + i * a.width, a.width, lane);
    if (lane != 0) continue;
    const double z0 = static_cast<double>(dot) * a.inv_t -
                      (a.target_logq != nullptr ? static_cast<double>(a.target_logq[i]) : 0.0);
    // c = d L_total / d nll_i; for "mean" the weight is normalised first, as on the CPU
    // (w * (G / sum) can overflow where (w / sum) * G does not: denormal weights).
    const double w = a.weight != nullptr ? a.weight[i] : 1.0;
    double c;
    if (a.reduction == ReductionKind::None) c = w * a.grad_loss[i];
    else if (a.reduction == ReductionKind::Sum) c = w * a.grad_loss[0];
    else c = *a.denom > 0.0 ? ((w / *a.weight_scale) / *a.denom) * a.grad_loss[0] : 0.0;
    const double B = static_cast<double>(a.lse_neg[i]);
    Acc al, be, g;
    if (a.label[i] > 0) {
      g = static_cast<Acc>(-c * sigmoid_d(B - z0) * a.inv_t);
      al = static_cast<Acc>(c * a.inv_t);
      be = a.lse_all[i];
    } else {
      const double p0 = sigmoid_d(z0 - B);
      g = static_cast<Acc>(c * p0 * a.inv_t);
      al = static_cast<Acc>(-c * p0 * a.inv_t);
      be = a.lse_neg[i];
    }
    a.alpha[p] = al;
    a.beta[p] = be;
    a.g0[p] = g;
    if (a.amax_bits != nullptr) {
      // Non-negative floats order like their bit patterns; non-finite alphas are left out of
      // the scale (they propagate through E regardless).
      const float fa = fabsf(static_cast<float>(al));
      if (fa < pos_inf<float>()) atomicMax(a.amax_bits, __float_as_uint(fa));
    }
  }
}

// dQuery = alpha * sum_splits(part) + g0 * target; dTarget = g0 * query (active rows only).
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) dq_finalize_kernel(
    const Acc* part, int splits, int64_t N, int64_t width, const int64_t* perm,
    const int64_t* count, const Acc* alpha, const Acc* g0, const T* query, const T* target_emb,
    T* grad_query, T* grad_target) {
  const int64_t total = *count * width;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += stride) {
    const int64_t p = idx / width, d = idx - p * width;
    const int64_t i = perm[p];
    Acc s = 0;
    for (int sp = 0; sp < splits; ++sp) s += part[(static_cast<int64_t>(sp) * N + p) * width + d];
    const Acc g = g0[p];
    const int64_t at = i * width + d;
    grad_query[at] = Out<T>::from(alpha[p] * s + g * as_acc(target_emb[at]));
    grad_target[at] = Out<T>::from(g * as_acc(query[at]));
  }
}

// dNeg = sum_splits(part).
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) dn_finalize_kernel(const Acc* part, int splits,
                                                               int64_t K, int64_t width,
                                                               T* grad_neg) {
  const int64_t total = K * width;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += stride) {
    Acc s = 0;
    for (int sp = 0; sp < splits; ++sp) s += part[static_cast<int64_t>(sp) * total + idx];
    grad_neg[idx] = Out<T>::from(s);
  }
}

// ---- host side --------------------------------------------------------------------------------

#define NEGREC_CUDA_TRY(call, what)                    \
  do {                                                 \
    const cudaError_t err_ = (call);                   \
    if (err_ != cudaSuccess) return LaunchResult{err_, what}; \
  } while (0)

// After every kernel launch: a bad configuration or an earlier asynchronous error surfaces here.
#define NEGREC_LAUNCH_CHECK(what) NEGREC_CUDA_TRY(cudaGetLastError(), what)

template <typename Kernel>
bool kernel_fits(Kernel kernel, size_t dyn_smem, const DeviceInfo& dev) {
  cudaFuncAttributes attr{};
  if (cudaFuncGetAttributes(&attr, kernel) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error so it does not leak into a launch
    return false;
  }
  return attr.sharedSizeBytes + dyn_smem <= static_cast<size_t>(dev.max_smem_per_block_optin);
}

template <typename T>
bool tc_kernels_fit(int dpad, const DeviceInfo& dev) {
  return kernel_fits(tc_tile_kernel<kForward, T>, tc_smem_bytes(kForward, dpad), dev) &&
         kernel_fits(tc_tile_kernel<kGradQuery, T>, tc_smem_bytes(kGradQuery, dpad), dev) &&
         kernel_fits(tc_tile_kernel<kGradNeg, T>, tc_smem_bytes(kGradNeg, dpad), dev);
}

int64_t round_up(int64_t x, int64_t m) { return ceil_div(x, m) * m; }

// Splits of the stream range so that about one wave of blocks runs even when the owner side
// is small (e.g. few rows against a large catalogue); at least two stream tiles per split.
int choose_splits(int64_t blocks, int64_t stream_tiles, const DeviceInfo& dev) {
  const int64_t sms = max64(1, dev.num_sms);
  if (blocks >= sms) return 1;
  int64_t s = ceil_div(sms, max64(1, blocks));
  s = min64(s, max64(1, stream_tiles / 2));
  s = min64(s, 64);
  return static_cast<int>(max64(1, s));
}

template <typename T, typename Acc>
TileArgs<Acc> tile_args(const Problem& pb, const void* X, const void* Y, int64_t owner_cap,
                        int dpad) {
  TileArgs<Acc> a{};
  a.X = X;
  a.Y = Y;
  a.width = pb.width;
  a.dpad = dpad;
  a.K = pb.K;
  a.owner_cap = owner_cap;
  a.perm = pb.perm;
  a.count = pb.count;
  a.target_ids = pb.target_ids;
  a.neg_ids = pb.neg_ids;
  a.neg_logq = static_cast<const Acc*>(pb.neg_logq);
  a.inv_t = static_cast<Acc>(pb.inv_temperature);
  return a;
}

template <typename T, typename Acc>
RowArgs<T, Acc> row_args(const Problem& pb) {
  RowArgs<T, Acc> r{};
  r.query = static_cast<const T*>(pb.query);
  r.target_emb = static_cast<const T*>(pb.target_emb);
  r.N = pb.N;
  r.width = pb.width;
  r.perm = pb.perm;
  r.count = pb.count;
  r.label = pb.label;
  r.weight = pb.weight;
  r.target_logq = static_cast<const Acc*>(pb.target_logq);
  // The CPU kernel rounds 1/T to the accumulation dtype before using it.
  r.inv_t = static_cast<double>(static_cast<Acc>(pb.inv_temperature));
  return r;
}

int row_grid(int64_t rows, const DeviceInfo& dev) {
  return static_cast<int>(max64(1, min64(ceil_div(rows, kRowWarps), int64_t{dev.num_sms} * 16)));
}

int elem_grid(int64_t n, const DeviceInfo& dev) {
  return static_cast<int>(max64(1, min64(ceil_div(n, kThreads), int64_t{dev.num_sms} * 32)));
}

// Launches one tile kernel (tensor-core or SIMT) over grid (owner tiles, splits, slices).
template <int MODE, typename T, typename Acc>
LaunchResult launch_tile(const TileArgs<Acc>& ta, bool tensor_cores, int64_t owner_rows,
                         int splits, int64_t slices, cudaStream_t stream, const char* what) {
  if constexpr (kIsLowPrecision<T>) {
    if (tensor_cores) {
      const dim3 grid(static_cast<unsigned>(ceil_div(owner_rows, TcTile::BM)),
                      static_cast<unsigned>(splits), static_cast<unsigned>(slices));
      const size_t smem = tc_smem_bytes(MODE, ta.dpad);
      NEGREC_CUDA_TRY(cudaFuncSetAttribute(tc_tile_kernel<MODE, T>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)),
                      what);
      tc_tile_kernel<MODE, T><<<grid, kThreads, smem, stream>>>(ta);
      NEGREC_LAUNCH_CHECK(what);
      return {};
    }
  }
  const dim3 grid(static_cast<unsigned>(ceil_div(owner_rows, SimtTile::BM)),
                  static_cast<unsigned>(splits), static_cast<unsigned>(slices));
  const size_t smem = simt_smem_bytes<Acc>(MODE);
  NEGREC_CUDA_TRY(cudaFuncSetAttribute(simt_tile_kernel<MODE, T, Acc>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)),
                  what);
  simt_tile_kernel<MODE, T, Acc><<<grid, kThreads, smem, stream>>>(ta);
  NEGREC_LAUNCH_CHECK(what);
  return {};
}

int tc_dpad(const Plan& plan) { return static_cast<int>(round_up(plan.width, 16)); }

int64_t grad_slices(const Plan& plan) {
  return plan.tensor_cores ? ceil_div(tc_dpad(plan), TcTile::DV) : ceil_div(plan.width, SimtTile::DV);
}

template <typename T, typename Acc>
LaunchResult forward_impl(const Problem& pb, const Plan& plan, const ForwardOutputs& out,
                          const DeviceInfo& dev, cudaStream_t stream) {
  if (pb.N == 0) return {};
  const bool tc = kIsLowPrecision<T> && plan.tensor_cores;
  TileArgs<Acc> ta = tile_args<T, Acc>(pb, pb.query, pb.neg_emb, pb.N, tc ? tc_dpad(plan) : 0);
  ta.part_max = static_cast<Acc*>(out.part_max);
  ta.part_sum = out.part_sum;
  LaunchResult r = launch_tile<kForward, T, Acc>(ta, tc, pb.N, plan.fwd_splits, 1, stream,
                                                 "fused_loss forward tile kernel");
  if (r.error != cudaSuccess) return r;

  RowArgs<T, Acc> ra = row_args<T, Acc>(pb);
  ra.splits = plan.fwd_splits;
  ra.part_max = static_cast<const Acc*>(out.part_max);
  ra.part_sum = out.part_sum;
  ra.lse_all_out = static_cast<Acc*>(out.lse_all);
  ra.lse_neg_out = static_cast<Acc*>(out.lse_neg);
  ra.row_nll = out.row_nll;
  ra.row_weight = out.row_weight;
  fwd_finalize_kernel<T, Acc><<<row_grid(pb.N, dev), kThreads, 0, stream>>>(ra);
  NEGREC_LAUNCH_CHECK("fused_loss forward finalize kernel");
  return {};
}

template <typename T, typename Acc>
LaunchResult backward_impl(const Problem& pb, const Plan& plan, const BackwardArgs& ba,
                           const DeviceInfo& dev, cudaStream_t stream) {
  const bool tc = kIsLowPrecision<T> && plan.tensor_cores;
  if (pb.N > 0) {
    RowArgs<T, Acc> ra = row_args<T, Acc>(pb);
    ra.reduction = ba.reduction;
    ra.grad_loss = ba.grad_loss;
    ra.denom = ba.denom;
    ra.weight_scale = ba.weight_scale;
    ra.lse_all = static_cast<const Acc*>(ba.lse_all);
    ra.lse_neg = static_cast<const Acc*>(ba.lse_neg);
    ra.alpha = static_cast<Acc*>(ba.alpha);
    ra.beta = static_cast<Acc*>(ba.beta);
    ra.g0 = static_cast<Acc*>(ba.g0);
    ra.amax_bits = tc ? ba.amax_bits : nullptr;
    bwd_rows_kernel<T, Acc><<<row_grid(pb.N, dev), kThreads, 0, stream>>>(ra);
    NEGREC_LAUNCH_CHECK("fused_loss backward row kernel");
  }
  const int64_t slices = grad_slices(plan);
  if (slices == 0) return {};  // D == 0: the gradients are empty
  const int dpad = tc ? tc_dpad(plan) : 0;

  if (pb.N > 0) {
    TileArgs<Acc> ta = tile_args<T, Acc>(pb, pb.query, pb.neg_emb, pb.N, dpad);
    ta.beta = static_cast<const Acc*>(ba.beta);
    ta.part = static_cast<Acc*>(ba.dq_part);
    LaunchResult r = launch_tile<kGradQuery, T, Acc>(ta, tc, pb.N, plan.dq_splits, slices, stream,
                                                     "fused_loss backward grad-query tile kernel");
    if (r.error != cudaSuccess) return r;
    dq_finalize_kernel<T, Acc><<<elem_grid(pb.N * pb.width, dev), kThreads, 0, stream>>>(
        static_cast<const Acc*>(ba.dq_part), plan.dq_splits, pb.N, pb.width, pb.perm, pb.count,
        static_cast<const Acc*>(ba.alpha), static_cast<const Acc*>(ba.g0),
        static_cast<const T*>(pb.query), static_cast<const T*>(pb.target_emb),
        static_cast<T*>(ba.grad_query), static_cast<T*>(ba.grad_target));
    NEGREC_LAUNCH_CHECK("fused_loss backward grad-query finalize kernel");
  }
  if (pb.K > 0) {
    TileArgs<Acc> ta = tile_args<T, Acc>(pb, pb.neg_emb, pb.query, pb.K, dpad);
    ta.alpha = static_cast<const Acc*>(ba.alpha);
    ta.beta = static_cast<const Acc*>(ba.beta);
    ta.amax_bits = ba.amax_bits;
    ta.part = static_cast<Acc*>(ba.dn_part);
    LaunchResult r = launch_tile<kGradNeg, T, Acc>(ta, tc, pb.K, plan.dn_splits, slices, stream,
                                                   "fused_loss backward grad-neg tile kernel");
    if (r.error != cudaSuccess) return r;
    dn_finalize_kernel<T, Acc><<<elem_grid(pb.K * pb.width, dev), kThreads, 0, stream>>>(
        static_cast<const Acc*>(ba.dn_part), plan.dn_splits, pb.K, pb.width,
        static_cast<T*>(ba.grad_neg));
    NEGREC_LAUNCH_CHECK("fused_loss backward grad-neg finalize kernel");
  }
  return {};
}

}  // namespace

Plan plan_fused_loss(DType dtype, int64_t N, int64_t K, int64_t D, const DeviceInfo& dev) {
  Plan plan;
  const int64_t dpad = round_up(D, 16);
  bool tc = false;
  if (dpad <= TcTile::kMaxDpad) {
    if (dtype == DType::BFloat16) tc = tc_kernels_fit<__nv_bfloat16>(static_cast<int>(dpad), dev);
    if (dtype == DType::Float16) tc = tc_kernels_fit<__half>(static_cast<int>(dpad), dev);
  }
  plan.tensor_cores = tc;
  plan.width = tc ? round_up(D, 8) : D;
  const int64_t owner_tile = tc ? TcTile::BM : SimtTile::BM;
  const int64_t stream_tile = tc ? TcTile::BN : SimtTile::BN;
  const int64_t slices = max64(1, grad_slices(plan));
  const int64_t row_tiles = ceil_div(N, owner_tile);
  const int64_t cand_tiles = ceil_div(K, owner_tile);
  plan.fwd_splits = choose_splits(row_tiles, ceil_div(K, stream_tile), dev);
  plan.dq_splits = choose_splits(row_tiles * slices, ceil_div(K, stream_tile), dev);
  plan.dn_splits = choose_splits(cand_tiles * slices, ceil_div(N, stream_tile), dev);
  return plan;
}

LaunchResult launch_fused_loss_forward(const Problem& problem, const Plan& plan,
                                       const ForwardOutputs& out, const DeviceInfo& dev,
                                       cudaStream_t stream) {
  switch (problem.dtype) {
    case DType::Float32: return forward_impl<float, float>(problem, plan, out, dev, stream);
    case DType::Float64: return forward_impl<double, double>(problem, plan, out, dev, stream);
    case DType::BFloat16: return forward_impl<__nv_bfloat16, float>(problem, plan, out, dev, stream);
    case DType::Float16: return forward_impl<__half, float>(problem, plan, out, dev, stream);
  }
  return LaunchResult{cudaErrorInvalidValue, "fused_loss forward: unknown dtype"};
}

LaunchResult launch_fused_loss_backward(const Problem& problem, const Plan& plan,
                                        const BackwardArgs& args, const DeviceInfo& dev,
                                        cudaStream_t stream) {
  switch (problem.dtype) {
    case DType::Float32: return backward_impl<float, float>(problem, plan, args, dev, stream);
    case DType::Float64: return backward_impl<double, double>(problem, plan, args, dev, stream);
    case DType::BFloat16:
      return backward_impl<__nv_bfloat16, float>(problem, plan, args, dev, stream);
    case DType::Float16: return backward_impl<__half, float>(problem, plan, args, dev, stream);
  }
  return LaunchResult{cudaErrorInvalidValue, "fused_loss backward: unknown dtype"};
}

}  // namespace negrec::cuda
