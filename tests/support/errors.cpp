#include "support/errors.h"

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

}  // namespace zeroshot::testing
