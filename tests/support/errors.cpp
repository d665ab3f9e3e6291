#include "support/errors.h"

#include <gtest/gtest.h>

#include <exception>

#include "zeroshot/error.h"

namespace zeroshot::testing {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("NOT a zeroshot::Error: ") + e.what();
  }
  return "(no error)";
}

std::string file_placeholder(const std::string& message, const std::string& path) {
  const std::string prefix = path + ": ";
  if (message.rfind(prefix, 0) != 0) return message;
  return "FILE: " + message.substr(prefix.size());
}

void expect_one_line_error(const std::string& message, const std::string& starts_with, const std::string& contains) {
  EXPECT_EQ(message.rfind(starts_with, 0), 0u) << message;
  EXPECT_NE(message.find(contains), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

}  // namespace zeroshot::testing
