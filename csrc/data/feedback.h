// Feedback codes of events, shared with Python (negrec/data/feedback.py; a test checks that
// the two agree through negrec._C.feedback_codes()).
#pragma once

#include <cstdint>

namespace negrec::data {

enum Feedback : int8_t {
  kPad = 0,
  kPositive = 1,
  kNeutral = 2,
  kSkip = 3,
  kDislike = 4,
};
constexpr int kNumFeedbackCodes = 5;

}  // namespace negrec::data
