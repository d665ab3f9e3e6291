// The eval data set readers on files holding the input: CSV / TSV rows, class maps (text and JSON), ESC-50's
// meta/esc50.csv, and CSV labels matched against given class names. The first byte picks the reader; the rest is
// the file. A few empty files exist beside it so that rows naming them get past the existence check.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "eval/datasets.h"
#include "fuzz_util.h"
#include "zeroshot/error.h"

namespace {

void touch(const std::filesystem::path& p) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p.string()).flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zeroshot;
  namespace fs = std::filesystem;
  static const fs::path dir = [] {
    fs::path d = fuzz::scratch_dir();
    for (const char* f : {"a.jpg", "b.png", "cat.jpg", "dir/c.webp", "esc/audio/1-100-A-0.wav", "esc/audio/a.wav"})
      touch(d / f);
    return d;
  }();
  if (size == 0) return 0;
  const int mode = data[0] % 6;
  ++data;
  --size;
  try {
    eval::ReadOptions opt;
    switch (mode) {
      case 0:
        opt.layout = eval::Layout::Csv;
        eval::read_dataset(fuzz::write_scratch("data.csv", data, size), opt);
        break;
      case 1:
        opt.layout = eval::Layout::Csv;
        eval::read_dataset(fuzz::write_scratch("data.tsv", data, size), opt);
        break;
      case 2: eval::read_class_map(fuzz::write_scratch("map.txt", data, size)); break;
      case 3: eval::read_class_map(fuzz::write_scratch("map.json", data, size)); break;
      case 4: {
        const fs::path meta = dir / "esc" / "meta" / "esc50.csv";
        fs::create_directories(meta.parent_path());
        std::ofstream(meta.string(), std::ios::binary).write(reinterpret_cast<const char*>(data), size);
        opt.layout = eval::Layout::Esc50;
        opt.fold = size % 6;
        eval::read_dataset((dir / "esc").string(), opt);
        break;
      }
      default:
        opt.layout = eval::Layout::Csv;
        opt.classes = {{"cat", "kitty"}, {"dog"}, {"a red car"}};
        eval::read_dataset(fuzz::write_scratch("given.csv", data, size), opt);
        break;
    }
  } catch (const Error&) {
  }
  return 0;
}
