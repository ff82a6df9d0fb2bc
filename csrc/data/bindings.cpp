// Python bindings of the data-layer kernels (collator, alias sampler, feedback codes).
#include <torch/extension.h>

#include "bindings.h"
#include "data/collate.h"
#include "data/feedback.h"
#include "data/sampler.h"

namespace py = pybind11;

namespace negrec {
namespace {

template <typename T, size_t N>
std::array<T, N> to_array(const std::vector<T>& v, const char* name) {
  if (v.size() != N) {
    throw py::value_error(std::string("collate: ") + name + " must have one entry per feedback "
                          "code (" + std::to_string(N) + "); got " + std::to_string(v.size()));
  }
  std::array<T, N> out{};
  std::copy(v.begin(), v.end(), out.begin());
  return out;
}

}  // namespace

void bind_data(py::module_& m) {
  m.def("feedback_codes", []() {
    py::dict d;
    d["pad"] = static_cast<int>(data::kPad);
    d["positive"] = static_cast<int>(data::kPositive);
    d["neutral"] = static_cast<int>(data::kNeutral);
    d["skip"] = static_cast<int>(data::kSkip);
    d["dislike"] = static_cast<int>(data::kDislike);
    return d;
  }, "The feedback codes of the C++ code (negrec/data/feedback.py must agree).");

  m.def(
      "collate",
      [](const at::Tensor& offsets, const at::Tensor& items, const at::Tensor& feedback,
         const at::Tensor& users, const std::optional<at::Tensor>& ends, int64_t num_items,
         int64_t max_len, bool left_pad, int64_t pad_item, const std::vector<bool>& input_allowed,
         const std::vector<int8_t>& label_of, const std::vector<float>& weight_of,
         bool random_crop, bool with_targets, uint64_t seed, int64_t threads) {
        data::CollateConfig config;
        config.max_len = max_len;
        config.left_pad = left_pad;
        config.pad_item = pad_item;
        config.input_allowed = to_array<bool, data::kNumFeedbackCodes>(input_allowed, "input_allowed");
        config.label_of = to_array<int8_t, data::kNumFeedbackCodes>(label_of, "label_of");
        config.weight_of = to_array<float, data::kNumFeedbackCodes>(weight_of, "weight_of");
        config.random_crop = random_crop;
        config.with_targets = with_targets;
        const at::Tensor ends_t = ends.has_value() ? *ends : at::Tensor();
        data::CollateOutput out;
        {
          py::gil_scoped_release no_gil;
          out = translate_errors([&] {
            return data::collate(offsets, items, feedback, users, ends_t, num_items, config,
                                 seed, threads);
          });
        }
        return py::make_tuple(out.input_items, out.input_feedback, out.target_items,
                              out.target_labels, out.target_weights, out.mask, out.lengths);
      },
      py::arg("offsets"), py::arg("items"), py::arg("feedback"), py::arg("users"),
      py::arg("ends"), py::arg("num_items"), py::arg("max_len"), py::arg("left_pad"),
      py::arg("pad_item"), py::arg("input_allowed"), py::arg("label_of"), py::arg("weight_of"),
      py::arg("random_crop"), py::arg("with_targets"), py::arg("seed"), py::arg("threads"),
      "Builds one batch; see negrec.data.collate.Collator (the documented Python interface).");

  py::class_<data::AliasTable>(m, "AliasTable", "Alias table for O(1) draws from a fixed "
                                                 "discrete distribution.")
      .def(py::init([](const at::Tensor& weights) {
             return translate_errors([&] { return data::AliasTable(weights); });
           }),
           py::arg("weights"))
      .def(
          "sample",
          [](const data::AliasTable& t, int64_t k, uint64_t seed) {
            py::gil_scoped_release no_gil;
            return translate_errors([&] { return t.sample(k, seed); });
          },
          py::arg("k"), py::arg("seed"))
      .def("probabilities", &data::AliasTable::probabilities)
      .def("__len__", &data::AliasTable::size)
      .def(py::pickle(
          // the original weights, not probabilities(): a table rebuilt from normalised
          // probabilities can pair columns differently and draw other ids for a seed
          [](const data::AliasTable& t) { return py::make_tuple(t.weights()); },
          [](py::tuple state) { return data::AliasTable(state[0].cast<at::Tensor>()); }));
}

}  // namespace negrec
