#include "cpu/vec_math.h"

#include <atomic>
#include <cmath>
#include <limits>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NEGREC_HAVE_AVX2_KERNELS 1
#include <immintrin.h>
#define NEGREC_AVX2 __attribute__((target("avx2,fma")))
#else
#define NEGREC_HAVE_AVX2_KERNELS 0
#endif

namespace negrec::cpu::vec {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- scalar -------------------------------------------------------------------------------
template <typename T>
RowMax<T> scale_shift_max_scalar(T* z, int64_t n, T scale, const T* shift) {
  T mx = -std::numeric_limits<T>::infinity();
  bool nan = false;
  for (int64_t k = 0; k < n; ++k) {
    const T v = z[k] * scale - (shift ? shift[k] : T(0));
    z[k] = v;
    if (std::isnan(v)) nan = true;
    else if (v > mx) mx = v;
  }
  return {mx, nan};
}

template <typename T>
double sum_exp_scalar(const T* z, int64_t n, T m) {
  double s = 0.0;
  for (int64_t k = 0; k < n; ++k) s += static_cast<double>(std::exp(z[k] - m));
  return s;
}

template <typename T>
void scaled_exp_scalar(T* z, int64_t n, T scale, const T* shift, T beta, T alpha) {
  for (int64_t k = 0; k < n; ++k) {
    z[k] = alpha * std::exp(z[k] * scale - (shift ? shift[k] : T(0)) - beta);
  }
}

template <typename T>
T dot_scalar(const T* a, const T* b, int64_t n) {
  T s = 0;
  for (int64_t k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

#if NEGREC_HAVE_AVX2_KERNELS
// ---- AVX2 + FMA ---------------------------------------------------------------------------
// exp(x) by Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-5 minimax
// polynomial for e^r (the Cephes expf coefficients); 2^n is built in the exponent bits.
NEGREC_AVX2 inline __m256 exp256(__m256 x) {
  // x < -87.33: the result underflows; return exactly 0 (this covers x = -inf, i.e. masked).
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33654475f), _CMP_LT_OQ);
  // min/max return their second operand when either is NaN: keep x second so NaN survives.
  x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
  x = _mm256_max_ps(_mm256_set1_ps(-88.0f), x);
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  const __m256 xx = _mm256_mul_ps(x, x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, xx, x);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_cvttps_epi32(fx);
  e = _mm256_add_epi32(e, _mm256_set1_epi32(127));
  e = _mm256_slli_epi32(e, 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(underflow, y);
}

NEGREC_AVX2 inline float hmax256(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}

NEGREC_AVX2 inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

NEGREC_AVX2 RowMax<float> scale_shift_max_avx2(float* z, int64_t n, float scale, const float* shift) {
  const __m256 vs = _mm256_set1_ps(scale);
  __m256 vmax = _mm256_set1_ps(kNegInf);
  __m256 vnan = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(z + k), vs);
    if (shift) v = _mm256_sub_ps(v, _mm256_loadu_ps(shift + k));
    _mm256_storeu_ps(z + k, v);
    vmax = _mm256_max_ps(v, vmax);  // NaN in v -> keeps vmax
    vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  RowMax<float> tail = scale_shift_max_scalar<float>(z + k, n - k, scale, shift ? shift + k : nullptr);
  const float m = hmax256(vmax);
  return {tail.max > m ? tail.max : m, tail.has_nan || _mm256_movemask_ps(vnan) != 0};
}

NEGREC_AVX2 double sum_exp_avx2(const float* z, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    acc0 = _mm256_add_ps(acc0, exp256(_mm256_sub_ps(_mm256_loadu_ps(z + k), vm)));
    acc1 = _mm256_add_ps(acc1, exp256(_mm256_sub_ps(_mm256_loadu_ps(z + k + 8), vm)));
  }
  for (; k + 8 <= n; k += 8) acc0 = _mm256_add_ps(acc0, exp256(_mm256_sub_ps(_mm256_loadu_ps(z + k), vm)));
  return static_cast<double>(hsum256(_mm256_add_ps(acc0, acc1))) + sum_exp_scalar<float>(z + k, n - k, m);
}

NEGREC_AVX2 void scaled_exp_avx2(float* z, int64_t n, float scale, const float* shift, float beta,
                                 float alpha) {
  const __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(beta), va = _mm256_set1_ps(alpha);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 v = _mm256_fmsub_ps(_mm256_loadu_ps(z + k), vs, vb);
    if (shift) v = _mm256_sub_ps(v, _mm256_loadu_ps(shift + k));
    _mm256_storeu_ps(z + k, _mm256_mul_ps(va, exp256(v)));
  }
  scaled_exp_scalar<float>(z + k, n - k, scale, shift ? shift + k : nullptr, beta, alpha);
}

NEGREC_AVX2 float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), acc1);
  }
  for (; k + 8 <= n; k += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc0);
  return hsum256(_mm256_add_ps(acc0, acc1)) + dot_scalar<float>(a + k, b + k, n - k);
}

bool cpu_has_avx2_fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#else
bool cpu_has_avx2_fma() { return false; }
#endif

// Written by force_scalar_float, read once per call by current_float_isa (relaxed: the flag
// guards no other data).
std::atomic<bool> g_force_scalar{false};

// Whether the AVX2 kernels may run for `isa` on this CPU (an Isa value is only ever produced by
// current_float_isa, but the check keeps a forged one from reaching unsupported instructions).
inline bool use_avx2(Isa isa) { return isa == Isa::Avx2Fma && cpu_has_avx2_fma(); }

}  // namespace

RowMax<float> scale_shift_max(float* z, int64_t n, float scale, const float* shift, Isa isa) {
#if NEGREC_HAVE_AVX2_KERNELS
  if (use_avx2(isa)) return scale_shift_max_avx2(z, n, scale, shift);
#endif
  return scale_shift_max_scalar<float>(z, n, scale, shift);
}
RowMax<double> scale_shift_max(double* z, int64_t n, double scale, const double* shift, Isa) {
  return scale_shift_max_scalar<double>(z, n, scale, shift);
}

double sum_exp(const float* z, int64_t n, float m, Isa isa) {
#if NEGREC_HAVE_AVX2_KERNELS
  if (use_avx2(isa)) return sum_exp_avx2(z, n, m);
#endif
  return sum_exp_scalar<float>(z, n, m);
}
double sum_exp(const double* z, int64_t n, double m, Isa) { return sum_exp_scalar<double>(z, n, m); }

void scaled_exp(float* z, int64_t n, float scale, const float* shift, float beta, float alpha,
                Isa isa) {
#if NEGREC_HAVE_AVX2_KERNELS
  if (use_avx2(isa)) return scaled_exp_avx2(z, n, scale, shift, beta, alpha);
#endif
  scaled_exp_scalar<float>(z, n, scale, shift, beta, alpha);
}
void scaled_exp(double* z, int64_t n, double scale, const double* shift, double beta,
                double alpha, Isa) {
  scaled_exp_scalar<double>(z, n, scale, shift, beta, alpha);
}

float dot(const float* a, const float* b, int64_t n, Isa isa) {
#if NEGREC_HAVE_AVX2_KERNELS
  if (use_avx2(isa)) return dot_avx2(a, b, n);
#endif
  return dot_scalar<float>(a, b, n);
}
double dot(const double* a, const double* b, int64_t n, Isa) { return dot_scalar<double>(a, b, n); }

Isa current_float_isa() {
  return !g_force_scalar.load(std::memory_order_relaxed) && cpu_has_avx2_fma() ? Isa::Avx2Fma
                                                                              : Isa::Scalar;
}
const char* isa_name(Isa isa) { return isa == Isa::Avx2Fma ? "avx2+fma" : "scalar"; }
const char* float_isa() { return isa_name(current_float_isa()); }
void force_scalar_float(bool force) { g_force_scalar.store(force, std::memory_order_relaxed); }

}  // namespace negrec::cpu::vec
