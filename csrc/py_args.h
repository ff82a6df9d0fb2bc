// Conversion of the Python arguments of negrec._C's functions and methods into C++ values, with
// one-line errors "<function>: <argument> must be <expected>; got <received>" (TypeError for a
// value of the wrong Python type, ValueError for one out of range).
//
// The bindings take every argument as a py::handle and convert it here rather than let
// pybind11 do it: pybind11 reports any mismatch (None for a tensor, -1 for an unsigned seed,
// 300 for an int8) as a multi-line "incompatible function arguments" TypeError listing the
// overloads, and silently narrows some values (a float 1e39 becomes inf as a C++ float).
#pragma once

#include <pybind11/pybind11.h>
#include <torch/csrc/autograd/python_variable.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

namespace negrec::py_args {

namespace py = pybind11;

// The function (as Python sees it) and the argument being converted ("label_of[2]" for an
// entry of a list).
struct Arg {
  const char* function;
  std::string name;
};

// A short description of a received value: "None", "bool True", "int -1", "float 1.5",
// "int64 np.int64(3)", "str 'abc'", "list of length 3", "a tensor of shape [3] and dtype
// Float" (negrec/ops/reference.py's _describe mirrors it).
inline std::string describe(py::handle v) {
  if (v.is_none()) return "None";
  if (THPVariable_Check(v.ptr())) {
    const at::Tensor& t = THPVariable_Unpack(v.ptr());
    std::ostringstream os;
    os << "a tensor of shape " << t.sizes() << " and dtype " << t.scalar_type();
    return os.str();
  }
  const std::string type = py::str(py::type::handle_of(v).attr("__name__"));
  auto with_repr = [&] {
    std::string r = py::repr(v);
    if (r.size() > 60) r = r.substr(0, 57) + "...";
    return type + " " + r;
  };
  if (PyUnicode_Check(v.ptr())) return with_repr();
  if (PySequence_Check(v.ptr())) {  // list, tuple, numpy array, ...
    const Py_ssize_t n = PySequence_Size(v.ptr());
    if (n >= 0) return type + " of length " + std::to_string(n);
    PyErr_Clear();
  }
  const PyNumberMethods* nb = Py_TYPE(v.ptr())->tp_as_number;
  if (nb != nullptr && (nb->nb_index != nullptr || nb->nb_float != nullptr)) {
    return with_repr();  // int, float, bool, numpy scalars
  }
  return "an object of type " + type;
}

[[noreturn]] inline void fail_type(const Arg& a, const std::string& expected, py::handle v) {
  throw py::type_error(std::string(a.function) + ": " + a.name + " must be " + expected +
                       "; got " + describe(v));
}

[[noreturn]] inline void fail_value(const Arg& a, const std::string& expected, py::handle v) {
  throw py::value_error(std::string(a.function) + ": " + a.name + " must be " + expected +
                        "; got " + describe(v));
}

inline std::string bound_text(int64_t b) {
  if (b == std::numeric_limits<int64_t>::max()) return "2**63 - 1";
  if (b == std::numeric_limits<int64_t>::min()) return "-2**63";
  return std::to_string(b);
}

inline std::string int_range_text(int64_t lo, int64_t hi) {
  return "an int in [" + bound_text(lo) + ", " + bound_text(hi) + "]";
}

// v as a Python int: an int or an integer-like object (numpy.int64, a one-element integer
// tensor: anything with __index__), but not a bool or a float.
inline py::int_ python_int(py::handle v, const Arg& a, const std::string& expected) {
  if (PyBool_Check(v.ptr()) || PyFloat_Check(v.ptr()) || !PyIndex_Check(v.ptr())) {
    fail_type(a, expected, v);
  }
  PyObject* index = PyNumber_Index(v.ptr());
  if (index == nullptr) {
    PyErr_Clear();
    fail_type(a, expected, v);
  }
  return py::reinterpret_steal<py::int_>(index);
}

// An integer in [lo, hi].
inline int64_t to_int64(py::handle v, const Arg& a, int64_t lo, int64_t hi) {
  const std::string expected = int_range_text(lo, hi);
  const py::int_ i = python_int(v, a, expected);
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow != 0 || x < lo || x > hi) fail_value(a, expected, v);
  return static_cast<int64_t>(x);
}

// An integer in [0, 2**64 - 1] (seeds).
inline uint64_t to_uint64(py::handle v, const Arg& a) {
  const std::string expected = "an int in [0, 2**64 - 1]";
  const py::int_ i = python_int(v, a, expected);
  if (PyObject_RichCompareBool(i.ptr(), py::int_(0).ptr(), Py_LT) == 1) fail_value(a, expected, v);
  const unsigned long long x = PyLong_AsUnsignedLongLong(i.ptr());
  if (x == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {  // above 2**64 - 1
    PyErr_Clear();
    fail_value(a, expected, v);
  }
  return static_cast<uint64_t>(x);
}

// True or False (also numpy.bool_), not an int or None.
inline bool to_bool(py::handle v, const Arg& a) {
  if (PyBool_Check(v.ptr())) return v.ptr() == Py_True;
  const char* type = Py_TYPE(v.ptr())->tp_name;
  if (std::strcmp(type, "numpy.bool") == 0 || std::strcmp(type, "numpy.bool_") == 0) {
    return PyObject_IsTrue(v.ptr()) == 1;
  }
  fail_type(a, "a bool", v);
}

// A real number (int or float, also numpy scalars), not a bool; `expected` describes the
// accepted values for the messages (the caller checks them).
inline double to_double(py::handle v, const Arg& a, const std::string& expected) {
  PyNumberMethods* nb = Py_TYPE(v.ptr())->tp_as_number;
  if (PyBool_Check(v.ptr()) || THPVariable_Check(v.ptr()) || nb == nullptr ||
      (nb->nb_float == nullptr && nb->nb_index == nullptr)) {
    fail_type(a, expected, v);
  }
  const double x = PyFloat_AsDouble(v.ptr());
  if (x == -1.0 && PyErr_Occurred()) {  // e.g. an int beyond the float range
    PyErr_Clear();
    fail_value(a, expected, v);
  }
  return x;
}

// A torch.Tensor (its layout, device and dtype are checked by the C++ code it is passed to);
// `expected` describes it for the message, e.g. "a 1-D int64 CPU tensor".
inline at::Tensor to_tensor(py::handle v, const Arg& a, const std::string& expected) {
  if (!THPVariable_Check(v.ptr())) fail_type(a, expected, v);
  return THPVariable_Unpack(v.ptr());
}

// None, or what to_tensor accepts.
inline std::optional<at::Tensor> to_optional_tensor(py::handle v, const Arg& a,
                                                    const std::string& expected) {
  if (v.is_none()) return std::nullopt;
  return to_tensor(v, a, expected + " or None");
}

// A list or tuple of exactly n entries, each converted by convert(entry, Arg of the entry).
template <typename T, size_t N, typename Convert>
std::array<T, N> to_array(py::handle v, const Arg& a, const std::string& expected,
                          Convert&& convert) {
  if (!(PyList_Check(v.ptr()) || PyTuple_Check(v.ptr()))) fail_type(a, expected, v);
  const py::sequence s = py::reinterpret_borrow<py::sequence>(v);
  if (s.size() != N) fail_value(a, expected, v);
  std::array<T, N> out{};
  for (size_t i = 0; i < N; ++i) {
    out[i] = convert(s[i], Arg{a.function, a.name + "[" + std::to_string(i) + "]"});
  }
  return out;
}

}  // namespace negrec::py_args
