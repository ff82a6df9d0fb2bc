// Row kernels for the fused loss on CPU: scale+shift+max, sum of exponentials, scaled
// exponentials and dot products over contiguous rows. float rows use an AVX2+FMA
// implementation chosen at run time (the extension itself is compiled for baseline x86-64)
// or a scalar one; double rows (the verification path) are scalar.
//
// NaN semantics (needed so that non-finite embeddings propagate, NaN in -> NaN out):
//  - scale_shift_max ignores NaN entries for the max but reports that one was seen;
//  - exp(NaN) = NaN, so a NaN logit turns a sum of exponentials into NaN;
//  - exp(-inf) = 0 exactly: masked candidates are stored as -inf and vanish.
// Domain: the exponentials are only ever taken of x = z - max <= 0 (or of NaN), where the
// vector exp has a relative error below 2 ulp; below -87.3 it returns exactly 0.
#pragma once

#include <cstdint>

namespace negrec::cpu::vec {

// Which implementation of the float32 row kernels to use. It is read once per fused-loss call
// (current_float_isa) and passed to every row kernel of that call, so a concurrent
// force_scalar_float cannot switch implementations in the middle of a call.
enum class Isa : int8_t { Scalar = 0, Avx2Fma = 1 };

template <typename T>
struct RowMax {
  T max;         // max over the non-NaN entries (-inf if none)
  bool has_nan;  // whether any entry was NaN
};

// Every row kernel takes the Isa of its call; the double overloads (scalar code only) ignore it.

// z[k] <- z[k] * scale - shift[k] (shift may be null); returns the max of the new row.
RowMax<float> scale_shift_max(float* z, int64_t n, float scale, const float* shift, Isa isa);
RowMax<double> scale_shift_max(double* z, int64_t n, double scale, const double* shift, Isa isa);

// sum_k exp(z[k] - m); float rows accumulate in float lanes and return the total as double.
double sum_exp(const float* z, int64_t n, float m, Isa isa);
double sum_exp(const double* z, int64_t n, double m, Isa isa);

// z[k] <- alpha * exp(z[k] * scale - shift[k] - beta) (shift may be null).
void scaled_exp(float* z, int64_t n, float scale, const float* shift, float beta, float alpha,
                Isa isa);
void scaled_exp(double* z, int64_t n, double scale, const double* shift, double beta,
                double alpha, Isa isa);

// sum_k a[k] * b[k]
float dot(const float* a, const float* b, int64_t n, Isa isa);
double dot(const double* a, const double* b, int64_t n, Isa isa);

// The implementation the float kernels use now (one atomic read): AVX2+FMA when the CPU has it
// and the scalar kernels are not forced.
Isa current_float_isa();
// Its name: "avx2+fma" or "scalar".
const char* isa_name(Isa isa);
// The name of current_float_isa().
const char* float_isa();
// Force the scalar float kernels (true) or go back to the best available (false); for tests
// and benchmarks. Thread-safe: calls already running keep the implementation they started with.
void force_scalar_float(bool force);

}  // namespace negrec::cpu::vec
