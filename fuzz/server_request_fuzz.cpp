// The server's request parsing (src/server/request.h) for every route: JSON bodies, and multipart/form-data parts
// as cpp-httplib hands them over. The first byte picks the route and the encoding. Multipart inputs are framed
// here as parts separated by "\n--\n", each "name[;filename]\n" then the content, so mutations reach the fields.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/request.h"
#include "zeroshot/error.h"

namespace {

using namespace zeroshot::server;

std::vector<Part> split_parts(const std::string& s) {
  std::vector<Part> parts;
  size_t start = 0;
  while (start <= s.size() && parts.size() < 64) {
    size_t end = s.find("\n--\n", start);
    if (end == std::string::npos) end = s.size();
    const std::string chunk = s.substr(start, end - start);
    Part p;
    const size_t nl = chunk.find('\n');
    const std::string head = chunk.substr(0, nl);
    const size_t semi = head.find(';');
    p.name = head.substr(0, semi);
    if (semi != std::string::npos) p.filename = head.substr(semi + 1);
    if (nl != std::string::npos) p.content = chunk.substr(nl + 1);
    parts.push_back(std::move(p));
    start = end + 4;
  }
  return parts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int route = data[0] % 4;
  const bool multipart = data[0] & 4;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  Body body;
  body.multipart = multipart;
  if (multipart) body.parts = split_parts(text);
  else body.json = &text;
  Limits limits;
  limits.max_labels = 50;
  limits.max_texts = 20;
  limits.max_images = 4;
  try {
    switch (route) {
      case 0: parse_classify(body, limits); break;
      case 1: parse_embed(body, limits); break;
      case 2: parse_search(body, limits); break;
      default: parse_image_only(body); break;
    }
  } catch (const HttpError& e) {
    if (e.status < 400 || e.status > 599) __builtin_trap();
  } catch (const zeroshot::Error&) {
  }
  return 0;
}
