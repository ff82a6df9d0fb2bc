// Torch glue of the CUDA kernels of negrec::fused_loss and negrec::fused_loss_backward
// (kernels: fused_loss_kernels.cu, behind the launcher interface fused_loss_kernels.cuh).
//
// Each op: the shared input checks first (check_fused_loss_inputs, the same messages as on
// the CPU), then a CUDAGuard on query's device, the inputs in the layouts the launchers expect
// (contiguous, 16-byte aligned, float64 weight, accumulation-dtype logq, int8 labels, rows padded to
// Plan::width), the row compaction (rows that take part first, by a stable argsort, with their
// count left on the device), workspaces from the caching allocator, and the launch on the
// current stream, whose every kernel is checked. The reductions "sum"/"mean" of the per-row
// losses are ATen sums in float64 on the device, as the CPU kernel sums in double.
#include "cuda/fused_loss_kernels.cuh"
#include "fused_loss.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>

namespace negrec::cuda {
namespace {

constexpr const char* kOp = "negrec.fused_loss";

DType kernel_dtype(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return DType::Float32;
    case at::kDouble: return DType::Float64;
    case at::kBFloat16: return DType::BFloat16;
    case at::kHalf: return DType::Float16;
    default: break;
  }
  // check_fused_loss_inputs has already rejected every other dtype.
  TORCH_CHECK_TYPE(false, kOp, ": no CUDA kernel for dtype ", s);
}

DeviceInfo device_info(c10::DeviceIndex device) {
  DeviceInfo info;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&info.num_sms, cudaDevAttrMultiProcessorCount, device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&info.max_smem_per_block_optin,
                                        cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return info;
}

// Row-major [rows, width] with a 16-byte-aligned base: columns beyond x.size(1) are zeros.
at::Tensor embedding_buffer(const at::Tensor& x, int64_t width) {
  at::Tensor c = x.contiguous();
  if (c.size(1) != width) {
    return at::constant_pad_nd(c, {0, width - c.size(1)}, 0).contiguous();
  }
  if (reinterpret_cast<std::uintptr_t>(c.data_ptr()) % 16 != 0) {
    c = c.clone(at::MemoryFormat::Contiguous);  // a fresh allocation is 16-byte aligned
  }
  return c;
}

std::optional<at::Tensor> acc_vector(const std::optional<at::Tensor>& t, at::ScalarType acc) {
  if (!t.has_value()) return std::nullopt;
  return t->to(acc).contiguous();
}

const void* ptr_or_null(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->data_ptr() : nullptr;
}

// Rows with `active` first, in their original order, and how many there are (on the device).
std::pair<at::Tensor, at::Tensor> compact_rows(const at::Tensor& active) {
  const at::Tensor perm =
      at::argsort(at::logical_not(active).to(at::kByte), /*stable=*/true, /*dim=*/0);
  const at::Tensor count = active.sum().to(at::kLong);
  return {perm.contiguous(), count};
}

// The weights of a mean over the rows with weight w (float64 [N], 0 for rows that do not
// contribute), as the CPU kernel forms them: normalised by their max (`scale`, 0 when all are 0)
// so that neither their sum nor 1 / sum leaves the float64 range; share_i = (w_i / scale) / denom.
struct MeanWeights {
  at::Tensor scale;   // [] float64
  at::Tensor denom;   // [] float64, sum of w / scale
  at::Tensor shares;  // [N] float64, 0 where denom == 0
};

MeanWeights mean_weights(const at::Tensor& w) {
  MeanWeights m;
  m.scale = w.numel() > 0 ? w.max() : at::zeros({}, w.options());
  const at::Tensor positive = m.scale > 0;
  const at::Tensor normalised =
      at::where(positive, w / at::where(positive, m.scale, at::ones_like(m.scale)), at::zeros_like(w));
  m.denom = normalised.sum();
  m.shares = at::where(m.denom > 0, normalised / at::where(m.denom > 0, m.denom, at::ones_like(m.denom)),
                       at::zeros_like(w));
  return m;
}

void check_launch(const LaunchResult& r) {
  TORCH_CHECK(r.error == cudaSuccess, kOp, ": CUDA error in ", r.what, ": ",
              cudaGetErrorString(r.error));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The inputs every launch needs, in the launchers' layouts. Keeps the converted tensors alive.
struct Prepared {
  at::Tensor q, t, n, tid, nid, label8;
  std::optional<at::Tensor> w, tlq, nlq;
  Plan plan;
  DeviceInfo dev;

  Prepared(const at::Tensor& query, const at::Tensor& target_emb, const at::Tensor& neg_emb,
           const at::Tensor& target_ids, const at::Tensor& neg_ids, const at::Tensor& label,
           const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& target_logq,
           const std::optional<at::Tensor>& neg_logq, const FusedLossParams& p) {
    dev = device_info(query.device().index());
    plan = plan_fused_loss(kernel_dtype(p.input_dtype), p.N, p.K, p.D, dev);
    q = embedding_buffer(query, plan.width);
    t = embedding_buffer(target_emb, plan.width);
    n = embedding_buffer(neg_emb, plan.width);
    tid = target_ids.contiguous();
    nid = neg_ids.contiguous();
    label8 = label.to(at::kChar).contiguous();
    w = acc_vector(weight, at::kDouble);  // weights stay float64 (as on the CPU)
    tlq = acc_vector(target_logq, p.acc_dtype);
    nlq = acc_vector(neg_logq, p.acc_dtype);
  }

  Problem problem(const FusedLossParams& p, const at::Tensor& perm, const at::Tensor& count) const {
    Problem pb;
    pb.dtype = kernel_dtype(p.input_dtype);
    pb.N = p.N;
    pb.K = p.K;
    pb.width = plan.width;
    pb.query = q.data_ptr();
    pb.target_emb = t.data_ptr();
    pb.neg_emb = n.data_ptr();
    pb.target_ids = tid.data_ptr<int64_t>();
    pb.neg_ids = nid.data_ptr<int64_t>();
    pb.label = label8.data_ptr<int8_t>();
    pb.weight = w.has_value() ? w->data_ptr<double>() : nullptr;
    pb.target_logq = ptr_or_null(tlq);
    pb.neg_logq = ptr_or_null(nlq);
    pb.inv_temperature = p.inv_temperature;
    pb.perm = perm.data_ptr<int64_t>();
    pb.count = count.data_ptr<int64_t>();
    return pb;
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_loss_cuda(
    const at::Tensor& query, const at::Tensor& target_emb, const at::Tensor& neg_emb,
    const at::Tensor& target_ids, const at::Tensor& neg_ids, const at::Tensor& label,
    const std::optional<at::Tensor>& weight, const std::optional<at::Tensor>& target_logq,
    const std::optional<at::Tensor>& neg_logq, double temperature, c10::string_view reduction) {
  // Same checks (and messages) as the CPU kernel; the value checks synchronise with the device.
  const FusedLossParams p =
      check_fused_loss_inputs(query, target_emb, neg_emb, target_ids, neg_ids, label, weight,
                              target_logq, neg_logq, temperature, reduction, /*check_values=*/true);
  const c10::cuda::CUDAGuard guard(query.device());
  const auto opts = query.options().dtype(p.acc_dtype);
  at::Tensor lse_all = at::zeros({p.N}, opts);
  at::Tensor lse_neg = at::zeros({p.N}, opts);
  // float64 per-row (unweighted) losses and weights: the reductions use them unrounded
  at::Tensor row_nll = at::zeros({p.N}, opts.dtype(at::kDouble));
  at::Tensor row_weight = at::zeros({p.N}, opts.dtype(at::kDouble));

  if (p.N > 0) {
    const Prepared in(query, target_emb, neg_emb, target_ids, neg_ids, label, weight, target_logq,
                      neg_logq, p);
    const auto [perm, count] = compact_rows(in.label8 != 0);
    at::Tensor part_max = at::empty({in.plan.fwd_splits, p.N}, opts);
    at::Tensor part_sum = at::empty({in.plan.fwd_splits, p.N}, opts.dtype(at::kDouble));
    ForwardOutputs out;
    out.part_max = part_max.data_ptr();
    out.part_sum = part_sum.data_ptr<double>();
    out.lse_all = lse_all.data_ptr();
    out.lse_neg = lse_neg.data_ptr();
    out.row_nll = row_nll.data_ptr<double>();
    out.row_weight = row_weight.data_ptr<double>();
    check_launch(launch_fused_loss_forward(in.problem(p, perm, count), in.plan, out, in.dev,
                                           c10::cuda::getCurrentCUDAStream()));
  }

  at::Tensor loss;
  if (p.reduction == Reduction::Mean) {
    // 0 when no row contributes (every share is then 0)
    loss = (mean_weights(row_weight).shares * row_nll).sum().to(p.acc_dtype);
  } else {
    const at::Tensor row_loss = row_weight * row_nll;
    loss = (p.reduction == Reduction::None ? row_loss : row_loss.sum()).to(p.acc_dtype);
  }
  return {loss, lse_all, lse_neg};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_loss_backward_cuda(
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
  const c10::cuda::CUDAGuard guard(query.device());
  const auto in_opts = query.options().dtype(p.input_dtype);
  const auto acc_opts = query.options().dtype(p.acc_dtype);

  if (p.N == 0 && p.K == 0) {
    return {at::zeros({p.N, p.D}, in_opts), at::zeros({p.N, p.D}, in_opts),
            at::zeros({p.K, p.D}, in_opts)};
  }
  const Prepared in(query, target_emb, neg_emb, target_ids, neg_ids, label, weight, target_logq,
                    neg_logq, p);
  const int64_t width = in.plan.width;
  at::Tensor grad_q = at::zeros({p.N, width}, in_opts);
  at::Tensor grad_t = at::zeros({p.N, width}, in_opts);
  at::Tensor grad_n = at::zeros({p.K, width}, in_opts);

  // Contributing rows: label != 0, and not a label -1 row without any negative left (its
  // 1 - p = 0 makes it ignored; the forward left it out of the mean too).
  const at::Tensor la = lse_all.contiguous();
  const at::Tensor ln = lse_neg.contiguous();
  const at::Tensor no_negative = at::logical_and(in.label8 < 0,
                                                 ln == -std::numeric_limits<double>::infinity());
  const at::Tensor active = at::logical_and(in.label8 != 0, at::logical_not(no_negative));
  const auto [perm, count] = compact_rows(active);
  const at::Tensor w_active = in.w.has_value()
                                  ? at::where(active, *in.w, at::zeros_like(*in.w))
                                  : active.to(at::kDouble);
  const MeanWeights mean = mean_weights(w_active);
  const at::Tensor g = grad_loss.to(at::kDouble).contiguous().reshape({-1});

  at::Tensor alpha = at::empty({p.N}, acc_opts);
  at::Tensor beta = at::empty({p.N}, acc_opts);
  at::Tensor g0 = at::empty({p.N}, acc_opts);
  at::Tensor amax = at::zeros({1}, query.options().dtype(at::kInt));
  at::Tensor dq_part = at::empty({in.plan.dq_splits, p.N, width}, acc_opts);
  at::Tensor dn_part = at::empty({in.plan.dn_splits, p.K, width}, acc_opts);

  BackwardArgs args;
  args.reduction = p.reduction == Reduction::None  ? ReductionKind::None
                   : p.reduction == Reduction::Sum ? ReductionKind::Sum
                                                   : ReductionKind::Mean;
  args.grad_loss = g.data_ptr<double>();
  args.denom = mean.denom.data_ptr<double>();
  args.weight_scale = mean.scale.data_ptr<double>();
  args.lse_all = la.data_ptr();
  args.lse_neg = ln.data_ptr();
  args.alpha = alpha.data_ptr();
  args.beta = beta.data_ptr();
  args.g0 = g0.data_ptr();
  args.amax_bits = reinterpret_cast<unsigned int*>(amax.data_ptr<int32_t>());
  args.dq_part = dq_part.data_ptr();
  args.dn_part = dn_part.data_ptr();
  args.grad_query = grad_q.data_ptr();
  args.grad_target = grad_t.data_ptr();
  args.grad_neg = grad_n.data_ptr();
  check_launch(launch_fused_loss_backward(in.problem(p, perm, count), in.plan, args, in.dev,
                                          c10::cuda::getCurrentCUDAStream()));

  if (width != p.D) {  // drop the zero padding of the tensor-core path
    grad_q = grad_q.narrow(1, 0, p.D).contiguous();
    grad_t = grad_t.narrow(1, 0, p.D).contiguous();
    grad_n = grad_n.narrow(1, 0, p.D).contiguous();
  }
  return {grad_q, grad_t, grad_n};
}

}  // namespace
}  // namespace negrec::cuda

TORCH_LIBRARY_IMPL(negrec, CUDA, m) {
  m.impl("fused_loss", &negrec::cuda::fused_loss_cuda);
  m.impl("fused_loss_backward", &negrec::cuda::fused_loss_backward_cuda);
}
