// Which tensors the native code accepts: dense ones (strided layout, not quantized, not nested).
// Shared by the checks of every entry point (fused loss, collator, alias table) and by the
// kernels registered for the other dispatch keys (csrc/ops.cpp), so all of them describe a
// rejected tensor the same way.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace negrec {

// "" for a dense tensor; otherwise what the tensor is, for a message "<name> must be a dense
// (strided) tensor; got <this>".
inline std::string non_dense_kind(const at::Tensor& t) {
  if (t.is_quantized()) {
    return std::string("a quantized tensor (dtype ") + c10::toString(t.scalar_type()) + ")";
  }
  if (t.is_nested()) return "a nested tensor";
  switch (t.layout()) {
    case at::kStrided: return "";
    case at::kSparse: return "a sparse tensor (layout torch.sparse_coo)";
    case at::kSparseCsr: return "a sparse tensor (layout torch.sparse_csr)";
    case at::kSparseCsc: return "a sparse tensor (layout torch.sparse_csc)";
    case at::kSparseBsr: return "a sparse tensor (layout torch.sparse_bsr)";
    case at::kSparseBsc: return "a sparse tensor (layout torch.sparse_bsc)";
    case at::kMkldnn: return "an MKL-DNN tensor (layout torch._mkldnn)";
    case at::kJagged: return "a nested tensor (layout torch.jagged)";
    default: return "a tensor of a non-strided layout";
  }
}

}  // namespace negrec
