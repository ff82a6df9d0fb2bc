// Input validation shared by every fused_loss backend. Each message names the argument and
// gives what was expected and what was received; shape and value problems are ValueErrors,
// dtype, layout and missing-tensor problems TypeErrors, device problems RuntimeErrors.
// Values are checked as the kernels use them: logQ and 1/temperature in the accumulation dtype
// (a float64 logQ of 1e39 is finite, its float32 cast is not), weights in float64 (the kernels
// keep them in float64).
#include "fused_loss.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "tensor_kind.h"

namespace negrec {
namespace {

constexpr const char* kOp = "negrec.fused_loss";
constexpr const char* kBackwardOp = "negrec.fused_loss_backward";

std::string shape_str(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

void check_rank(const at::Tensor& t, const char* name, int64_t rank, const char* layout) {
  TORCH_CHECK_VALUE(t.dim() == rank, kOp, ": ", name, " must be a ", rank, "-D tensor ", layout,
                    "; got a ", t.dim(), "-D tensor of shape ", shape_str(t));
}

void check_len(const at::Tensor& t, const char* name, int64_t expected, const char* what) {
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == expected, kOp, ": ", name, " must have shape [",
                    expected, "] (", what, "); got shape ", shape_str(t));
}

void check_device(const at::Tensor& t, const char* name, const at::Tensor& query) {
  TORCH_CHECK(t.device() == query.device(), kOp, ": all tensors must be on query's device ",
              query.device(), "; ", name, " is on ", t.device());
}

// A tensor argument that is present: an undefined tensor is what the dispatcher makes of None.
void check_present(const at::Tensor& t, const char* name, const char* shape,
                   const char* op = kOp) {
  TORCH_CHECK_TYPE(t.defined(), op, ": ", name, " must be a tensor of shape ", shape, "; got None");
}

void check_dense(const at::Tensor& t, const char* name, const char* op = kOp) {
  const std::string kind = non_dense_kind(t);
  TORCH_CHECK_TYPE(kind.empty(), op, ": ", name, " must be a dense (strided) tensor; got ", kind);
}

const char* dtype_name(at::ScalarType s) {
  return s == at::kDouble ? "float64" : s == at::kFloat ? "float32" : c10::toString(s);
}

bool is_supported_float(at::ScalarType s) {
  return s == at::kFloat || s == at::kDouble || s == at::kBFloat16 || s == at::kHalf;
}

void check_float_vector(const std::optional<at::Tensor>& t, const char* name, int64_t expected,
                        const char* what, const at::Tensor& query) {
  if (!t.has_value()) return;
  check_dense(*t, name);
  TORCH_CHECK_TYPE(at::isFloatingType(t->scalar_type()), kOp, ": ", name,
                   " must be a floating-point tensor; got dtype ", t->scalar_type());
  check_len(*t, name, expected, what);
  check_device(*t, name, query);
}

void check_finite(const at::Tensor& t, const char* name) {
  if (t.numel() == 0) return;
  const bool finite = at::isfinite(t).all().item<bool>();
  if (!finite) {
    const int64_t idx = at::logical_not(at::isfinite(t)).nonzero().flatten()[0].item<int64_t>();
    TORCH_CHECK_VALUE(false, kOp, ": ", name, " must be finite; got ",
                      t[idx].item<double>(), " at index ", idx);
  }
}

// Finite, and still finite once converted to the accumulation dtype `acc`, as the kernels read it.
void check_finite_as(const at::Tensor& t, const char* name, at::ScalarType acc) {
  check_finite(t, name);
  if (t.numel() == 0 || t.scalar_type() == acc) return;
  const at::Tensor converted = t.to(acc);
  if (at::isfinite(converted).all().item<bool>()) return;
  const int64_t idx = at::logical_not(at::isfinite(converted)).nonzero().flatten()[0].item<int64_t>();
  TORCH_CHECK_VALUE(false, kOp, ": ", name, " must be finite in ", dtype_name(acc),
                    " (the accumulation dtype); got ", t[idx].item<double>(), " at index ", idx,
                    ", which overflows it");
}

// 1/T is used in the accumulation dtype: it must not overflow there (T below ~2.9e-39 in
// float32). A 1/T that underflows to 0 (huge T) is fine: every logit is then -logQ.
void check_temperature(double temperature, at::ScalarType acc) {
  TORCH_CHECK_VALUE(std::isfinite(temperature) && temperature > 0.0, kOp,
                    ": temperature must be a finite number > 0; got ", temperature);
  const double smallest = acc == at::kDouble ? 1.0 / std::numeric_limits<double>::max()
                                             : 1.0 / std::numeric_limits<float>::max();
  TORCH_CHECK_VALUE(temperature >= smallest, kOp, ": temperature must be >= ", smallest,
                    " (1/temperature must be finite in ", dtype_name(acc),
                    ", the accumulation dtype); got ", temperature);
}

}  // namespace

Reduction parse_reduction(std::string_view reduction) {
  if (reduction == "none") return Reduction::None;
  if (reduction == "sum") return Reduction::Sum;
  if (reduction == "mean") return Reduction::Mean;
  TORCH_CHECK_VALUE(false, kOp, ": reduction must be 'none', 'sum' or 'mean'; got '",
                    std::string(reduction), "'");
}

at::ScalarType accumulate_dtype(at::ScalarType input_dtype) {
  return input_dtype == at::kDouble ? at::kDouble : at::kFloat;
}

std::vector<int64_t> loss_shape(const FusedLossParams& params) {
  if (params.reduction == Reduction::None) return {params.N};
  return {};
}

FusedLossParams check_fused_loss_inputs(
    const at::Tensor& query,
    const at::Tensor& target_emb,
    const at::Tensor& neg_emb,
    const at::Tensor& target_ids,
    const at::Tensor& neg_ids,
    const at::Tensor& label,
    const std::optional<at::Tensor>& weight,
    const std::optional<at::Tensor>& target_logq,
    const std::optional<at::Tensor>& neg_logq,
    double temperature,
    std::string_view reduction,
    bool check_values) {
  FusedLossParams p;
  p.reduction = parse_reduction(reduction);

  check_present(query, "query", "[N, D]");
  check_present(target_emb, "target_emb", "[N, D]");
  check_present(neg_emb, "neg_emb", "[K, D]");
  check_present(target_ids, "target_ids", "[N]");
  check_present(neg_ids, "neg_ids", "[K]");
  check_present(label, "label", "[N]");
  for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{query, "query"},
                                {target_emb, "target_emb"}, {neg_emb, "neg_emb"},
                                {target_ids, "target_ids"}, {neg_ids, "neg_ids"},
                                {label, "label"}}) {
    check_dense(t, name);
  }

  check_rank(query, "query", 2, "[N, D]");
  check_rank(target_emb, "target_emb", 2, "[N, D]");
  check_rank(neg_emb, "neg_emb", 2, "[K, D]");
  p.N = query.size(0);
  p.D = query.size(1);
  p.K = neg_emb.size(0);
  TORCH_CHECK_VALUE(target_emb.size(0) == p.N && target_emb.size(1) == p.D, kOp,
                    ": target_emb must have the shape of query [", p.N, ", ", p.D, "]; got shape ",
                    shape_str(target_emb));
  TORCH_CHECK_VALUE(neg_emb.size(1) == p.D, kOp, ": neg_emb must have shape [K, ", p.D,
                    "] (D = query.size(1)); got shape ", shape_str(neg_emb));

  const auto dt = query.scalar_type();
  TORCH_CHECK_TYPE(is_supported_float(dt), kOp,
                   ": query must be float32, float64, bfloat16 or float16; got dtype ", dt);
  TORCH_CHECK_TYPE(target_emb.scalar_type() == dt, kOp, ": target_emb must have query's dtype ",
                   dt, "; got ", target_emb.scalar_type());
  TORCH_CHECK_TYPE(neg_emb.scalar_type() == dt, kOp, ": neg_emb must have query's dtype ", dt,
                   "; got ", neg_emb.scalar_type());
  p.input_dtype = dt;
  p.acc_dtype = accumulate_dtype(dt);

  TORCH_CHECK_TYPE(target_ids.scalar_type() == at::kLong, kOp,
                   ": target_ids must be int64 (torch.long); got dtype ", target_ids.scalar_type());
  TORCH_CHECK_TYPE(neg_ids.scalar_type() == at::kLong, kOp,
                   ": neg_ids must be int64 (torch.long); got dtype ", neg_ids.scalar_type());
  check_len(target_ids, "target_ids", p.N, "N = query.size(0)");
  check_len(neg_ids, "neg_ids", p.K, "K = neg_emb.size(0)");

  const auto lt = label.scalar_type();
  TORCH_CHECK_TYPE(lt == at::kChar || lt == at::kShort || lt == at::kInt || lt == at::kLong, kOp,
                   ": label must be a signed integer tensor (int8/16/32/64) holding -1, 0 or +1; "
                   "got dtype ", lt);
  check_len(label, "label", p.N, "N = query.size(0)");

  check_float_vector(weight, "weight", p.N, "N = query.size(0)", query);
  check_float_vector(target_logq, "target_logq", p.N, "N = query.size(0)", query);
  check_float_vector(neg_logq, "neg_logq", p.K, "K = neg_emb.size(0)", query);

  check_device(target_emb, "target_emb", query);
  check_device(neg_emb, "neg_emb", query);
  check_device(target_ids, "target_ids", query);
  check_device(neg_ids, "neg_ids", query);
  check_device(label, "label", query);

  check_temperature(temperature, p.acc_dtype);
  p.inv_temperature = 1.0 / temperature;

  if (check_values) {
    if (p.N > 0) {
      auto [lo, hi] = at::aminmax(label);
      const int64_t lo_v = lo.item<int64_t>(), hi_v = hi.item<int64_t>();
      if (lo_v < -1 || hi_v > 1) {
        const auto bad = at::logical_or(label < -1, label > 1).nonzero().flatten()[0].item<int64_t>();
        TORCH_CHECK_VALUE(false, kOp, ": label must hold only -1 (negative feedback), 0 (ignore) "
                          "or +1 (positive); got ", label[bad].item<int64_t>(), " at index ", bad);
      }
    }
    if (weight.has_value()) {
      check_finite(*weight, "weight");
      if (p.N > 0 && weight->min().item<double>() < 0.0) {
        const auto bad = (*weight < 0).nonzero().flatten()[0].item<int64_t>();
        TORCH_CHECK_VALUE(false, kOp, ": weight must be >= 0; got ", (*weight)[bad].item<double>(),
                          " at index ", bad);
      }
    }
    if (target_logq.has_value()) check_finite_as(*target_logq, "target_logq", p.acc_dtype);
    if (neg_logq.has_value()) check_finite_as(*neg_logq, "neg_logq", p.acc_dtype);
  }
  return p;
}

void check_fused_loss_backward_inputs(
    const FusedLossParams& p,
    const at::Tensor& grad_loss,
    const at::Tensor& query,
    const at::Tensor& lse_all,
    const at::Tensor& lse_neg) {
  check_present(grad_loss, "grad_loss", p.reduction == Reduction::None ? "[N]" : "[]", kBackwardOp);
  check_present(lse_all, "lse_all", "[N]", kBackwardOp);
  check_present(lse_neg, "lse_neg", "[N]", kBackwardOp);
  check_dense(grad_loss, "grad_loss", kBackwardOp);
  check_dense(lse_all, "lse_all", kBackwardOp);
  check_dense(lse_neg, "lse_neg", kBackwardOp);
  if (p.reduction == Reduction::None) {
    TORCH_CHECK_VALUE(grad_loss.dim() == 1 && grad_loss.size(0) == p.N, kOp,
                      "_backward: grad_loss must have shape [", p.N, "] for reduction='none'; got ",
                      shape_str(grad_loss));
  } else {
    TORCH_CHECK_VALUE(grad_loss.numel() == 1, kOp,
                      "_backward: grad_loss must be a scalar for reduction='sum'/'mean'; got shape ",
                      shape_str(grad_loss));
  }
  TORCH_CHECK_TYPE(at::isFloatingType(grad_loss.scalar_type()), kOp,
                   "_backward: grad_loss must be floating point; got ", grad_loss.scalar_type());
  check_len(lse_all, "lse_all", p.N, "N = query.size(0)");
  check_len(lse_neg, "lse_neg", p.N, "N = query.size(0)");
  TORCH_CHECK_TYPE(lse_all.scalar_type() == p.acc_dtype && lse_neg.scalar_type() == p.acc_dtype,
                   kOp, "_backward: lse_all and lse_neg must have the accumulation dtype ",
                   p.acc_dtype, "; got ", lse_all.scalar_type(), " and ", lse_neg.scalar_type());
  check_device(grad_loss, "grad_loss", query);
  check_device(lse_all, "lse_all", query);
  check_device(lse_neg, "lse_neg", query);
}

}  // namespace negrec
