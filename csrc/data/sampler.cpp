#include "data/sampler.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "data/rng.h"
#include "tensor_kind.h"

namespace negrec::data {

AliasTable::AliasTable(const at::Tensor& weights) {
  TORCH_CHECK_TYPE(weights.defined(), "AliasTable: weights must be a non-empty 1-D CPU tensor; got "
                   "an undefined tensor");
  const std::string kind = non_dense_kind(weights);
  TORCH_CHECK_TYPE(kind.empty(), "AliasTable: weights must be a dense (strided) tensor; got ", kind);
  TORCH_CHECK_VALUE(weights.device().is_cpu(), "AliasTable: weights must be a CPU tensor; got ",
                    weights.device());
  TORCH_CHECK_TYPE(at::isFloatingType(weights.scalar_type()) ||
                       at::isIntegralType(weights.scalar_type(), /*includeBool=*/false),
                   "AliasTable: weights must be a real (integer or floating-point) tensor; got "
                   "dtype ", weights.scalar_type());
  TORCH_CHECK_VALUE(weights.dim() == 1 && weights.size(0) > 0,
                    "AliasTable: weights must be a non-empty 1-D tensor; got shape ", weights.sizes());
  const at::Tensor w = weights.to(at::kDouble).contiguous();
  const double* pw = w.data_ptr<double>();
  const int64_t V = w.size(0);
  double total = 0.0;
  for (int64_t i = 0; i < V; ++i) {
    TORCH_CHECK_VALUE(std::isfinite(pw[i]) && pw[i] >= 0.0, "AliasTable: weights must be finite "
                      "and >= 0; got ", pw[i], " at index ", i);
    total += pw[i];
  }
  TORCH_CHECK_VALUE(total > 0.0, "AliasTable: weights must have a positive sum");
  w_.assign(pw, pw + V);
  // Finite weights can still sum to +inf (e.g. two of 1e308): normalise by the largest weight
  // first, else every probability would be w / inf = 0 and draws uniform.
  double scale = 1.0;
  if (!std::isfinite(total)) {
    scale = *std::max_element(pw, pw + V);
    total = 0.0;
    for (int64_t i = 0; i < V; ++i) total += pw[i] / scale;
  }
  p_.resize(V);
  prob_.resize(V);
  alias_.resize(V);
  std::vector<double> scaled(V);
  std::vector<int64_t> small, large;
  small.reserve(V);
  large.reserve(V);
  for (int64_t i = 0; i < V; ++i) {
    p_[i] = (pw[i] / scale) / total;
    scaled[i] = p_[i] * static_cast<double>(V);
    (scaled[i] < 1.0 ? small : large).push_back(i);
  }
  // Vose: pair each under-full column with an over-full one.
  while (!small.empty() && !large.empty()) {
    const int64_t s = small.back(), l = large.back();
    small.pop_back();
    prob_[s] = scaled[s];
    alias_[s] = l;
    scaled[l] = (scaled[l] + scaled[s]) - 1.0;
    if (scaled[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Leftovers are full columns up to rounding.
  for (int64_t i : large) { prob_[i] = 1.0; alias_[i] = i; }
  for (int64_t i : small) { prob_[i] = 1.0; alias_[i] = i; }
}

at::Tensor AliasTable::sample(int64_t k, uint64_t seed) const {
  TORCH_CHECK_VALUE(k >= 0, "AliasTable.sample: k must be >= 0; got ", k);
  at::Tensor out = at::empty({k}, at::TensorOptions().dtype(at::kLong));
  int64_t* o = out.data_ptr<int64_t>();
  SplitMix64 rng(seed, 0x5A);
  const uint64_t V = prob_.size();
  for (int64_t j = 0; j < k; ++j) {
    const uint64_t col = rng.next_below(V);
    o[j] = rng.next_double() < prob_[col] ? static_cast<int64_t>(col) : alias_[col];
  }
  return out;
}

at::Tensor AliasTable::weights() const {
  at::Tensor out = at::empty({size()}, at::TensorOptions().dtype(at::kDouble));
  std::copy(w_.begin(), w_.end(), out.data_ptr<double>());
  return out;
}

at::Tensor AliasTable::probabilities() const {
  at::Tensor out = at::empty({size()}, at::TensorOptions().dtype(at::kDouble));
  std::copy(p_.begin(), p_.end(), out.data_ptr<double>());
  return out;
}

}  // namespace negrec::data
