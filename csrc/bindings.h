// pybind11 registration hooks of the parts of negrec._C that live next to their C++ code,
// and the translation of c10 errors into the matching Python exceptions.
#pragma once

#include <c10/util/Exception.h>
#include <pybind11/pybind11.h>

#include <utility>

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

// csrc/data/bindings.cpp: collator, samplers, feedback codes.
void bind_data(pybind11::module_& m);

}  // namespace negrec
