// Measurement only (not a test): where the CPU time of embedding large photos goes, stage by stage, and how far
// the opt-in fast decode (ModelOptions::fast_decode: Pillow's JPEG draft) is from the exact path.
//
//   photo_stages MODEL_DIR PHOTO_DIR [--precision f32|bf16|int8] [--batch 8]
//
// Each photo goes through the stages of Model::embed_image_files one at a time, timed with the process's CPU clock
// (other processes on a loaded machine do not count; a resize split across threads counts every thread): read (the file
// into memory), decode (libjpeg-turbo / libpng into Pillow's mode), orient (reading the EXIF orientation; since round 2
// it is applied inside the resize, not by rotating the full-size image), rgb (Image.convert("RGB")) and resize
// (Pillow-exact resize + center crop + normalize), once exactly and once with the draft decode. Encoding
// runs the pixel values in batches of --batch through Model::embed_pixel_values. Prints one JSON object: per stage the
// mean CPU ms per photo (a mean, so that the rotation of the few portrait shots shows) for both paths, the encoder's ms
// per photo, and the fast path's agreement with the exact one: min / mean cosine of the embeddings and recall@10 of
// image-to-image search (each photo's exact embedding as the query against the other photos, top 10 of the fast
// embeddings against top 10 of the exact ones; with fewer than 12 photos the top 10 is most of the set and the
// number says little). Since round 3 the exact path the model takes decodes JPEGs strip by strip into the resize
// (ImageProcessor::preprocess_encoded), so decode and resize are one stage there: "streamed_ms" times it (read, then
// decode + resize + crop + normalize) and "streamed_same" says whether its pixel values equal the staged exact ones
// bit for bit (they must).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "image/decode_internal.h"
#include "image/image.h"
#include "image/image_processor.h"
#include "image/pil_image.h"
#include "zeroshot/zeroshot.h"

using namespace zeroshot;
namespace fs = std::filesystem;

namespace {

double process_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

double cosine(const float* a, const float* b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

struct Stages {
  std::vector<double> read, decode, orient, rgb, resize;
};

// One photo through the stages; appends its timings and pixel values.
void run_one(const std::string& path, const image::ImageProcessor& proc, int draft, Stages& st,
             std::vector<float>& pixels) {
  double t = process_ms();
  std::ifstream f(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  st.read.push_back(process_ms() - t);
  image::DecodeOptions opt;
  opt.draft_size = draft;
  t = process_ms();
  image::detail::Decoded d;
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8)
    d = image::detail::decode_jpeg(bytes.data(), bytes.size(), path, opt);
  else d = image::detail::decode_png(bytes.data(), bytes.size(), path, opt);
  st.decode.push_back(process_ms() - t);
  // As Model::embed_image_files does it (decode_file_stored): the orientation is read, not applied; the resize
  // reads the stored pixels in displayed order. "orient" is the EXIF parse; "resize" includes freeing the decoded
  // full-size buffer.
  t = process_ms();
  const int orientation = image::detail::find_orientation(d);
  st.orient.push_back(process_ms() - t);
  t = process_ms();
  image::StoredRgbImage stored{image::to_rgb(std::move(d.image)),
                               orientation >= 2 && orientation <= 8 ? orientation : 1};
  st.rgb.push_back(process_ms() - t);
  t = process_ms();
  std::vector<float> v = proc.preprocess(stored);
  stored = {};
  st.resize.push_back(process_ms() - t);
  pixels.insert(pixels.end(), v.begin(), v.end());
}

// The same photo through the streamed path (what Model::embed_image_files does since round 3).
void run_streamed(const std::string& path, const image::ImageProcessor& proc, Stages& st, std::vector<float>& pixels) {
  double t = process_ms();
  std::ifstream f(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  st.read.push_back(process_ms() - t);
  t = process_ms();
  const std::vector<float> v = proc.preprocess_encoded(bytes.data(), bytes.size(), path, {});
  st.resize.push_back(process_ms() - t);
  pixels.insert(pixels.end(), v.begin(), v.end());
}

std::string stage_json(const Stages& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"read\": %.2f, \"decode\": %.2f, \"orient\": %.2f, \"rgb\": %.2f, \"resize\": %.2f}", mean(s.read),
                mean(s.decode), mean(s.orient), mean(s.rgb), mean(s.resize));
  return buf;
}

// Rows of the top `k` of `db` (rows x dim) by cosine to `q`, leaving out row `skip`.
std::vector<size_t> top_k(const float* q, const Embeddings& db, size_t skip, size_t k) {
  std::vector<std::pair<double, size_t>> s;
  for (size_t j = 0; j < db.rows; ++j)
    if (j != skip) s.emplace_back(-cosine(q, db.row(j), db.dim), j);
  std::sort(s.begin(), s.end());
  std::vector<size_t> out;
  for (size_t i = 0; i < std::min(k, s.size()); ++i) out.push_back(s[i].second);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: photo_stages MODEL_DIR PHOTO_DIR [--precision f32|bf16|int8] [--batch N]\n");
    return 2;
  }
  const std::string model_dir = argv[1], dir = argv[2];
  ModelOptions mo;
  size_t batch = 8;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--precision") {
      mo.precision = v == "int8" ? Precision::Int8 : (v == "bf16" ? Precision::BF16 : Precision::F32);
    } else if (k == "--batch") {
      batch = std::max<size_t>(1, std::stoul(v));
    } else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  try {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (image::has_image_extension(e.path().string())) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error(dir, "no photos");
    const image::ImageProcessor proc(image::ImageProcessorConfig::load(model_dir + "/preprocessor_config.json"));
    Stages exact, fast, streamed;
    std::vector<float> px_exact, px_fast, px_streamed;
    for (const auto& p : files) {
      run_one(p, proc, 0, exact, px_exact);
      run_one(p, proc, proc.draft_size(), fast, px_fast);
      run_streamed(p, proc, streamed, px_streamed);
    }
    const bool same = px_streamed.size() == px_exact.size() &&
                      std::memcmp(px_streamed.data(), px_exact.data(), px_exact.size() * sizeof(float)) == 0;
    const auto model = Model::load(model_dir, mo);
    const size_t per = px_exact.size() / files.size();
    auto encode = [&](const std::vector<float>& px, double* ms_per_photo) {
      Embeddings all;
      (void)model->embed_pixel_values(px.data(), std::min(batch, files.size()));  // warm-up (first-use costs)
      const double t = process_ms();
      for (size_t b = 0; b < files.size(); b += batch) {
        const size_t n = std::min(batch, files.size() - b);
        Embeddings e = model->embed_pixel_values(px.data() + b * per, n);
        all.dim = e.dim;
        all.rows += n;
        all.data.insert(all.data.end(), e.data.begin(), e.data.end());
      }
      *ms_per_photo = (process_ms() - t) / static_cast<double>(files.size());
      return all;
    };
    double enc_exact = 0, enc_fast = 0;
    const Embeddings ee = encode(px_exact, &enc_exact), ef = encode(px_fast, &enc_fast);
    double cmin = 1, csum = 0;
    size_t hits = 0, total = 0;
    for (size_t i = 0; i < files.size(); ++i) {
      const double c = cosine(ee.row(i), ef.row(i), ee.dim);
      cmin = std::min(cmin, c);
      csum += c;
      const auto a = top_k(ee.row(i), ee, i, 10), b = top_k(ee.row(i), ef, i, 10);
      for (size_t x : a) hits += std::count(b.begin(), b.end(), x);
      total += a.size();
    }
    std::printf(
        "{\"photos\": %zu, \"exact_ms\": %s, \"fast_ms\": %s, \"streamed_ms\": {\"read\": %.2f, "
        "\"decode_resize\": %.2f}, \"streamed_same\": %s, \"encode_cpu_ms\": %.2f, \"cos_min\": %.6f, "
        "\"cos_mean\": %.6f, \"recall_at_10\": %.4f}\n",
        files.size(), stage_json(exact).c_str(), stage_json(fast).c_str(), mean(streamed.read), mean(streamed.resize),
        same ? "true" : "false", 0.5 * (enc_exact + enc_fast), cmin, csum / static_cast<double>(files.size()),
        total ? static_cast<double>(hits) / static_cast<double>(total) : 1.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "photo_stages: %s\n", e.what());
    return 1;
  }
  return 0;
}
