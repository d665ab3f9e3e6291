// Writes the seed inputs that cannot be copied from the fixtures as they are (scripts/fuzz.sh runs it):
//   make_seeds FIXTURES OUT_DIR
// OUT_DIR/<target>/ for:
//   safetensors_fuzz: small files with the smallest tensors of each fixture model (their real names, dtypes and
//     shapes: f32, f16, i64 buffers), written with the engine's own writer; the real files are megabytes, too large
//     for the fuzzer to mutate quickly.
//   clip_tokenizer_fuzz, roberta_tokenizer_fuzz: the fixture texts, one per file.
//   eval_data_fuzz, server_request_fuzz: one valid input per mode (the first byte picks the mode in those
//     targets), the requests carrying a fixture image.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "zeroshot/error.h"

namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p.string(), std::ios::binary) << s; }

std::string read_file(const fs::path& p) {
  std::ifstream in(p.string(), std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Standard base64 (the server's request form for images).
std::string base64(const std::string& in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = uint8_t(in[i]) << 16;
    out += {a[v >> 18], a[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], '='};
  }
  return out;
}

// Seeds of the targets whose first byte picks a mode: {mode, rest}.
void mode_seeds(const fs::path& dir, const std::vector<std::pair<int, std::string>>& seeds) {
  fs::create_directories(dir);
  int n = 0;
  for (const auto& [mode, rest] : seeds)
    write_text(dir / ("seed" + std::to_string(n++)), std::string(1, static_cast<char>(mode)) + rest);
}

void texts_from(const fs::path& expected_json, const fs::path& out, int* n) {
  std::ifstream in(expected_json.string());
  const nlohmann::json j = nlohmann::json::parse(in);
  for (const char* key : {"texts", "ftfy_sensitive_texts", "labels", "prompts"}) {
    if (!j.contains(key) || !j[key].is_array()) continue;
    for (const auto& t : j[key])
      if (t.is_string()) write_text(out / ("text" + std::to_string((*n)++)), t.get<std::string>());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds FIXTURES OUT_DIR\n");
    return 2;
  }
  const fs::path fixtures = argv[1], out = argv[2];
  try {
    for (const char* d : {"safetensors_fuzz", "clip_tokenizer_fuzz", "roberta_tokenizer_fuzz"})
      fs::create_directories(out / d);
    int n = 0;
    for (const char* m : {"clip/clip-tiny-quickgelu", "clip/clip-tiny-gelu-f16", "clap/clap-tiny-unfused"}) {
      const zeroshot::io::SafeTensorsFile f((fixtures / m / "model.safetensors").string());
      std::vector<const zeroshot::io::TensorView*> small;
      for (const auto& [name, t] : f.tensors()) small.push_back(&t);
      std::sort(small.begin(), small.end(), [](auto* a, auto* b) { return a->nbytes < b->nbytes; });
      small.resize(std::min<size_t>(small.size(), 6));
      for (size_t k = 1; k <= small.size(); k += 2) {  // files of 1, 3 and 5 tensors
        std::vector<zeroshot::io::TensorData> td;
        for (size_t i = 0; i < k; ++i) td.push_back({small[i]->name, small[i]->dtype, small[i]->shape, small[i]->data});
        zeroshot::io::write_safetensors(
            (out / "safetensors_fuzz" / ("seed" + std::to_string(n++) + ".safetensors")).string(), td,
            k == 3 ? std::map<std::string, std::string>{{"format", "pt"}} : std::map<std::string, std::string>{});
      }
    }
    n = 0;
    for (const char* m : {"clip/clip-tiny-quickgelu", "clip/clip-tiny-gelu-f16"})
      texts_from(fixtures / m / "expected.json", out / "clip_tokenizer_fuzz", &n);
    n = 0;
    for (const char* m : {"clap/clap-tiny-unfused", "clap/clap-tiny-fused"})
      texts_from(fixtures / m / "expected.json", out / "roberta_tokenizer_fuzz", &n);
    // eval_data_fuzz modes: 0 csv, 1 tsv, 2 class map text, 3 class map JSON, 4 ESC-50 meta, 5 csv + given classes.
    mode_seeds(out / "eval_data_fuzz",
               {{0, "path,label\na.jpg,cat\n\"b.png\",dog\n# comment\n\ndir/c.webp,cat,dog\n"},
                {1, "a.jpg\tcat\nb.png\tdog\n"},
                {2, "n01440764 tench\nn01443537\tgoldfish\ncat,a cat\n"},
                {3, "{\"0\": [\"n01440764\", \"tench\"], \"1\": [\"n01443537\", \"goldfish\"]}"},
                {4,
                 "filename,fold,target,category,esc10,src_file,take\n1-100-A-0.wav,1,0,dog,True,100,A\n"
                 "a.wav,2,1,rain,False,101,A\n"},
                {5, "a.jpg,kitty\nb.png,2\ncat.jpg,a red car\n"}});
    // server_request_fuzz: bit 2 of the first byte = multipart; route = first byte % 4 (classify, embed, search,
    // image only). Multipart parts are "name[;filename]\n" + content, separated by "\n--\n".
    const std::string png = read_file(fixtures / "images" / "block.png");
    const std::string b64 = base64(png);
    mode_seeds(out / "server_request_fuzz",
               {{0, "{\"image\": \"" + b64 + "\", \"candidate_labels\": [\"cat\", \"dog\"], \"top_k\": 1}"},
                {0, "{\"inputs\": \"" + b64 +
                        "\", \"parameters\": {\"candidate_labels\": \"cat, dog\", "
                        "\"hypothesis_template\": \"a photo of {}.\"}}"},
                {0, "{\"image\": \"data:image/png;base64," + b64 +
                        "\", \"label_set\": \"imagenet\", "
                        "\"multi_label\": true}"},
                {1, "{\"texts\": [\"a cat\", \"a dog\"], \"images\": [\"" + b64 + "\"], \"normalize\": true}"},
                {2, "{\"query\": \"2:golden retriever + pool - fruit\", \"top_k\": 5}"},
                {2, "{\"terms\": [{\"text\": \"a cat\", \"weight\": -1}, {\"image\": \"" + b64 + "\"}]}"},
                {3, "{\"image\": \"" + b64 + "\"}"},
                {4, "image;block.png\n" + png + "\n--\ncandidate_labels\ncat,dog\n--\ntemplates\na photo of {}."},
                {5, "texts\na cat\n--\nimages;x.png\n" + png + "\n--\nnormalize\ntrue"},
                {6, "query\na cat - a dog\n--\ntop_k\n3"},
                {7, "image;x.png\n" + png}});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
