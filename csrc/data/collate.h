// The sequence-batching collator: from a CSR event log and a list of users, the [B, L]
// tensors of one training (or inference) batch.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

#include "data/feedback.h"

namespace negrec::data {

struct CollateConfig {
  int64_t max_len = 50;      // L
  bool left_pad = true;      // real events at the right end (the most recent last)
  int64_t pad_item = 0;      // item id written at padded positions (models use V)
  // Input filter: which feedback codes appear as inputs (index = code). Events filtered out
  // are neither inputs nor targets.
  std::array<bool, kNumFeedbackCodes> input_allowed{false, true, true, true, true};
  // Target label (+1, -1, 0) and weight per feedback code of the target event.
  std::array<int8_t, kNumFeedbackCodes> label_of{0, 1, 0, 0, 0};
  std::array<float, kNumFeedbackCodes> weight_of{0.f, 1.f, 0.f, 0.f, 0.f};
  bool random_crop = false;  // training: pick the window end uniformly instead of the last
  bool with_targets = true;  // false: inference batch of the last L inputs, no targets
};

// Outputs, all [B, L] (lengths [B]): allocated here and returned without copies.
struct CollateOutput {
  at::Tensor input_items;     // int64, pad_item at padding
  at::Tensor input_feedback;  // int8, kPad at padding
  at::Tensor target_items;    // int64 (undefined when !with_targets), pad_item at padding
  at::Tensor target_labels;   // int8, 0 at padding
  at::Tensor target_weights;  // float32, 0 at padding
  at::Tensor mask;            // bool, true at real input events
  at::Tensor lengths;         // int64 [B], real input events per row
};

// offsets [U + 1], items [E] int64, feedback [E] int8 (CPU, contiguous); users [B] int64;
// ends [B] int64 or undefined: per sample, how many of the user's *filtered* events to
// consider (a prefix, for sliding-window datasets), -1 or undefined meaning all.
// Validates what it reads (users in range, offsets monotone for those users, items in
// [0, num_items), feedback codes valid) and throws c10::ValueError naming the problem.
// `threads` > 1 splits the rows over torch's intra-op pool; the result does not depend on it.
CollateOutput collate(const at::Tensor& offsets, const at::Tensor& items,
                      const at::Tensor& feedback, const at::Tensor& users,
                      const at::Tensor& ends, int64_t num_items, const CollateConfig& config,
                      uint64_t seed, int64_t threads);

}  // namespace negrec::data
