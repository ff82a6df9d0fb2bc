// pybind11 registration hooks of the parts of negrec._C that live next to their C++ code,
// and the translation of c10 errors into the matching Python exceptions.
#pragma once

#include <c10/util/Exception.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "py_args.h"

namespace negrec {

// Runs f, turning c10::ValueError / TypeError / IndexError / Error into ValueError /
// TypeError / IndexError / RuntimeError with the message only (no C++ backtrace).
template <typename F>
auto translate_errors(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::ValueError& e) {
    throw pybind11::value_error(e.what_without_backtrace());
  } catch (const c10::TypeError& e) {
    throw pybind11::type_error(e.what_without_backtrace());
  } catch (const c10::IndexError& e) {
    throw pybind11::index_error(e.what_without_backtrace());
  } catch (const c10::Error& e) {
    throw std::runtime_error(e.what_without_backtrace());
  }
}

// ---- bound classes ---------------------------------------------------------------------------
// pybind11 creates the Python object of a bound class in __new__ and its C++ object only in
// __init__ (or __setstate__, when unpickling). An object made by Cls.__new__(Cls), or by a
// (crafted) pickle that never sets its state, has no C++ object: its value pointer is null and
// a method reaching through it reads garbage or crashes. And pybind11 silently ignores a second
// __init__/__setstate__ on a constructed object. So every bound class:
//  - takes `self` in each method as a py::handle, through constructed<T>();
//  - has its __init__ and __setstate__ wrapped by construct_once<T>().

// Whether the C++ object of `self`, an instance of T, has been constructed. (Not
// `self.cast<T*>() != nullptr`: pybind11's caster lazily allocates raw, unconstructed memory for
// a missing value, which is where the garbage reads of an unconstructed object come from. The
// holder flag is set exactly when __init__/__setstate__ has built the object.)
template <typename T>
bool is_constructed(pybind11::handle self) {
  auto* inst = reinterpret_cast<pybind11::detail::instance*>(self.ptr());
  return inst->get_value_and_holder(pybind11::detail::get_type_info(typeid(T)))
      .holder_constructed();
}

// The C++ object of `self` (an instance of the class bound as `cls`), or a one-line TypeError
// when `self` is not one or was never constructed.
template <typename T>
const T& constructed(pybind11::handle self, const char* cls, const char* method) {
  const std::string where = std::string(cls) + "." + method;
  if (!pybind11::isinstance<T>(self)) {
    throw pybind11::type_error(where + ": self must be an instance of " + cls + "; got " +
                               py_args::describe(self));
  }
  if (!is_constructed<T>(self)) {
    throw pybind11::type_error(where + ": this " + cls + " was never initialised (made by " + cls +
                               ".__new__ or a pickle without its state, so __init__ never ran); "
                               "create it as " + cls + "(...)");
  }
  return *self.cast<const T*>();
}

// Replaces the constructor `name` ("__init__" or "__setstate__") of the bound class `cls` by a
// method that raises a TypeError on an already constructed object and otherwise calls
// pybind11's. (The replacement must not itself be named __init__/__setstate__: pybind11
// special-cases functions of those names as constructors, second call ignored.)
template <typename T>
void construct_once(pybind11::class_<T>& cls, const char* cls_name, const char* name) {
  namespace py = pybind11;
  py::object construct = cls.attr(name);
  const std::string where = std::string(cls_name) + "." + name;
  const std::string dunder(name);  // "__init__" -> "_init_once"
  const std::string wrapper_name = "_" + dunder.substr(2, dunder.size() - 4) + "_once";
  cls.attr(name) = py::cpp_function(
      [construct, where](py::handle self, py::args args, py::kwargs kwargs) {
        if (pybind11::isinstance<T>(self) && is_constructed<T>(self)) {
          throw py::type_error(where + ": this object is already initialised; an object is "
                               "built once (create a new one instead)");
        }
        return construct(self, *args, **kwargs);
      },
      py::name(wrapper_name.c_str()), py::is_method(cls),
      py::doc(py::str(construct.attr("__doc__")).cast<std::string>().c_str()));
}

// csrc/data/bindings.cpp: collator, samplers, feedback codes.
void bind_data(pybind11::module_& m);

}  // namespace negrec
