// The one schema file of torch.ops.negrec. Backends register kernels in their own files
// (csrc/cpu/*, csrc/cuda/*); autograd and fake (meta) kernels are attached from Python
// (negrec/ops/fused_loss.py). The end of the file registers, for the dispatch keys of
// non-dense tensors, a kernel that rejects them with a clear error.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <string>

#include "tensor_kind.h"

TORCH_LIBRARY(negrec, m) {
  // Tell torch where the Python-side registrations (fake kernels, autograd) live, so that
  // tracing the op without having imported negrec.ops gives a helpful error.
  m.set_python_module("negrec.ops.fused_loss");

  // Sampled (or full) softmax + not-to-recommend loss over shared candidates; see
  // csrc/fused_loss.h for the math. Returns the (reduced) loss in the accumulation dtype
  // (float64 for float64 inputs, float32 otherwise) and, per row, the log-sum-exp over all
  // unmasked candidates (lse_all) and over the unmasked negatives (lse_neg), which the
  // backward reuses. Rows with label 0 have lse_all = lse_neg = 0 (not computed).
  m.def(
      "fused_loss(Tensor query, Tensor target_emb, Tensor neg_emb, Tensor target_ids, "
      "Tensor neg_ids, Tensor label, Tensor? weight=None, Tensor? target_logq=None, "
      "Tensor? neg_logq=None, float temperature=1.0, str reduction=\"mean\") "
      "-> (Tensor loss, Tensor lse_all, Tensor lse_neg)",
      {at::Tag::pt2_compliant_tag});

  // Gradients of fused_loss w.r.t. query, target_emb and neg_emb (in their dtypes), recomputing
  // the logits tile by tile from the saved per-row log-sum-exps.
  m.def(
      "fused_loss_backward(Tensor grad_loss, Tensor query, Tensor target_emb, Tensor neg_emb, "
      "Tensor target_ids, Tensor neg_ids, Tensor label, Tensor? weight, Tensor? target_logq, "
      "Tensor? neg_logq, float temperature, str reduction, Tensor lse_all, Tensor lse_neg) "
      "-> (Tensor grad_query, Tensor grad_target_emb, Tensor grad_neg_emb)",
      {at::Tag::pt2_compliant_tag});
}

// ---- tensors the kernels do not take ----------------------------------------------------------
// A sparse, quantized, nested or MKL-DNN argument makes the dispatcher look for a kernel of its
// dispatch key (SparseCPU, ...). Without one it raises a many-line NotImplementedError that
// lists backends; this kernel, registered for those keys, names the argument instead.
namespace {

void reject_non_dense(const c10::OperatorHandle& op, c10::DispatchKeySet keys,
                      torch::jit::Stack* stack) {
  const c10::FunctionSchema& schema = op.schema();
  const std::string& qualified = schema.name();  // "negrec::fused_loss"
  const std::string name = "negrec." + qualified.substr(qualified.find("::") + 2);
  const auto& args = schema.arguments();
  const auto values = torch::jit::last(*stack, args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    if (!values[i].isTensor()) continue;
    const std::string kind = negrec::non_dense_kind(values[i].toTensor());
    TORCH_CHECK_TYPE(kind.empty(), name, ": ", args[i].name(),
                     " must be a dense (strided) tensor; got ", kind);
  }
  TORCH_CHECK_TYPE(false, name, ": no kernel for tensors of dispatch key ",
                   c10::toString(keys.highestPriorityTypeId()),
                   "; pass dense (strided) CPU or CUDA tensors");
}

}  // namespace

#define NEGREC_REJECT_NON_DENSE(KEY)                                                          \
  TORCH_LIBRARY_IMPL(negrec, KEY, m) {                                                        \
    m.impl("fused_loss", torch::CppFunction::makeFromBoxedFunction<&reject_non_dense>());          \
    m.impl("fused_loss_backward", torch::CppFunction::makeFromBoxedFunction<&reject_non_dense>()); \
  }

NEGREC_REJECT_NON_DENSE(SparseCPU)
NEGREC_REJECT_NON_DENSE(SparseCUDA)
NEGREC_REJECT_NON_DENSE(SparseCsrCPU)
NEGREC_REJECT_NON_DENSE(SparseCsrCUDA)
NEGREC_REJECT_NON_DENSE(QuantizedCPU)
NEGREC_REJECT_NON_DENSE(QuantizedCUDA)
NEGREC_REJECT_NON_DENSE(NestedTensorCPU)
NEGREC_REJECT_NON_DENSE(NestedTensorCUDA)
NEGREC_REJECT_NON_DENSE(MkldnnCPU)
