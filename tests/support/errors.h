// What a bad input makes the engine say: tests of the "one-line zeroshot::Error naming the file" contract compare
// the message itself.
#pragma once

#include <functional>
#include <string>

namespace zeroshot::testing {

// Runs f and returns the zeroshot::Error's message it throws; "(no error)" when it throws nothing, and
// "NOT a zeroshot::Error: <what>" for any other exception (so a test expecting a message fails and says why).
std::string error_of(const std::function<void()>& f);

// `message` with its leading "<path>: " written "FILE: ", so that a test spells the expected message of a file in
// a temporary folder; a message that does not start with the path comes back unchanged (and fails the comparison).
std::string file_placeholder(const std::string& message, const std::string& path);

// The contract itself, on such a message: it starts with `starts_with` (the file or folder it names), contains
// `contains` (the problem) and is one line.
void expect_one_line_error(const std::string& message, const std::string& starts_with, const std::string& contains);

}  // namespace zeroshot::testing
