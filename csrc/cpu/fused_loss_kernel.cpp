// CPU kernels of negrec::fused_loss and negrec::fused_loss_backward.
//
// Layout of the work: the rows that contribute (label != 0) are cut into blocks of
// `tile.rows`; blocks run in parallel (at::parallel_for), and each block walks the K shared
// candidates in tiles of `tile.cols`. A tile of logits [rows, cols] is one GEMM into a
// thread-local buffer (ATen -> MKL/OpenBLAS, single-threaded inside the parallel region),
// consumed at once:
//   forward : an online log-sum-exp over the negatives per row (max, rescaled sum);
//   backward: the logits are recomputed (no [N, K] state is ever kept), turned into dL/dz in
//             place, and two more GEMMs push them into dQuery (per block) and dNeg (a per-thread
//             [K, D] accumulator, summed at the end).
// Accidental hits are masked after the logits are scaled by 1/T, as in the reference (see
// TileHits). The process-wide knobs (tile shape, float32 instruction set) are read once per
// call (CallSettings) and passed down: they may change concurrently between calls.
// Weights stay in float64 (as given, at most widened), and so do the per-row losses that the
// reductions use: a float32 cast would turn a weight of 1e39 into inf (a NaN mean) and one of
// 1e-50 into 0 (a mean of 0). The mean weighs row i by w_i / sum(w) formed as in MeanWeights.
// So forward + backward is four GEMMs of N x K x D against the three of a plain
// materialised implementation, with O(threads * (tile + K * D)) extra memory.
#include "cpu/fused_loss_cpu.h"
#include "cpu/vec_math.h"
#include "fused_loss.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/irange.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace negrec::cpu {

namespace {

// rows and cols (both < 2^32 after validation) packed in one word, so that readers always see
// a pair that was set together.
uint64_t pack(TileConfig t) {
  return (static_cast<uint64_t>(t.rows) << 32) | static_cast<uint64_t>(t.cols);
}

TileConfig unpack(uint64_t v) {
  return {static_cast<int64_t>(v >> 32), static_cast<int64_t>(v & 0xFFFFFFFFu)};
}

std::atomic<uint64_t>& packed_tile_config() {
  static std::atomic<uint64_t> packed{pack(TileConfig{})};
  return packed;
}

}  // namespace

TileConfig tile_config() { return unpack(packed_tile_config().load(std::memory_order_relaxed)); }

void set_tile_config(TileConfig config) {
  constexpr const char* kWhere = "_set_cpu_tile_config";
  TORCH_CHECK_VALUE(config.rows >= 1 && config.rows <= kMaxTileRows, kWhere,
                    ": rows must be in [1, ", kMaxTileRows, "]; got ", config.rows);
  TORCH_CHECK_VALUE(config.cols >= 1 && config.cols <= kMaxTileCols, kWhere,
                    ": cols must be in [1, ", kMaxTileCols, "]; got ", config.cols);
  TORCH_CHECK_VALUE(config.rows * config.cols <= kMaxTileElements, kWhere,
                    ": rows * cols must be <= ", kMaxTileElements, " (one tile buffer per thread); "
                    "got ", config.rows, " * ", config.cols, " = ", config.rows * config.cols);
  packed_tile_config().store(pack(config), std::memory_order_relaxed);
}

namespace {

// What one kernel call uses of the process-wide knobs, read once at its start.
struct CallSettings {
  TileConfig tile;
  vec::Isa isa;
};

CallSettings call_settings() { return {tile_config(), vec::current_float_isa()}; }

template <typename T>
constexpr T kInf = std::numeric_limits<T>::infinity();

// log(1 + exp(x)) without overflow or cancellation.
inline double softplus(double x) {
  if (std::isnan(x)) return x;
  return std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x)));
}

// Max over the non-NaN entries of a row and whether it holds a NaN (what
// vec::scale_shift_max reports, for a row that is already scaled).
template <typename T>
vec::RowMax<T> row_max(const T* z, int64_t n) {
  vec::RowMax<T> m{-std::numeric_limits<T>::infinity(), false};
  for (int64_t k = 0; k < n; ++k) {
    if (std::isnan(z[k])) m.has_nan = true;
    else if (z[k] > m.max) m.max = z[k];
  }
  return m;
}

// 1 / (1 + exp(-x)), for x in [-inf, inf].
inline double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

// The weights of the mean over the contributing rows, w_i / sum_j w_j, computed as
// (w_i / m) / sum_j (w_j / m) with m = max_j w_j, so that neither the sum (weights near the
// float64 maximum) nor 1 / sum (denormal weights: 1 / 5e-324 overflows) leaves the float64
// range. All 0 when no contributing row has a positive weight (the mean is then 0).
class MeanWeights {
 public:
  template <typename Weight>
  MeanWeights(const std::vector<int64_t>& rows, const Weight& weight) {
    for (const int64_t i : rows) scale_ = std::max(scale_, weight(i));
    if (scale_ > 0.0) {
      for (const int64_t i : rows) denom_ += weight(i) / scale_;
    }
  }

  double of(double w) const { return denom_ > 0.0 ? (w / scale_) / denom_ : 0.0; }

 private:
  double scale_ = 0.0;
  double denom_ = 0.0;
};

// Rows that take part: label != 0. Kept in their original order.
std::vector<int64_t> active_rows(const at::Tensor& label8) {
  const int8_t* lab = label8.data_ptr<int8_t>();
  std::vector<int64_t> rows;
  rows.reserve(label8.numel());
  for (const auto i : c10::irange(label8.numel())) {
    if (lab[i] != 0) rows.push_back(i);
  }
  return rows;
}

// Accidental hits: candidate positions whose id equals a row's target id. Candidate positions
// sorted by (id, position); a row's hits are the contiguous run of its target id, ascending in
// position, so a block walks them with a cursor as its tiles advance: O(hits) per row in total,
// whatever the number of duplicates.
struct HitIndex {
  std::vector<int64_t> sorted_ids;
  std::vector<int64_t> positions;

  explicit HitIndex(const at::Tensor& neg_ids) {
    const int64_t K = neg_ids.numel();
    const int64_t* ids = neg_ids.data_ptr<int64_t>();
    positions.resize(K);
    std::iota(positions.begin(), positions.end(), int64_t{0});
    std::stable_sort(positions.begin(), positions.end(),
                     [ids](int64_t a, int64_t b) { return ids[a] < ids[b]; });
    sorted_ids.resize(K);
    for (const auto k : c10::irange(K)) sorted_ids[k] = ids[positions[k]];
  }

  std::pair<int64_t, int64_t> range(int64_t target) const {
    auto [lo, hi] = std::equal_range(sorted_ids.begin(), sorted_ids.end(), target);
    return {lo - sorted_ids.begin(), hi - sorted_ids.begin()};
  }
};

// The accidental hits of a block's rows inside one candidate tile [k0, k0 + kb): those of row r
// are at positions hits.positions[begin[r] .. end[r]).
//
// They are masked after the tile is scaled by 1/T and shifted by logQ, as the reference's
// masked_fill does: masking first (storing -inf in the raw dot products) would give
// -inf * (1/T) = NaN when 1/T rounds to 0 (float32, T > ~1.4e45), and a hit's NaN logit must not
// reach the row either.
struct TileHits {
  const HitIndex& hits;
  const int64_t* begin;
  const int64_t* end;
  int64_t k0;

  bool any(int64_t r) const { return begin[r] < end[r]; }

  template <typename T>
  void fill(int64_t r, T* row, T value) const {
    for (int64_t c = begin[r]; c < end[r]; ++c) row[hits.positions[c] - k0] = value;
  }
};

// C = A . B^T or C += ..., all on raw row-major buffers, through ATen's GEMM (which inside a
// parallel region runs single-threaded on the calling thread).
template <typename T>
at::Tensor view2d(const T* ptr, int64_t rows, int64_t cols, int64_t ld) {
  return at::from_blob(const_cast<T*>(ptr), {rows, cols}, {ld, 1},
                       at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

// Inputs converted once to the accumulation type, contiguous.
template <typename T>
struct Inputs {
  at::Tensor q, t, n, tlq, nlq, w, tid, nid, label8;
  const T* Q;
  const T* Tg;
  const T* Nn;
  const T* TLQ;
  const T* NLQ;
  const double* W;  // float64 whatever the accumulation dtype (see the file comment)
  const int64_t* TID;
  const int8_t* LAB;

  Inputs(const at::Tensor& query, const at::Tensor& target_emb, const at::Tensor& neg_emb,
         const at::Tensor& target_ids, const at::Tensor& label,
         const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& target_logq,
         const std::optional<at::Tensor>& neg_logq, at::ScalarType acc) {
    q = query.to(acc).contiguous();
    t = target_emb.to(acc).contiguous();
    n = neg_emb.to(acc).contiguous();
    tid = target_ids.contiguous();
    label8 = label.to(at::kChar).contiguous();
    if (target_logq) tlq = target_logq->to(acc).contiguous();
    if (neg_logq) nlq = neg_logq->to(acc).contiguous();
    if (weight) w = weight->to(at::kDouble).contiguous();
    Q = q.data_ptr<T>();
    Tg = t.data_ptr<T>();
    Nn = n.data_ptr<T>();
    TLQ = tlq.defined() ? tlq.data_ptr<T>() : nullptr;
    NLQ = nlq.defined() ? nlq.data_ptr<T>() : nullptr;
    W = w.defined() ? w.data_ptr<double>() : nullptr;
    TID = tid.data_ptr<int64_t>();
    LAB = label8.data_ptr<int8_t>();
  }

  double weight(int64_t i) const { return W ? W[i] : 1.0; }
};

// Visits the logits of one block of rows, tile by tile (`cols` candidates per tile: the call's
// snapshot, which sized S). For each tile it computes S = Qb . N[k0:k0+kb]^T and calls
// on_tile(k0, kb, S, tile_hits) where S is [rb, kb] row-major (raw dot products, before 1/T,
// logQ and the masking of tile_hits, which on_tile applies).
template <typename T, typename OnTile>
void for_each_logit_tile(const Inputs<T>& in, const FusedLossParams& p, const HitIndex& hits,
                         const std::vector<int64_t>& block_rows, const T* Qb, T* S, int64_t cols,
                         OnTile&& on_tile) {
  const int64_t rb = static_cast<int64_t>(block_rows.size());
  const int64_t K = p.K, D = p.D;
  // Per row, its hits not yet visited [cursor, end) and those of the current tile [cursor, stop).
  std::vector<int64_t> cursor(rb), end(rb), stop(rb);
  for (const auto r : c10::irange(rb)) {
    std::tie(cursor[r], end[r]) = hits.range(in.TID[block_rows[r]]);
  }
  const at::Tensor Qv = view2d(Qb, rb, D, D);
  for (int64_t k0 = 0; k0 < K; k0 += cols) {
    const int64_t kb = std::min(cols, K - k0);
    at::Tensor Sv = view2d(S, rb, kb, kb);
    at::mm_out(Sv, Qv, view2d(in.Nn + k0 * D, kb, D, D).t());
    for (const auto r : c10::irange(rb)) {
      int64_t c = cursor[r];
      while (c < end[r] && hits.positions[c] < k0 + kb) ++c;
      stop[r] = c;
    }
    on_tile(k0, kb, S, TileHits{hits, cursor.data(), stop.data(), k0});
    cursor.swap(stop);
  }
}

template <typename T>
std::vector<at::Tensor> forward_impl(const at::Tensor& query, const at::Tensor& target_emb,
                                     const at::Tensor& neg_emb, const at::Tensor& target_ids,
                                     const at::Tensor& neg_ids, const at::Tensor& label,
                                     const std::optional<at::Tensor>& weight,
                                     const std::optional<at::Tensor>& target_logq,
                                     const std::optional<at::Tensor>& neg_logq,
                                     const FusedLossParams& p) {
  const Inputs<T> in(query, target_emb, neg_emb, target_ids, label, weight, target_logq, neg_logq,
                     p.acc_dtype);
  const auto opts = query.options().dtype(p.acc_dtype);
  at::Tensor lse_all = at::zeros({p.N}, opts);
  at::Tensor lse_neg = at::zeros({p.N}, opts);
  // float64 per-row losses, unweighted (NLL) and weighted (RL): the reductions use them
  // unrounded (see the file comment)
  at::Tensor row_loss = at::zeros({p.N}, opts.dtype(at::kDouble));
  std::vector<double> NLL(p.N, 0.0);
  T* LA = lse_all.data_ptr<T>();
  T* LN = lse_neg.data_ptr<T>();
  double* RL = row_loss.data_ptr<double>();

  const std::vector<int64_t> rows = active_rows(in.label8);
  const HitIndex hits(neg_ids.contiguous());
  const int64_t NA = static_cast<int64_t>(rows.size()), D = p.D;
  const CallSettings settings = call_settings();
  const TileConfig tile = settings.tile;
  const vec::Isa isa = settings.isa;
  const int64_t nblocks = (NA + tile.rows - 1) / tile.rows;
  const T invT = static_cast<T>(p.inv_temperature);

  at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
    // The tile GEMMs below act on plain buffers: skip the autograd dispatch layers.
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    std::vector<T> Qb(tile.rows * D), S(tile.rows * tile.cols);
    std::vector<double> run_sum(tile.rows);
    std::vector<T> run_max(tile.rows);
    std::vector<char> seen_nan(tile.rows), seen_inf(tile.rows);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * tile.rows, rb = std::min(tile.rows, NA - r0);
      const std::vector<int64_t> block(rows.begin() + r0, rows.begin() + r0 + rb);
      for (const auto r : c10::irange(rb)) {
        std::copy_n(in.Q + block[r] * D, D, Qb.data() + r * D);
        run_sum[r] = 0.0;
        run_max[r] = -kInf<T>;
        seen_nan[r] = 0;
        seen_inf[r] = 0;
      }
      for_each_logit_tile<T>(in, p, hits, block, Qb.data(), S.data(), tile.cols,
                             [&](int64_t k0, int64_t kb, T* St, const TileHits& tile_hits) {
        const T* shift = in.NLQ ? in.NLQ + k0 : nullptr;
        for (const auto r : c10::irange(rb)) {
          T* z = St + r * kb;
          auto tm = vec::scale_shift_max(z, kb, invT, shift, isa);
          if (tile_hits.any(r)) {  // mask, then max and NaN flag without the hits
            tile_hits.fill(r, z, -kInf<T>);
            tm = row_max(z, kb);
          }
          seen_nan[r] |= static_cast<char>(tm.has_nan);
          if (tm.max == -kInf<T>) continue;  // everything in this tile is masked (or NaN)
          if (tm.max == kInf<T>) {  // a +inf logit: the log-sum-exp is +inf (unless NaN)
            seen_inf[r] = 1;
            continue;
          }
          const T m_new = std::max(run_max[r], tm.max);
          // Rescale the running sum to the new max; exp(-inf) = 0 covers the first tile.
          run_sum[r] = run_sum[r] * std::exp(static_cast<double>(run_max[r]) - m_new) +
                       vec::sum_exp(z, kb, m_new, isa);
          run_max[r] = m_new;
        }
      });
      for (const auto r : c10::irange(rb)) {
        const int64_t i = block[r];
        const double z0 = static_cast<double>(vec::dot(in.Q + i * D, in.Tg + i * D, D, isa)) * invT -
                          (in.TLQ ? static_cast<double>(in.TLQ[i]) : 0.0);
        double B;
        if (seen_nan[r] || std::isnan(run_sum[r])) B = std::numeric_limits<double>::quiet_NaN();
        else if (seen_inf[r]) B = kInf<double>;
        else if (run_sum[r] > 0.0) B = static_cast<double>(run_max[r]) + std::log(run_sum[r]);
        else B = -kInf<double>;  // no negative left for this row
        // A = LSE(z0, B), written so that B = -inf gives A = z0 and NaN propagates.
        const double A = B == -kInf<double> ? z0 : std::max(z0, B) + std::log1p(std::exp(-std::abs(z0 - B)));
        LA[i] = static_cast<T>(A);
        LN[i] = static_cast<T>(B);
        if (in.LAB[i] > 0) {
          NLL[i] = softplus(B - z0);
        } else if (B != -kInf<double>) {
          NLL[i] = softplus(z0 - B);
        }  // else: 1 - p = 0, the row is left out (loss 0)
        RL[i] = in.weight(i) * NLL[i];
      }
    }
  });

  at::Tensor loss;
  if (p.reduction == Reduction::None) {
    loss = row_loss.to(p.acc_dtype);
  } else {
    std::vector<int64_t> contributing;  // a label -1 row without any negative left is not
    for (const int64_t i : rows) {
      if (!(in.LAB[i] < 0 && LN[i] == -kInf<T>)) contributing.push_back(i);
    }
    double value = 0.0;
    if (p.reduction == Reduction::Sum) {
      for (const int64_t i : contributing) value += RL[i];
    } else {
      const MeanWeights mean(contributing, [&](int64_t i) { return in.weight(i); });
      for (const int64_t i : contributing) value += mean.of(in.weight(i)) * NLL[i];
    }
    // via float64: a sum beyond the float32 range becomes inf (at::scalar_tensor would throw)
    loss = at::scalar_tensor(value, opts.dtype(at::kDouble)).to(p.acc_dtype);
  }
  return {loss, lse_all, lse_neg};
}

template <typename T>
std::vector<at::Tensor> backward_impl(const at::Tensor& grad_loss, const at::Tensor& query,
                                      const at::Tensor& target_emb, const at::Tensor& neg_emb,
                                      const at::Tensor& target_ids, const at::Tensor& neg_ids,
                                      const at::Tensor& label,
                                      const std::optional<at::Tensor>& weight,
                                      const std::optional<at::Tensor>& target_logq,
                                      const std::optional<at::Tensor>& neg_logq,
                                      const at::Tensor& lse_all, const at::Tensor& lse_neg,
                                      const FusedLossParams& p) {
  const Inputs<T> in(query, target_emb, neg_emb, target_ids, label, weight, target_logq, neg_logq,
                     p.acc_dtype);
  const auto opts = query.options().dtype(p.acc_dtype);
  const at::Tensor la = lse_all.contiguous(), ln = lse_neg.contiguous();
  const T* LA = la.data_ptr<T>();
  const T* LN = ln.data_ptr<T>();
  const int64_t N = p.N, K = p.K, D = p.D;

  // Rows that contribute: label != 0, and not a negative row without any negative left.
  std::vector<int64_t> rows;
  for (const auto i : c10::irange(N)) {
    if (in.LAB[i] == 0 || (in.LAB[i] < 0 && LN[i] == -kInf<T>)) continue;
    rows.push_back(i);
  }
  const MeanWeights mean(rows, [&](int64_t i) { return in.weight(i); });
  // dL_total / dNLL_i: the row's weight times the upstream gradient (for "mean", the weight
  // normalised first: w_i * (G / sum) could overflow where (w_i / sum) * G does not).
  const at::Tensor g = grad_loss.to(at::kDouble).contiguous();
  const double* G = g.data_ptr<double>();
  auto row_scale = [&](int64_t i) -> double {
    if (p.reduction == Reduction::None) return in.weight(i) * G[i];
    if (p.reduction == Reduction::Sum) return in.weight(i) * G[0];
    return mean.of(in.weight(i)) * G[0];
  };

  at::Tensor dQ = at::zeros({N, D}, opts);
  at::Tensor dT = at::zeros({N, D}, opts);
  T* DQ = dQ.data_ptr<T>();
  T* DT = dT.data_ptr<T>();

  const HitIndex hits(neg_ids.contiguous());
  const int64_t NA = static_cast<int64_t>(rows.size());
  const CallSettings settings = call_settings();
  const TileConfig tile = settings.tile;
  const vec::Isa isa = settings.isa;
  const int64_t nblocks = (NA + tile.rows - 1) / tile.rows;
  const T invT = static_cast<T>(p.inv_temperature);
  std::vector<at::Tensor> dN_per_thread(at::get_num_threads());

  at::parallel_for(0, nblocks, 1, [&](int64_t b0, int64_t b1) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor& dN_local = dN_per_thread[at::get_thread_num()];
    if (!dN_local.defined()) dN_local = at::zeros({K, D}, opts);
    T* dNl = dN_local.data_ptr<T>();
    std::vector<T> Qb(tile.rows * D), S(tile.rows * tile.cols), dQb(tile.rows * D);
    std::vector<T> alpha(tile.rows), beta(tile.rows), g0(tile.rows);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * tile.rows, rb = std::min(tile.rows, NA - r0);
      const std::vector<int64_t> block(rows.begin() + r0, rows.begin() + r0 + rb);
      for (const auto r : c10::irange(rb)) {
        const int64_t i = block[r];
        std::copy_n(in.Q + i * D, D, Qb.data() + r * D);
        const double z0 = static_cast<double>(vec::dot(in.Q + i * D, in.Tg + i * D, D, isa)) * invT -
                          (in.TLQ ? static_cast<double>(in.TLQ[i]) : 0.0);
        const double c = row_scale(i);
        const double B = static_cast<double>(LN[i]);
        // dL/dz for the row, with p0 = softmax(z)[0] = sigmoid(z0 - B):
        //   positive: dz0 = c (p0 - 1) = -c sigmoid(B - z0),  dzk = c exp(zk - A)
        //   negative: dz0 = c p0,  dzk = c (exp(zk - A) - exp(zk - B)) = -c p0 exp(zk - B)
        // so every candidate gets alpha * exp(zk - beta), and ||dL/dz||_1 <= 2c.
        if (in.LAB[i] > 0) {
          g0[r] = static_cast<T>(-c * sigmoid(B - z0) * invT);
          alpha[r] = static_cast<T>(c * invT);
          beta[r] = LA[i];
        } else {
          const double p0 = sigmoid(z0 - B);
          g0[r] = static_cast<T>(c * p0 * invT);
          alpha[r] = static_cast<T>(-c * p0 * invT);
          beta[r] = LN[i];
        }
      }
      std::fill(dQb.begin(), dQb.end(), T(0));
      const at::Tensor Qv = view2d(Qb.data(), rb, D, D);
      at::Tensor dQv = view2d(dQb.data(), rb, D, D);
      for_each_logit_tile<T>(in, p, hits, block, Qb.data(), S.data(), tile.cols,
                             [&](int64_t k0, int64_t kb, T* St, const TileHits& tile_hits) {
        const T* shift = in.NLQ ? in.NLQ + k0 : nullptr;
        for (const auto r : c10::irange(rb)) {
          vec::scaled_exp(St + r * kb, kb, invT, shift, beta[r], alpha[r], isa);
          tile_hits.fill(r, St + r * kb, T(0));  // a masked candidate's dL/dz is exactly 0
        }
        const at::Tensor Gv = view2d(St, rb, kb, kb);
        const at::Tensor Nv = view2d(in.Nn + k0 * D, kb, D, D);
        dQv.addmm_(Gv, Nv);
        at::Tensor dNv = view2d(dNl + k0 * D, kb, D, D);
        dNv.addmm_(Gv.t(), Qv);
      });
      for (const auto r : c10::irange(rb)) {
        const int64_t i = block[r];
        for (const auto d : c10::irange(D)) {
          DQ[i * D + d] = dQb[r * D + d] + g0[r] * in.Tg[i * D + d];
          DT[i * D + d] = g0[r] * in.Q[i * D + d];
        }
      }
    }
  });

  at::Tensor dN;
  for (auto& part : dN_per_thread) {
    if (!part.defined()) continue;
    if (!dN.defined()) dN = part;
    else dN.add_(part);
  }
  if (!dN.defined()) dN = at::zeros({K, D}, opts);
  const auto out = p.input_dtype;
  return {dQ.to(out), dT.to(out), dN.to(out)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_loss_cpu(
    const at::Tensor& query, const at::Tensor& target_emb, const at::Tensor& neg_emb,
    const at::Tensor& target_ids, const at::Tensor& neg_ids, const at::Tensor& label,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& target_logq,
    const std::optional<at::Tensor>& neg_logq, double temperature, c10::string_view reduction) {
  const FusedLossParams p =
      check_fused_loss_inputs(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                              target_logq, neg_logq, temperature, reduction, /*check_values=*/true);
  std::vector<at::Tensor> out;
  if (p.acc_dtype == at::kDouble) {
    out = forward_impl<double>(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                               target_logq, neg_logq, p);
  } else {
    out = forward_impl<float>(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                              target_logq, neg_logq, p);
  }
  return {out[0], out[1], out[2]};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_loss_backward_cpu(
    const at::Tensor& grad_loss, const at::Tensor& query, const at::Tensor& target_emb,
    const at::Tensor& neg_emb, const at::Tensor& target_ids, const at::Tensor& neg_ids,
    const at::Tensor& label, const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& target_logq, const std::optional<at::Tensor>& neg_logq,
    double temperature, c10::string_view reduction, const at::Tensor& lse_all,
    const at::Tensor& lse_neg) {
  const FusedLossParams p =
      check_fused_loss_inputs(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                              target_logq, neg_logq, temperature, reduction, /*check_values=*/true);
  check_fused_loss_backward_inputs(p, grad_loss, query, lse_all, lse_neg);
  std::vector<at::Tensor> out;
  if (p.acc_dtype == at::kDouble) {
    out = backward_impl<double>(grad_loss, query, target_emb, neg_emb, target_ids, neg_ids, label,
                                weight, target_logq, neg_logq, lse_all, lse_neg, p);
  } else {
    out = backward_impl<float>(grad_loss, query, target_emb, neg_emb, target_ids, neg_ids, label,
                               weight, target_logq, neg_logq, lse_all, lse_neg, p);
  }
  return {out[0], out[1], out[2]};
}

}  // namespace

TORCH_LIBRARY_IMPL(negrec, CPU, m) {
  m.impl("fused_loss", &fused_loss_cpu);
  m.impl("fused_loss_backward", &fused_loss_backward_cpu);
}

}  // namespace negrec::cpu
