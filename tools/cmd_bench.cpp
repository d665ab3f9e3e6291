// zeroshot bench: load time, image and text throughput, peak memory and (for lower precisions) the embedding error
// against f32, as one JSON object (or a table) — the engine's side of bench/compare.py.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "classify/label_sets.h"
#include "cli_common.h"
#include "commands.h"
#include "models/clip.h"
#include "nn/gemm.h"
#include "nn/peak_probe.h"
#include "nn/thread_pool.h"

namespace zeroshot::cli {

namespace {

struct BenchArgs {
  ModelArgs model;
  size_t batch = 1;
  size_t iters = 5;
  std::string images_dir;
  std::string audio_dir;     // audio models: files for min_cosine_vs_f32
  std::string save_ids;      // the ImageNet prompts' token ids, for the peers (bench/compare.py)
  bool no_imagenet = false;  // skip the 1,000 prompts: minutes of a loaded machine for a big model's peer rounds
  std::string format = "json";
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A field of /proc/self/status in MB ("VmHWM": peak resident set, "VmRSS": current); getrusage's ru_maxrss when
// /proc is not there.
double status_mb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::strtod(line.c_str() + prefix.size(), nullptr) / 1024.0;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a.empty() ? "unknown" : a + " " + b + " " + c;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double min_row_cosine(const Embeddings& a, const Embeddings& b) {
  double worst = 1.0;
  for (size_t r = 0; r < a.rows; ++r) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.dim; ++i) {
      ab += double(a.row(r)[i]) * b.row(r)[i];
      aa += double(a.row(r)[i]) * a.row(r)[i];
      bb += double(b.row(r)[i]) * b.row(r)[i];
    }
    worst = std::min(worst, ab / std::sqrt(aa * bb));
  }
  return worst;
}

ModelOptions model_options(const BenchArgs& a, const std::string& precision) {
  ModelOptions o;
  o.threads = a.model.threads;
  o.max_image_pixels = static_cast<uint64_t>(std::llround(a.model.max_megapixels * 1e6));
  o.revision = a.model.revision;
  o.offline = a.model.offline;
  o.progress = false;
  o.precision = precision == "bf16" ? Precision::BF16 : precision == "int8" ? Precision::Int8 : Precision::F32;
  if (precision == "int4") o.precision = Precision::Int4;
  return o;
}

// ---- audio models (CLAP) --------------------------------------------------------------------------------------

namespace fs = std::filesystem;

// A mono 16-bit PCM WAV (written here: a 44-byte header is all it takes).
void write_wav(const std::string& path, const std::vector<float>& x, int rate) {
  std::ofstream out(path, std::ios::binary);
  auto u32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  auto u16 = [&](uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
  const uint32_t bytes = static_cast<uint32_t>(x.size() * 2);
  out.write("RIFF", 4);
  u32(36 + bytes);
  out.write("WAVEfmt ", 8);
  u32(16);
  u16(1);  // PCM
  u16(1);  // mono
  u32(static_cast<uint32_t>(rate));
  u32(static_cast<uint32_t>(rate) * 2);
  u16(2);
  u16(16);
  out.write("data", 4);
  u32(bytes);
  for (float v : x) u16(static_cast<uint16_t>(static_cast<int16_t>(std::lround(std::clamp(v, -1.f, 1.f) * 32767.f))));
  if (!out) throw Error(path, "cannot write");
}

// `count` different 10 s clips at 48 kHz (tones + noise; the encoder's cost does not depend on the content).
std::vector<std::string> make_clips(const fs::path& dir, size_t count) {
  std::vector<std::string> paths;
  std::mt19937 rng(99);
  std::normal_distribution<float> noise(0.f, 0.05f);
  const int rate = 48000;
  for (size_t c = 0; c < count; ++c) {
    std::vector<float> x(static_cast<size_t>(rate) * 10);
    const double f0 = 110.0 * static_cast<double>(c + 1);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * f0 * static_cast<double>(i) / rate) +
                                0.2 * std::sin(2 * M_PI * 3.7 * f0 * static_cast<double>(i) / rate)) +
             noise(rng);
    paths.push_back((dir / ("clip" + std::to_string(c) + ".wav")).string());
    write_wav(paths.back(), x, rate);
  }
  return paths;
}

// Rows of embed_audio_files(paths, batch) in order; throws on a file that failed.
Embeddings embed_clips(const Model& m, const std::vector<std::string>& paths, size_t batch) {
  Embeddings e;
  e.rows = paths.size();
  e.dim = m.embedding_dim();
  e.data.resize(e.rows * e.dim);
  m.embed_audio_files(paths, batch, [&](size_t i, const float* v, const std::string& err) {
    if (!v) throw Error(paths[i], err);
    std::copy(v, v + e.dim, e.data.begin() + static_cast<std::ptrdiff_t>(i * e.dim));
    return true;
  });
  return e;
}

// Clips per second through Model::embed_audio_files (decoding and features included, as a user runs it) at
// batch size `batch`: one warm-up call, then `iters` calls of `batch` * 2 clips (so that the decoding of the next
// batch overlaps the encoding as in a real run).
double clips_per_s(const Model& m, const std::vector<std::string>& clips, size_t batch, size_t iters) {
  std::vector<std::string> paths;
  for (size_t i = 0; i < 2 * batch; ++i) paths.push_back(clips[i % clips.size()]);
  embed_clips(m, paths, batch);
  const auto t = Clock::now();
  for (size_t i = 0; i < iters; ++i) embed_clips(m, paths, batch);
  return double(paths.size() * iters) / seconds_since(t);
}

void run_audio(const BenchArgs& a, const Model& model, nlohmann::ordered_json& j) {
  const fs::path dir = fs::temp_directory_path() / ("zeroshot-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};
  const std::vector<std::string> clips = make_clips(dir, 8);
  const size_t iters = a.iters;
  const double c1 = clips_per_s(model, clips, 1, iters);
  const double c8 = clips_per_s(model, clips, 8, iters);
  j["clip_seconds"] = 10;
  j["clips_per_s_batch1"] = c1;
  j["clips_per_s_batch8"] = c8;
  j["seconds_per_clip_batch1"] = 1.0 / c1;
  j["real_time_factor"] = 10.0 * std::max(c1, c8);  // seconds of audio per second of compute

  // Texts: 8 sequences (or --batch) of 12 tokens, as for image models.
  const size_t n = std::max<size_t>(a.batch, 8);
  const std::vector<int32_t> empty = model.tokenize("");  // [bos, eos]
  std::vector<std::vector<int32_t>> ids(n);
  for (size_t i = 0; i < n; ++i) {
    ids[i].push_back(empty.front());
    for (size_t k = 0; k < 10; ++k) ids[i].push_back(static_cast<int32_t>(320 + (i * 7 + k) % 4000));
    ids[i].push_back(empty.back());
  }
  model.embed_token_ids(ids);
  auto t = Clock::now();
  for (size_t i = 0; i < iters; ++i) model.embed_token_ids(ids);
  j["text_batch"] = n;
  j["texts_per_s"] = double(n * iters) / seconds_since(t);
  // The 50 ESC-50 class names through the model's template, tokenizer included.
  std::vector<std::string> prompts;
  for (const auto& names : classify::find_label_set("esc50")->classes)
    prompts.push_back(std::string("This is a sound of ") + names[0] + ".");
  t = Clock::now();
  std::vector<std::vector<int32_t>> prompt_ids;
  prompt_ids.reserve(prompts.size());
  for (const auto& p : prompts) prompt_ids.push_back(model.tokenize(p));
  const Embeddings esc_embeds = model.embed_token_ids(prompt_ids);
  j["texts_per_s_esc50"] = double(prompts.size()) / seconds_since(t);
  j["peak_rss_mb"] = status_mb("VmHWM");

  if (a.model.precision == "f32") {
    j["min_cosine_vs_f32"] = nullptr;
    return;
  }
  std::vector<std::string> files = clips;
  if (!a.audio_dir.empty()) {
    files = gather_model_inputs({a.audio_dir}, model);
    if (files.empty()) throw Error(a.audio_dir, "no audio files found");
  }
  auto ref = Model::load(a.model.model, model_options(a, "f32"));
  // Files that do not decode (a fixtures folder holds some on purpose) are left out and counted.
  std::vector<std::string> ok;
  for (const auto& f : files) {
    try {
      embed_clips(*ref, {f}, 1);
      ok.push_back(f);
    } catch (const Error&) {
    }
  }
  if (ok.empty()) throw Error(a.audio_dir, "no audio file could be decoded");
  const double ca = min_row_cosine(embed_clips(model, ok, 8), embed_clips(*ref, ok, 8));
  const double ct = min_row_cosine(esc_embeds, ref->embed_token_ids(prompt_ids));
  j["min_cosine_vs_f32"] = std::min(ca, ct);
  j["min_cosine_vs_f32_audio"] = ca;
  j["min_cosine_vs_f32_texts"] = ct;
  j["cosine_audio_files"] = ok.size();
  j["cosine_audio_skipped"] = files.size() - ok.size();
  j["cosine_inputs"] = a.audio_dir.empty() ? std::string("8 generated 10 s clips + the 50 ESC-50 prompts")
                                           : a.audio_dir + " + the 50 ESC-50 prompts";
}

// FLOPs of one image through the vision tower of a Hugging Face CLIP folder, from its config.json; 0 for the other
// families (their geometry is not read here yet).
double vit_flops_per_image(const Model& m) {
  if (std::string(m.model_type()) != "clip") return 0;
  const models::ClipConfig c = models::ClipConfig::load((fs::path(m.directory()) / "config.json").string());
  const models::ClipTowerConfig& v = c.vision;
  return nn::vit_flops(v.image_size, v.patch_size, v.num_channels, v.hidden_size, v.intermediate_size, v.num_layers,
                       c.projection_dim);
}

// The text tower's vocabulary size from the checkpoint's config (Hugging Face text_config.vocab_size, OpenCLIP
// model_cfg.text_cfg.vocab_size), 0 when neither says: the timed texts' word ids must stay inside it (the test
// fixtures have vocabularies of a few hundred ids; every real checkpoint's is far above the ids used).
int64_t text_vocab_size(const Model& m) {
  for (const auto& [file, keys] : {std::pair<const char*, std::vector<const char*>>{"config.json", {"text_config"}},
                                   {"open_clip_config.json", {"model_cfg", "text_cfg"}}}) {
    std::ifstream in(fs::path(m.directory()) / file);
    if (!in) continue;
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    const nlohmann::json* node = &j;
    for (const char* k : keys) node = node->is_object() && node->contains(k) ? &(*node)[k] : nullptr;
    if (node && node->is_object() && node->contains("vocab_size") && (*node)["vocab_size"].is_number_integer())
      return (*node)["vocab_size"].get<int64_t>();
  }
  return 0;
}

// A batch of n images as the model takes them. Fixed-size towers: random pixel values (the processor's output
// range). A NaFlex model (siglip2) takes packed records (image/naflex_processor.h), not a pixel grid, so its batch is
// random 8-bit RGB images of 512 x 384 (a camera's 4:3) through its own preprocessing, which packs them.
std::vector<float> random_image_batch(const Model& m, size_t n, std::mt19937& rng) {
  const size_t per_image = size_t(3) * m.image_size() * m.image_size();
  std::vector<float> pixels(n * per_image);
  if (std::string(m.model_type()) != "siglip2") {
    std::normal_distribution<float> normal(0.f, 1.f);
    for (float& v : pixels) v = normal(rng);
    return pixels;
  }
  constexpr int kWidth = 512, kHeight = 384;
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> rgb(size_t(3) * kWidth * kHeight);
  for (size_t i = 0; i < n; ++i) {
    for (uint8_t& v : rgb) v = static_cast<uint8_t>(byte(rng));
    const std::vector<float> rec = m.preprocess_rgb(rgb.data(), kWidth, kHeight, "random image");
    if (rec.size() != per_image) throw Error("random image", "preprocessed to an unexpected size");
    std::copy(rec.begin(), rec.end(), pixels.begin() + static_cast<std::ptrdiff_t>(i * per_image));
  }
  return pixels;
}

void machine_facts(const BenchArgs& a, nlohmann::ordered_json& j) {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  j["threads"] = a.model.threads > 0 ? static_cast<unsigned>(a.model.threads) : hw;
  j["hardware_threads"] = hw;
  j["gemm_backend"] = nn::gemm_backend();
  j["cpu"] = cpu_model();
  j["load_average"] = load_average();
  j["date"] = utc_now();
}

void print(const BenchArgs& a, const nlohmann::ordered_json& j) {
  if (resolve_format(a.format) == Format::Json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    // For people: rates and sizes rounded to what a run-to-run comparison can use (JSON keeps every digit);
    // cosines keep five decimals, where the precisions differ.
    for (const auto& [k, v] : j.items()) {
      std::string text = v.is_string() ? v.get<std::string>() : v.dump();
      if (v.is_number_float()) {
        const double x = v.get<double>();
        char buf[32];
        if (k.find("cosine") != std::string::npos) std::snprintf(buf, sizeof buf, "%.5f", x);
        else if (std::fabs(x) >= 100) std::snprintf(buf, sizeof buf, "%.0f", x);
        else if (std::fabs(x) >= 1) std::snprintf(buf, sizeof buf, "%.2f", x);
        else if (std::fabs(x) >= 0.001 || x == 0) std::snprintf(buf, sizeof buf, "%.4f", x);
        else std::snprintf(buf, sizeof buf, "%.2e", x);
        text = buf;
      }
      std::printf("%-26s %s\n", k.c_str(), text.c_str());
    }
  }
}

int run(const BenchArgs& a) {
  using nlohmann::ordered_json;
  const ModelOptions opt = model_options(a, a.model.precision);  // checked before any work
  std::vector<std::string> image_files;
  if (!a.images_dir.empty()) {
    image_files = gather_image_inputs({a.images_dir});
    if (image_files.empty()) throw Error(a.images_dir, "no image files found");
  }
  const size_t n = a.batch, iters = a.iters;

  auto t = Clock::now();
  auto model = Model::load(a.model.model, opt);
  const double load_s = seconds_since(t);
  const double rss_after_load = status_mb("VmRSS");
  if (model->modality() == Modality::Audio) {
    ordered_json j;
    j["model"] = model->name();
    j["model_type"] = model->model_type();
    j["fingerprint"] = model->fingerprint();
    j["precision"] = a.model.precision;
    j["iters"] = iters;
    j["load_s"] = load_s;
    j["rss_after_load_mb"] = rss_after_load;
    run_audio(a, *model, j);
    machine_facts(a, j);
    print(a, j);
    return 0;
  }
  // Images: random_image_batch, the first batch timed on its own (it faults in the vision weights), then `iters`
  // batches.
  std::mt19937 rng(1234);
  const std::vector<float> pixels = random_image_batch(*model, n, rng);
  t = Clock::now();
  const Embeddings first_images = model->embed_pixel_values(pixels.data(), n);
  const double first_image_s = seconds_since(t);
  t = Clock::now();
  for (size_t i = 0; i < iters; ++i) model->embed_pixel_values(pixels.data(), n);
  const double images_s = seconds_since(t);
  // The peak of the precision's multiply-add instruction on as many threads as the model, right after the timed
  // batches (same process, same minute: a shared machine's load weighs on both).
  nn::PeakRate peak;
  {
    nn::ThreadPool probe_pool(a.model.threads);
    const nn::Precision np = opt.precision == Precision::BF16   ? nn::Precision::BF16
                             : opt.precision == Precision::Int8 ? nn::Precision::Int8
                             : opt.precision == Precision::Int4 ? nn::Precision::Int4
                                                                : nn::Precision::F32;
    peak = nn::measure_peak(np, &probe_pool);
  }

  // Texts: n sequences of 12 tokens (bos, 10 words, eos) as the PyTorch peer builds them.
  const std::vector<int32_t> empty = model->tokenize("");  // [bos, eos]
  const int64_t vocab = text_vocab_size(*model);
  std::vector<std::vector<int32_t>> ids(n);
  for (size_t i = 0; i < n; ++i) {
    ids[i].push_back(empty.front());
    for (size_t j = 0; j < 10; ++j) {
      const auto id = static_cast<int64_t>(320 + (i * 7 + j) % 4000);
      ids[i].push_back(static_cast<int32_t>(vocab > 0 ? id % vocab : id));  // the same ids wherever vocab > 4320
    }
    ids[i].push_back(empty.back());
  }
  t = Clock::now();
  model->embed_token_ids(ids);
  const double first_text_s = seconds_since(t);
  t = Clock::now();
  for (size_t i = 0; i < iters; ++i) model->embed_token_ids(ids);
  const double texts_s = seconds_since(t);

  // The 1,000 ImageNet class names through one template, tokenizer included (as a label set is built).
  const classify::LabelSet* imagenet = classify::find_label_set("imagenet");
  std::vector<std::string> prompts;
  if (!a.no_imagenet)
    for (const auto& names : imagenet->classes) prompts.push_back("a photo of a " + names[0] + ".");
  t = Clock::now();
  std::vector<std::vector<int32_t>> prompt_ids;
  prompt_ids.reserve(prompts.size());
  for (const auto& p : prompts) prompt_ids.push_back(model->tokenize(p));
  const double tokenize_s = seconds_since(t);
  if (prompt_ids.empty()) prompt_ids = ids;  // --no-imagenet: min_cosine_vs_f32 over the timed texts instead
  const Embeddings imagenet_embeds = model->embed_token_ids(prompt_ids);
  const double imagenet_s = seconds_since(t);
  if (!a.save_ids.empty()) {
    std::ofstream out(a.save_ids);
    out << nlohmann::json(prompt_ids).dump() << "\n";
    if (!out) throw Error(a.save_ids, "cannot write");
  }
  const double peak_rss = status_mb("VmHWM");

  ordered_json j;
  j["model"] = model->name();
  j["fingerprint"] = model->fingerprint();
  j["precision"] = a.model.precision;
  j["batch"] = n;
  j["iters"] = iters;
  j["load_s"] = load_s;
  j["first_image_batch_s"] = first_image_s;
  j["images_per_s"] = iters ? double(n * iters) / images_s : 0.0;
  // FLOPs from the config's geometry (nn::vit_flops), the peak from nn::measure_peak; null where either is unknown.
  const double flops = vit_flops_per_image(*model), gflops = j["images_per_s"].get<double>() * flops / 1e9;
  j["gflops_per_image"] = flops > 0 ? nlohmann::json(flops / 1e9) : nlohmann::json(nullptr);
  j["gflops"] = flops > 0 ? nlohmann::json(gflops) : nlohmann::json(nullptr);
  j["peak_gflops"] = peak.gflops > 0 ? nlohmann::json(peak.gflops) : nlohmann::json(nullptr);
  j["peak_probe"] = peak.gflops > 0 ? std::string(peak.instruction) + " x " + std::to_string(peak.threads) + " threads"
                                    : std::string("none (no AVX-512 kernels for this precision)");
  j["fraction_of_peak"] = flops > 0 && peak.gflops > 0 ? nlohmann::json(gflops / peak.gflops) : nlohmann::json(nullptr);
  j["first_text_batch_s"] = first_text_s;
  j["texts_per_s"] = iters ? double(n * iters) / texts_s : 0.0;
  if (a.no_imagenet) j["texts_per_s_imagenet1000"] = nullptr;
  else j["texts_per_s_imagenet1000"] = double(prompts.size()) / imagenet_s;
  j["tokenize_imagenet1000_s"] = tokenize_s;
  j["rss_after_load_mb"] = rss_after_load;
  j["peak_rss_mb"] = peak_rss;

  // Error against f32: a second, f32 model on the same inputs (the --images files when given, else the random
  // pixels above) and the ImageNet prompts. Loaded after peak_rss_mb was read.
  if (a.model.precision == "f32") {
    j["min_cosine_vs_f32"] = nullptr;
  } else {
    auto ref = Model::load(a.model.model, model_options(a, "f32"));
    Embeddings mine = first_images, theirs;
    if (!image_files.empty()) {
      // Files that do not decode (a fixtures folder holds some on purpose) are left out and counted.
      std::vector<float> px;
      size_t used = 0;
      for (const auto& f : image_files) {
        try {
          const std::vector<float> p = model->preprocess_image_file(f);
          px.insert(px.end(), p.begin(), p.end());
          ++used;
        } catch (const Error&) {
        }
      }
      if (used == 0) throw Error(a.images_dir, "no image could be decoded");
      mine = model->embed_pixel_values(px.data(), used);
      theirs = ref->embed_pixel_values(px.data(), used);
      j["cosine_images"] = used;
      j["cosine_images_skipped"] = image_files.size() - used;
    } else {
      theirs = ref->embed_pixel_values(pixels.data(), n);
    }
    const double ci = min_row_cosine(mine, theirs);
    const double ct = min_row_cosine(imagenet_embeds, ref->embed_token_ids(prompt_ids));
    j["min_cosine_vs_f32"] = std::min(ci, ct);
    j["min_cosine_vs_f32_images"] = ci;
    j["min_cosine_vs_f32_texts"] = ct;
    j["cosine_inputs"] = !image_files.empty()                            ? a.images_dir
                         : std::string(model->model_type()) == "siglip2" ? std::string("random 512 x 384 RGB images")
                                                                         : std::string("random pixel values");
  }

  machine_facts(a, j);
  print(a, j);
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, std::function<int()>* action) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* c = app.add_subcommand("bench", "Measure load time, images/s, texts/s and peak memory of a model");
  a->model.add_to(*c);
  c->add_option("-b,--batch", a->batch, "Images (and texts) per call")->default_val(1)->check(CLI::Range(1, 1024));
  c->add_option("--iters", a->iters, "Timed calls after the first (untimed in the rates)")
      ->default_val(5)
      ->check(CLI::Range(1, 100000));
  c->add_option(
      "--images", a->images_dir,
      "Folder of images for min_cosine_vs_f32 (files that do not decode are skipped and counted; default: the "
      "random pixel batch)");
  c->add_option("--audio", a->audio_dir,
                "Audio models: folder of audio files for min_cosine_vs_f32 (default: the generated 10 s clips)");
  CLI::Option* save_ids = c->add_option(
      "--save-imagenet-ids", a->save_ids,
      "Write the token ids of the 1,000 ImageNet prompts (a JSON array of arrays), for running the peers on "
      "the same inputs");
  c->add_flag("--no-imagenet", a->no_imagenet,
              "Skip the 1,000 ImageNet prompts (texts_per_s_imagenet1000 null; min_cosine_vs_f32 over the timed "
              "texts)")
      ->excludes(save_ids);
  c->add_option("-f,--format", a->format, "Output: json (one object, the default) or table")
      ->default_val("json")
      ->check(CLI::IsMember({"json", "table"}));
  c->footer(
      "Keys: load_s (Model::load), first_image_batch_s / first_text_batch_s (the first call, which faults in the\n"
      "weights), images_per_s and texts_per_s (the next --iters calls of --batch random pixel values / 12-token\n"
      "texts; NaFlex models: random 512 x 384 RGB images through their preprocessing), texts_per_s_imagenet1000\n"
      "(the 1,000 ImageNet class names through \"a photo of a {}.\", tokenizer included), peak_rss_mb (VmHWM\n"
      "before any f32 reference is loaded), min_cosine_vs_f32 (lower precisions: the smallest cosine between this "
      "model's and an f32 model's embeddings of the same images and ImageNet prompts;\n"
      "null for f32), and the machine: threads, gemm_backend, cpu, load_average, date.\n"
      "Audio models (CLAP): clips_per_s_batch1 / clips_per_s_batch8 (generated 10 s clips at 48 kHz through\n"
      "embed_audio_files: decoding, features and encoder; 2 x batch clips per timed call), seconds_per_clip_batch1,\n"
      "real_time_factor (audio seconds per second), texts_per_s (batches of max(--batch, 8) 12-token texts),\n"
      "texts_per_s_esc50, load_s, peak_rss_mb, min_cosine_vs_f32 (generated clips or --audio files, and the 50\n"
      "ESC-50 prompts).");
  c->callback([a, action] { *action = [a] { return run(*a); }; });
}

}  // namespace zeroshot::cli
