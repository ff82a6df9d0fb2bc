#include "data/collate.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "data/rng.h"
#include "tensor_kind.h"

namespace negrec::data {
namespace {

void check_inputs(const at::Tensor& offsets, const at::Tensor& items, const at::Tensor& feedback,
                  const at::Tensor& users, const at::Tensor& ends, int64_t num_items,
                  const CollateConfig& config) {
  auto check_1d = [](const at::Tensor& t, const char* name, at::ScalarType dt, const char* dts) {
    TORCH_CHECK_TYPE(t.defined(), "collate: ", name, " must be a 1-D ", dts, " CPU tensor; got "
                     "an undefined tensor");
    const std::string kind = non_dense_kind(t);
    TORCH_CHECK_TYPE(kind.empty(), "collate: ", name, " must be a dense (strided) tensor; got ",
                     kind);
    TORCH_CHECK_VALUE(t.device().is_cpu(), "collate: ", name, " must be a CPU tensor; got ",
                      t.device());
    TORCH_CHECK_TYPE(t.scalar_type() == dt, "collate: ", name, " must be ", dts, "; got ",
                     t.scalar_type());
    TORCH_CHECK_VALUE(t.dim() == 1, "collate: ", name, " must be 1-D; got shape ", t.sizes());
  };
  check_1d(offsets, "offsets", at::kLong, "int64");
  check_1d(items, "items", at::kLong, "int64");
  check_1d(feedback, "feedback", at::kChar, "int8");
  check_1d(users, "users", at::kLong, "int64");
  if (ends.defined()) {
    check_1d(ends, "ends", at::kLong, "int64");
    TORCH_CHECK_VALUE(ends.size(0) == users.size(0), "collate: ends must have one entry per "
                      "user [", users.size(0), "]; got shape ", ends.sizes());
  }
  TORCH_CHECK_VALUE(offsets.size(0) >= 1, "collate: offsets must have U + 1 >= 1 entries");
  TORCH_CHECK_VALUE(items.size(0) == feedback.size(0), "collate: items [", items.size(0),
                    "] and feedback [", feedback.size(0), "] must have one entry per event");
  TORCH_CHECK_VALUE(config.max_len > 0, "collate: max_len must be > 0; got ", config.max_len);
  TORCH_CHECK_VALUE(num_items > 0, "collate: num_items must be > 0; got ", num_items);
  for (int c = 0; c < kNumFeedbackCodes; ++c) {
    TORCH_CHECK_VALUE(config.label_of[c] >= -1 && config.label_of[c] <= 1,
                      "collate: labels must be -1, 0 or +1; feedback code ", c, " has ",
                      static_cast<int>(config.label_of[c]));
    TORCH_CHECK_VALUE(std::isfinite(config.weight_of[c]) && config.weight_of[c] >= 0.f,
                      "collate: weights must be finite and >= 0; feedback code ", c, " has ",
                      config.weight_of[c]);
  }
}

}  // namespace

CollateOutput collate(const at::Tensor& offsets_t, const at::Tensor& items_t,
                      const at::Tensor& feedback_t, const at::Tensor& users_t,
                      const at::Tensor& ends_t, int64_t num_items, const CollateConfig& config,
                      uint64_t seed, int64_t threads) {
  check_inputs(offsets_t, items_t, feedback_t, users_t, ends_t, num_items, config);
  const at::Tensor offsets_c = offsets_t.contiguous(), items_c = items_t.contiguous();
  const at::Tensor feedback_c = feedback_t.contiguous(), users_c = users_t.contiguous();
  const at::Tensor ends_c = ends_t.defined() ? ends_t.contiguous() : at::Tensor();
  const int64_t* offsets = offsets_c.data_ptr<int64_t>();
  const int64_t* items = items_c.data_ptr<int64_t>();
  const int8_t* feedback = feedback_c.data_ptr<int8_t>();
  const int64_t* users = users_c.data_ptr<int64_t>();
  const int64_t* ends = ends_c.defined() ? ends_c.data_ptr<int64_t>() : nullptr;
  const int64_t num_users = offsets_c.size(0) - 1, num_events = items_c.size(0);
  const int64_t B = users_c.size(0), L = config.max_len;

  CollateOutput out;
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  out.input_items = at::empty({B, L}, i64);
  out.input_feedback = at::empty({B, L}, at::TensorOptions().dtype(at::kChar));
  out.mask = at::empty({B, L}, at::TensorOptions().dtype(at::kBool));
  out.lengths = at::empty({B}, i64);
  if (config.with_targets) {
    out.target_items = at::empty({B, L}, i64);
    out.target_labels = at::empty({B, L}, at::TensorOptions().dtype(at::kChar));
    out.target_weights = at::empty({B, L}, at::TensorOptions().dtype(at::kFloat));
  }
  int64_t* in_items = out.input_items.data_ptr<int64_t>();
  int8_t* in_fb = out.input_feedback.data_ptr<int8_t>();
  bool* mask = out.mask.data_ptr<bool>();
  int64_t* lengths = out.lengths.data_ptr<int64_t>();
  int64_t* tg_items = config.with_targets ? out.target_items.data_ptr<int64_t>() : nullptr;
  int8_t* tg_labels = config.with_targets ? out.target_labels.data_ptr<int8_t>() : nullptr;
  float* tg_weights = config.with_targets ? out.target_weights.data_ptr<float>() : nullptr;

  bool all_allowed = true;
  for (int c = kPositive; c <= kDislike; ++c) all_allowed = all_allowed && config.input_allowed[c];

  auto check_event = [&](int64_t k) {
    const int8_t f = feedback[k];
    TORCH_CHECK_VALUE(f >= kPositive && f <= kDislike, "collate: feedback[", k, "] = ",
                      static_cast<int>(f), " is not a feedback code (1..4)");
    TORCH_CHECK_VALUE(items[k] >= 0 && items[k] < num_items, "collate: items[", k, "] = ",
                      items[k], " is out of range [0, ", num_items, ")");
  };

  auto fill_rows = [&](int64_t b0, int64_t b1) {
    std::vector<int64_t> kept;  // the user's events that pass the input filter
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t u = users[b];
      TORCH_CHECK_VALUE(u >= 0 && u < num_users, "collate: users[", b, "] = ", u,
                        " is out of range [0, ", num_users, ")");
      const int64_t s = offsets[u], e = offsets[u + 1];
      TORCH_CHECK_VALUE(0 <= s && s <= e && e <= num_events, "collate: offsets of user ", u,
                        " are invalid: offsets[", u, "] = ", s, ", offsets[", u + 1, "] = ", e,
                        " (must be non-decreasing within [0, ", num_events, "])");
      // Kept event r of this user is event `s + r` when every code is allowed (no copy),
      // else kept[r]. Events are validated as they are read: all of them when filtering,
      // only the window's otherwise.
      int64_t n;
      if (all_allowed) {
        n = e - s;
      } else {
        kept.clear();
        for (int64_t k = s; k < e; ++k) {
          check_event(k);
          if (config.input_allowed[feedback[k]]) kept.push_back(k);
        }
        n = static_cast<int64_t>(kept.size());
      }
      if (ends != nullptr && ends[b] >= 0) n = std::min(n, ends[b]);
      const int64_t* kept_ptr = all_allowed ? nullptr : kept.data();
      auto event = [&](int64_t r) { return kept_ptr ? kept_ptr[r] : s + r; };

      // Window over the kept events: inputs r in [first, first + m), and with targets the
      // next kept event of each input, r + 1.
      int64_t m, first;
      if (config.with_targets) {
        m = n >= 2 ? std::min(L, n - 1) : 0;
        int64_t end = n - 1;  // exclusive end of the inputs
        if (config.random_crop && n - 1 > m) {
          SplitMix64 rng(seed, static_cast<uint64_t>(b));
          end = m + static_cast<int64_t>(rng.next_below(static_cast<uint64_t>(n - m)));
        }
        first = end - m;
      } else {
        m = std::min(L, n);
        first = n - m;
      }
      // Nothing is read when the window is empty (m == 0; then first can be -1, and s + first
      // would point before the user's events, out of bounds for the first user).
      if (all_allowed && m > 0) {
        for (int64_t r = first; r < first + m + (config.with_targets ? 1 : 0); ++r) check_event(s + r);
      }
      const int64_t row = b * L;
      const int64_t p0 = config.left_pad ? L - m : 0;  // first real position in the row
      // padding: [0, p0) and [p0 + m, L)
      auto pad_range = [&](int64_t lo, int64_t hi) {
        if (lo >= hi) return;
        std::fill(in_items + row + lo, in_items + row + hi, config.pad_item);
        std::fill(in_fb + row + lo, in_fb + row + hi, static_cast<int8_t>(kPad));
        std::fill(mask + row + lo, mask + row + hi, false);
        if (config.with_targets) {
          std::fill(tg_items + row + lo, tg_items + row + hi, config.pad_item);
          std::fill(tg_labels + row + lo, tg_labels + row + hi, static_cast<int8_t>(0));
          std::fill(tg_weights + row + lo, tg_weights + row + hi, 0.f);
        }
      };
      pad_range(0, p0);
      pad_range(p0 + m, L);
      for (int64_t j = 0; j < m; ++j) {
        const int64_t p = row + p0 + j;
        const int64_t k = event(first + j);
        in_items[p] = items[k];
        in_fb[p] = feedback[k];
        mask[p] = true;
      }
      if (config.with_targets) {
        for (int64_t j = 0; j < m; ++j) {
          const int64_t p = row + p0 + j;
          const int64_t k = event(first + j + 1);
          const int8_t f = feedback[k];
          const int8_t label = config.label_of[f];
          tg_items[p] = items[k];
          tg_labels[p] = label;
          tg_weights[p] = label != 0 ? config.weight_of[f] : 0.f;
        }
      }
      lengths[b] = m;
    }
  };
  if (threads > 1 && B > 1) {
    at::parallel_for(0, B, std::max<int64_t>(1, B / (4 * threads)), fill_rows);
  } else {
    fill_rows(0, B);
  }
  return out;
}

}  // namespace negrec::data
