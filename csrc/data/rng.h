// Small, fast, reproducible generators for the data-layer kernels. Streams are derived from
// (seed, stream id) so results do not depend on how work is split across threads.
#pragma once

#include <cstdint>

namespace negrec::data {

// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit mixer; good for seeding and for short streams.
class SplitMix64 {
 public:
  SplitMix64(uint64_t seed, uint64_t stream = 0)
      : state_(seed ^ (stream * 0xD1B54A32D192ED03ULL + 0x9E3779B97F4A7C15ULL)) {}

  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform integer in [0, n), n > 0, by Lemire's multiply-shift with rejection (unbiased).
  uint64_t next_below(uint64_t n) {
    uint64_t x = next();
    __uint128_t m = static_cast<__uint128_t>(x) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        x = next();
        m = static_cast<__uint128_t>(x) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

  // Uniform double in [0, 1) with 53 random bits.
  double next_double() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace negrec::data
