// io::parse_json / load_json: every malformed document is a one-line zeroshot::Error naming the input, never an
// escaping nlohmann exception (a number overflowing a double is nlohmann's out_of_range, not a parse_error).
#include <gtest/gtest.h>

#include <string>

#include "io/json.h"
#include "zeroshot/error.h"

namespace {

using zeroshot::io::parse_json;

TEST(Json, MalformedDocumentsAreErrorsNamingTheInput) {
  for (const char* bad : {"", "{", "[1,", "{\"a\": }", "nul", "\"unterminated", "1E400", "[4444444444444444E444]",
                          "{\"0\": -1e99999}", "\xff\xfe"}) {
    SCOPED_TRACE(bad);
    try {
      (void)parse_json(bad, "classes.json");
      ADD_FAILURE() << "accepted";
    } catch (const zeroshot::Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.rfind("classes.json: invalid JSON: ", 0), 0u) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
}

TEST(Json, LargeButFiniteNumbersParse) {
  EXPECT_DOUBLE_EQ(parse_json("1e300", "x").get<double>(), 1e300);
  EXPECT_EQ(parse_json("18446744073709551615", "x").get<uint64_t>(), 18446744073709551615ull);
}

}  // namespace
