// Shared declarations of negrec::fused_loss: the parameter struct every backend receives and
// the input checks every backend runs first.
//
// Math (row i of N, candidates k = 1..K shared by all rows, T = temperature):
//   z[i,0] = <query[i], target_emb[i]> / T - target_logq[i]
//   z[i,k] = <query[i], neg_emb[k]> / T - neg_logq[k],  masked when neg_ids[k] == target_ids[i]
//   B_i = LSE_k z[i,k] over the unmasked negatives (-inf when none is left)
//   A_i = LSE(z[i,0], B_i)                           (= LSE over all unmasked candidates)
//   label +1: loss_i = w_i * (A_i - z[i,0]) = w_i * softplus(B_i - z[i,0])   (-w log p)
//   label -1: loss_i = w_i * (A_i - B_i)    = w_i * softplus(z[i,0] - B_i)   (-w log(1 - p))
//   label  0: ignored.  A label -1 row with B_i = -inf has 1 - p = 0: it is ignored too.
// Only one running log-sum-exp (over the negatives) is needed per row: the all-candidates one
// follows exactly from it and z[i,0], and the softplus forms above avoid the cancellation of
// subtracting two large log-sum-exps.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace negrec {

enum class Reduction : int8_t { None = 0, Sum = 1, Mean = 2 };

// Parses "none" | "sum" | "mean"; anything else is a ValueError naming the argument.
Reduction parse_reduction(std::string_view reduction);

// What every backend needs besides the tensors themselves.
struct FusedLossParams {
  int64_t N = 0;  // rows (supervised positions)
  int64_t K = 0;  // shared candidate negatives
  int64_t D = 0;  // embedding width
  double inv_temperature = 1.0;
  Reduction reduction = Reduction::Mean;
  at::ScalarType input_dtype = at::kFloat;  // dtype of query / target_emb / neg_emb
  at::ScalarType acc_dtype = at::kFloat;    // float64 for float64 inputs, else float32
};

// Float64 inputs accumulate in float64; float32, bfloat16 and float16 in float32.
at::ScalarType accumulate_dtype(at::ScalarType input_dtype);

// Validates every argument of fused_loss / fused_loss_backward and returns the parameters.
// Shape, dtype and device errors name the argument and give expected vs received. When
// `check_values` is set, the data-dependent checks run too (label in {-1, 0, 1}, weight >= 0 and
// finite, logq finite): one O(N + K) pass, which on CUDA costs a device synchronisation.
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
    bool check_values);

// Extra checks of the backward's own arguments (upstream gradient and saved statistics).
void check_fused_loss_backward_inputs(
    const FusedLossParams& params,
    const at::Tensor& grad_loss,
    const at::Tensor& query,
    const at::Tensor& lse_all,
    const at::Tensor& lse_neg);

// Shape of the loss output for a reduction: [N] for "none", [] otherwise.
std::vector<int64_t> loss_shape(const FusedLossParams& params);

}  // namespace negrec
