// The one schema file of torch.ops.negrec. Backends register kernels in their own files
// (csrc/cpu/*, csrc/cuda/*); autograd and fake (meta) kernels are attached from Python
// (negrec/ops/fused_loss.py).
#include <torch/library.h>

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
