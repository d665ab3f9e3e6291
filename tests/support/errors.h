// What a bad input makes the engine say: tests of the "one-line zeroshot::Error naming the file" contract compare
// the message itself.
#pragma once

#include <functional>
#include <string>

namespace zeroshot::testing {

// Runs f and returns the zeroshot::Error's message it throws; "(no error)" when it throws nothing, and
// "NOT a zeroshot::Error: <what>" for any other exception (so a test expecting a message fails and says why).
std::string error_of(const std::function<void()>& f);

}  // namespace zeroshot::testing
