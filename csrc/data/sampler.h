// Walker/Vose alias table: O(V) construction, O(1) per draw from a fixed discrete
// distribution (the popularity^alpha negative sampler).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace negrec::data {

class AliasTable {
 public:
  // weights [V] float64, non-negative, finite, with a positive sum.
  explicit AliasTable(const at::Tensor& weights);

  // k independent draws (int64 [k]) from stream `seed`; reproducible, thread-count independent.
  at::Tensor sample(int64_t k, uint64_t seed) const;

  // The exact probabilities the table samples from (float64 [V]).
  at::Tensor probabilities() const;

  // The weights it was built from (float64 [V]); rebuilding from them gives the same table
  // bit for bit, which rebuilding from probabilities() does not (pickling uses these).
  at::Tensor weights() const;

  int64_t size() const { return static_cast<int64_t>(prob_.size()); }

 private:
  std::vector<double> prob_;   // acceptance probability of column i
  std::vector<int64_t> alias_; // the other outcome of column i
  std::vector<double> p_;      // normalised weights
  std::vector<double> w_;      // the weights as given
};

}  // namespace negrec::data
