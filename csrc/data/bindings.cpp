// Python bindings of the data-layer kernels (collator, alias sampler, feedback codes).
#include <torch/extension.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "bindings.h"
#include "data/collate.h"
#include "data/feedback.h"
#include "data/sampler.h"

namespace py = pybind11;

namespace negrec {
namespace {

constexpr const char* kCollate = "collate";

using py_args::Arg;

data::CollateConfig collate_config(py::handle max_len, py::handle left_pad, py::handle pad_item,
                                   py::handle input_allowed, py::handle label_of,
                                   py::handle weight_of, py::handle random_crop,
                                   py::handle with_targets) {
  constexpr size_t kCodes = data::kNumFeedbackCodes;
  const std::string per_code = " (one per feedback code)";
  data::CollateConfig config;
  config.max_len = py_args::to_int64(max_len, {kCollate, "max_len"}, 1,
                                     std::numeric_limits<int64_t>::max());
  config.left_pad = py_args::to_bool(left_pad, {kCollate, "left_pad"});
  config.pad_item = py_args::to_int64(pad_item, {kCollate, "pad_item"},
                                      std::numeric_limits<int64_t>::min(),
                                      std::numeric_limits<int64_t>::max());
  config.input_allowed = py_args::to_array<bool, kCodes>(
      input_allowed, {kCollate, "input_allowed"}, "a list of 5 bools" + per_code,
      [](py::handle v, const Arg& a) { return py_args::to_bool(v, a); });
  config.label_of = py_args::to_array<int8_t, kCodes>(
      label_of, {kCollate, "label_of"}, "a list of 5 labels -1, 0 or +1" + per_code,
      [](py::handle v, const Arg& a) { return static_cast<int8_t>(py_args::to_int64(v, a, -1, 1)); });
  config.weight_of = py_args::to_array<float, kCodes>(
      weight_of, {kCollate, "weight_of"}, "a list of 5 weights" + per_code,
      [](py::handle v, const Arg& a) {
        // Checked as the float32 the batches hold: 1e39 is finite as a Python float, not here.
        const std::string expected = "a number >= 0 that is finite in float32";
        const auto w = static_cast<float>(py_args::to_double(v, a, expected));
        if (!(std::isfinite(w) && w >= 0.f)) py_args::fail_value(a, expected, v);
        return w;
      });
  config.random_crop = py_args::to_bool(random_crop, {kCollate, "random_crop"});
  config.with_targets = py_args::to_bool(with_targets, {kCollate, "with_targets"});
  return config;
}

py::tuple collate(py::handle offsets, py::handle items, py::handle feedback, py::handle users,
                  py::handle ends, py::handle num_items, py::handle max_len, py::handle left_pad,
                  py::handle pad_item, py::handle input_allowed, py::handle label_of,
                  py::handle weight_of, py::handle random_crop, py::handle with_targets,
                  py::handle seed, py::handle threads) {
  const at::Tensor offsets_t = py_args::to_tensor(offsets, {kCollate, "offsets"}, "a 1-D int64 CPU tensor");
  const at::Tensor items_t = py_args::to_tensor(items, {kCollate, "items"}, "a 1-D int64 CPU tensor");
  const at::Tensor feedback_t = py_args::to_tensor(feedback, {kCollate, "feedback"}, "a 1-D int8 CPU tensor");
  const at::Tensor users_t = py_args::to_tensor(users, {kCollate, "users"}, "a 1-D int64 CPU tensor");
  const std::optional<at::Tensor> ends_t =
      py_args::to_optional_tensor(ends, {kCollate, "ends"}, "a 1-D int64 CPU tensor");
  const int64_t num_items_v = py_args::to_int64(num_items, {kCollate, "num_items"}, 1,
                                                std::numeric_limits<int64_t>::max());
  const data::CollateConfig config = collate_config(max_len, left_pad, pad_item, input_allowed,
                                                    label_of, weight_of, random_crop, with_targets);
  const uint64_t seed_v = py_args::to_uint64(seed, {kCollate, "seed"});
  const int64_t threads_v = py_args::to_int64(threads, {kCollate, "threads"}, 1,
                                              std::numeric_limits<int64_t>::max());
  data::CollateOutput out;
  {
    py::gil_scoped_release no_gil;
    out = translate_errors([&] {
      return data::collate(offsets_t, items_t, feedback_t, users_t, ends_t.value_or(at::Tensor()),
                           num_items_v, config, seed_v, threads_v);
    });
  }
  return py::make_tuple(out.input_items, out.input_feedback, out.target_items, out.target_labels,
                        out.target_weights, out.mask, out.lengths);
}

constexpr const char* kAliasTable = "AliasTable";

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

  m.def("collate", &collate, py::arg("offsets"), py::arg("items"), py::arg("feedback"),
        py::arg("users"), py::arg("ends"), py::arg("num_items"), py::arg("max_len"),
        py::arg("left_pad"), py::arg("pad_item"), py::arg("input_allowed"), py::arg("label_of"),
        py::arg("weight_of"), py::arg("random_crop"), py::arg("with_targets"), py::arg("seed"),
        py::arg("threads"),
        "Builds one batch; see negrec.data.collate.Collator (the documented Python interface).");

  // Every method takes self through constructed<>() and both constructors are wrapped by
  // construct_once<>() (bindings.h): an AliasTable is immutable once built, which is also what
  // lets sample() release the GIL.
  py::class_<data::AliasTable> table(m, kAliasTable, "Alias table for O(1) draws from a fixed "
                                                      "discrete distribution.");
  table
      .def(py::init([](py::handle weights) {
             const at::Tensor w = py_args::to_tensor(weights, {kAliasTable, "weights"},
                                                     "a non-empty 1-D CPU tensor");
             return translate_errors([&] { return data::AliasTable(w); });
           }),
           py::arg("weights"))
      .def(
          "sample",
          [](py::handle self, py::handle k, py::handle seed) {
            const auto& t = constructed<data::AliasTable>(self, kAliasTable, "sample");
            const int64_t k_v = py_args::to_int64(k, {"AliasTable.sample", "k"}, 0,
                                                  std::numeric_limits<int64_t>::max());
            const uint64_t seed_v = py_args::to_uint64(seed, {"AliasTable.sample", "seed"});
            py::gil_scoped_release no_gil;
            return translate_errors([&] { return t.sample(k_v, seed_v); });
          },
          py::arg("k"), py::arg("seed"), "k independent draws (int64 [k]) from stream `seed`.")
      .def(
          "probabilities",
          [](py::handle self) {
            return constructed<data::AliasTable>(self, kAliasTable, "probabilities").probabilities();
          },
          "The exact probabilities the table samples from (float64 [V]).")
      .def("__len__",
           [](py::handle self) {
             return constructed<data::AliasTable>(self, kAliasTable, "__len__").size();
           })
      .def(py::pickle(
          // the original weights, not probabilities(): a table rebuilt from normalised
          // probabilities can pair columns differently and draw other ids for a seed
          [](py::handle self) {
            return py::make_tuple(
                constructed<data::AliasTable>(self, kAliasTable, "__getstate__").weights());
          },
          [](py::handle state) {
            const std::string expected = "a tuple (weights,) from AliasTable.__getstate__";
            const py_args::Arg arg{"AliasTable.__setstate__", "state"};
            if (!PyTuple_Check(state.ptr())) py_args::fail_type(arg, expected, state);
            const py::tuple t = py::reinterpret_borrow<py::tuple>(state);
            if (t.size() != 1) py_args::fail_value(arg, expected, state);
            const at::Tensor w = py_args::to_tensor(t[0], {"AliasTable.__setstate__", "state[0]"},
                                                    "a non-empty 1-D CPU tensor");
            return translate_errors([&] { return data::AliasTable(w); });
          }));
  construct_once(table, kAliasTable, "__init__");
  construct_once(table, kAliasTable, "__setstate__");
}

}  // namespace negrec
