// --precision on the model commands (caches kept apart per precision) and `zeroshot quantize` (the int8 weights
// file: used by later loads with the same embeddings and less memory; a mismatched file ignored, a damaged one
// refused; hub-cache snapshots refused), and the same for --precision int4 and its file (at the end).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <tuple>

#include "io/json.h"
#include "io/safetensors.h"
#include "nn/linear.h"
#include "support/cli.h"
#include "support/compare.h"
#include "support/fixtures.h"
#include "support/memory.h"
#include "support/temp_dir.h"
#include "zeroshot/zeroshot.h"

namespace fs = std::filesystem;
using namespace zeroshot;
using namespace zeroshot::testing;

namespace {

// The built binary with its caches under `home`, offline, tracing its phases.
const auto zeroshot_cli = run_cli_traced;

// A writable copy of a fixture model (the fixtures are read-only).
fs::path copy_model(const TempDir& home, const std::string& model, const std::string& as) {
  const fs::path dst = home.path / as;
  fs::create_directories(dst);
  for (const char* f : {"config.json", "preprocessor_config.json", "vocab.json", "merges.txt", "model.safetensors"})
    fs::copy_file(fs::path(clip_dir(model)) / f, dst / f);
  for (const auto& e : fs::directory_iterator(dst))
    fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  return dst;
}

// The embeddings of an `embed --format json` run, in output order.
std::vector<std::vector<float>> embeddings(const std::string& out) {
  std::vector<std::vector<float>> v;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) v.push_back(io::parse_json(line, "embed output").at("embedding").get<std::vector<float>>());
  return v;
}

// A CLIP checkpoint whose weights are mostly vision encoder layers (8 x 384-wide, ~57 MB of f32 layer weights,
// 64-pixel images): large enough that holding its f32 layer weights or not shows in the peak RSS.
fs::path synthetic_model(const TempDir& home) {
  const fs::path dir = copy_model(home, "clip-tiny-quickgelu", "synthetic");
  io::Json cfg = io::load_json((dir / "config.json").string());
  const int vd = 384, vi = 1536, layers = 8, side = 64, patch = 16, td = 64, ti = 256, proj = 64;
  cfg["projection_dim"] = proj;
  cfg["vision_config"]["hidden_size"] = vd;
  cfg["vision_config"]["intermediate_size"] = vi;
  cfg["vision_config"]["num_attention_heads"] = 6;
  cfg["vision_config"]["num_hidden_layers"] = layers;
  cfg["vision_config"]["image_size"] = side;
  cfg["vision_config"]["patch_size"] = patch;
  cfg["vision_config"]["projection_dim"] = proj;
  cfg["text_config"]["hidden_size"] = td;
  cfg["text_config"]["intermediate_size"] = ti;
  cfg["text_config"]["num_hidden_layers"] = 1;
  cfg["text_config"]["projection_dim"] = proj;
  std::ofstream(dir / "config.json") << cfg.dump(2);
  io::Json pre = io::load_json((dir / "preprocessor_config.json").string());
  pre["crop_size"] = side;
  pre["size"] = side;
  std::ofstream(dir / "preprocessor_config.json") << pre.dump(2);

  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"logit_scale", {}},
      {"visual_projection.weight", {proj, vd}},
      {"text_projection.weight", {proj, td}},
      {"vision_model.embeddings.class_embedding", {vd}},
      {"vision_model.embeddings.patch_embedding.weight", {vd, 3, patch, patch}},
      {"vision_model.embeddings.position_embedding.weight", {(side / patch) * (side / patch) + 1, vd}},
      {"vision_model.pre_layrnorm.weight", {vd}},
      {"vision_model.pre_layrnorm.bias", {vd}},
      {"vision_model.post_layernorm.weight", {vd}},
      {"vision_model.post_layernorm.bias", {vd}},
      {"text_model.embeddings.token_embedding.weight", {49408, td}},
      {"text_model.embeddings.position_embedding.weight", {77, td}},
      {"text_model.final_layer_norm.weight", {td}},
      {"text_model.final_layer_norm.bias", {td}},
  };
  for (const auto& [tower, n, d, inter] :
       {std::tuple<std::string, int, int64_t, int64_t>{"vision_model", layers, vd, vi},
        std::tuple<std::string, int, int64_t, int64_t>{"text_model", 1, td, ti}}) {
    for (int l = 0; l < n; ++l) {
      const std::string p = tower + ".encoder.layers." + std::to_string(l) + ".";
      for (const char* a : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
        shapes.push_back({p + "self_attn." + a + ".weight", {d, d}});
        shapes.push_back({p + "self_attn." + a + ".bias", {d}});
      }
      for (const char* ln : {"layer_norm1", "layer_norm2"}) {
        shapes.push_back({p + ln + ".weight", {d}});
        shapes.push_back({p + ln + ".bias", {d}});
      }
      shapes.push_back({p + "mlp.fc1.weight", {inter, d}});
      shapes.push_back({p + "mlp.fc1.bias", {inter}});
      shapes.push_back({p + "mlp.fc2.weight", {d, inter}});
      shapes.push_back({p + "mlp.fc2.bias", {d}});
    }
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::vector<std::vector<float>> data;
  std::vector<io::TensorData> tensors;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    std::vector<float> v(static_cast<size_t>(n));
    const bool gain = name.find("norm") != std::string::npos && name.find(".weight") != std::string::npos;
    for (float& x : v) x = gain ? 1.f : normal(rng);
    if (name == "logit_scale") v[0] = 2.6592f;
    data.push_back(std::move(v));
    tensors.push_back({name, io::DType::F32, shape, data.back().data()});
  }
  io::write_safetensors((dir / "model.safetensors").string(), tensors);
  return dir;
}

io::Json bench(const TempDir& home, const fs::path& model, const std::string& precision) {
  const CliResult r =
      zeroshot_cli(home, {"bench", "-m", model.string(), "--iters", "1", "--threads", "2", "--precision", precision});
  EXPECT_EQ(r.code, 0) << r.err;
  return io::parse_json(r.out, "bench output");
}

// The line of stderr that holds `needle` (the error; traced runs print phase lines too).
std::string line_with(const std::string& err, const std::string& needle) {
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) return line;
  return "";
}

// The file rewritten with metadata[key] = value (tensors unchanged).
void rewrite_metadata(const fs::path& file, const std::string& key, const std::string& value) {
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<io::TensorData> tensors;
  std::map<std::string, std::string> meta;
  {
    const io::SafeTensorsFile f(file.string());
    meta = f.metadata();
    for (const auto& [name, t] : f.tensors()) {
      bytes.emplace_back(t.data, t.data + t.nbytes);
      tensors.push_back({name, t.dtype, t.shape, nullptr});
    }
  }
  for (size_t i = 0; i < tensors.size(); ++i) tensors[i].data = bytes[i].data();
  meta[key] = value;
  io::write_safetensors(file.string(), tensors, meta);
}

}  // namespace

TEST(PrecisionOption, EveryModelCommandHasIt) {
  TempDir home;
  for (const char* cmd : {"classify", "embed", "moderate", "index", "search", "dedup", "eval", "bench"}) {
    const CliResult r = zeroshot_cli(home, {cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("--precision"), std::string::npos) << cmd;
  }
  const CliResult bad =
      zeroshot_cli(home, {"embed", "-m", clip_dir("clip-tiny-quickgelu"), "--text", "a", "--precision", "f16"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--precision"), std::string::npos) << bad.err;
}

TEST(PrecisionOption, FingerprintAndCachesArePerPrecision) {
  const std::string dir = clip_dir("clip-tiny-quickgelu");
  ModelOptions o;
  o.threads = 2;
  const std::string f32 = Model::load(dir, o)->fingerprint();
  EXPECT_EQ(f32, Model::load(dir, o)->fingerprint());
  o.precision = Precision::BF16;
  const std::string bf16 = Model::load(dir, o)->fingerprint();
  o.precision = Precision::Int8;
  const std::string int8 = Model::load(dir, o)->fingerprint();
  EXPECT_NE(f32, bf16);
  EXPECT_NE(f32, int8);
  EXPECT_NE(bf16, int8);

  TempDir home;
  const Args classify = {"classify", image_path("chelsea.png"), "-m", dir, "-f", "json", "-q", "-l", "cat,dog,car"};
  ASSERT_EQ(zeroshot_cli(home, classify).code, 0);
  EXPECT_EQ(label_cache_files(home.str()), 1u);
  const CliResult a = zeroshot_cli(home, classify + Args{"--precision", "int8"});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(label_cache_files(home.str()), 2u);                         // not the f32 entry
  EXPECT_NE(a.err.find("load tokenizer"), std::string::npos) << a.err;  // the labels were encoded at int8
  const CliResult b = zeroshot_cli(home, classify + Args{"--precision", "int8"});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(b.err.find("load tokenizer"), std::string::npos) << b.err;  // its own entry, now cached
  EXPECT_EQ(b.out, a.out);

  // An index made at f32 is not filled with int8 embeddings.
  const fs::path photos = home.path / "photos";
  fs::create_directories(photos);
  fs::copy_file(image_path("chelsea.png"), photos / "chelsea.png");
  const Args db = {"--db", (home.path / "index.db").string(), "-q"};
  ASSERT_EQ(zeroshot_cli(home, Args{"index", "-m", dir} + db + Args{photos.string()}).code, 0);
  const CliResult mixed =
      zeroshot_cli(home, Args{"index", "-m", dir, "--precision", "int8"} + db + Args{photos.string()});
  EXPECT_NE(mixed.code, 0);
  EXPECT_NE(mixed.err.find("made with another model"), std::string::npos) << mixed.err;

  // embed: the precision is in effect (close to f32, not equal).
  const Args embed = {"embed", "-m", dir, "-f", "json", "--image", image_path("chelsea.png"), "--text", "a cat"};
  const auto e32 = embeddings(zeroshot_cli(home, embed).out),
             e16 = embeddings(zeroshot_cli(home, embed + Args{"--precision", "bf16"}).out);
  ASSERT_EQ(e32.size(), 2u);
  ASSERT_EQ(e16.size(), 2u);
  EXPECT_NE(e32, e16);
  EXPECT_GE(min_cosine(e32, e16), 0.999);
}

TEST(Quantize, WritesTheFileThatLaterLoadsUse) {
  TempDir home;
  const fs::path dir = copy_model(home, "clip-tiny-quickgelu", "model");
  const Args embed = {"-f",    "json",   "--threads",       "2", "--image", image_path("chelsea.png"), "--text",
                      "a cat", "--text", "a photo of a dog"};
  const CliResult at_load = zeroshot_cli(home, Args{"embed", "-m", dir.string(), "--precision", "int8"} + embed);
  ASSERT_EQ(at_load.code, 0) << at_load.err;

  const CliResult q = zeroshot_cli(home, {"quantize", "--in-place", "-m", dir.string()});
  ASSERT_EQ(q.code, 0) << q.err;
  const fs::path file = dir / "zeroshot-int8.safetensors";
  EXPECT_EQ(q.out, file.string() + "\n");
  EXPECT_NE(q.err.find("wrote " + file.string()), std::string::npos) << q.err;
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(io::SafeTensorsFile(file.string()).metadata().at("format"), "zeroshot-int8");

  // The same embeddings, bit for bit (the file holds exactly what quantizing at load computes).
  const CliResult from_file = zeroshot_cli(home, Args{"embed", "-m", dir.string(), "--precision", "int8"} + embed);
  ASSERT_EQ(from_file.code, 0) << from_file.err;
  EXPECT_EQ(from_file.out, at_load.out);
  const std::string used = "int8 weights read from zeroshot-int8.safetensors";  // a ZEROSHOT_TRACE note
  EXPECT_NE(from_file.err.find(used), std::string::npos) << from_file.err;
  EXPECT_EQ(at_load.err.find(used), std::string::npos) << at_load.err;

  // Made from other weights: ignored (quantized at load instead, same output).
  const fs::path other = copy_model(home, "clip-tiny-gelu-f16", "other");
  ASSERT_EQ(zeroshot_cli(home, {"quantize", "-q", "-m", other.string(), "-o", file.string()}).code, 0);
  const CliResult mismatched = zeroshot_cli(home, Args{"embed", "-m", dir.string(), "--precision", "int8"} + embed);
  ASSERT_EQ(mismatched.code, 0) << mismatched.err;
  EXPECT_EQ(mismatched.out, at_load.out);
  EXPECT_EQ(mismatched.err.find(used), std::string::npos) << mismatched.err;

  // Damaged: refused with a one-line error naming the file; f32 never reads it.
  std::ofstream(file, std::ios::binary | std::ios::trunc) << "not a safetensors file";
  const CliResult damaged = zeroshot_cli(home, Args{"embed", "-m", dir.string(), "--precision", "int8"} + embed);
  EXPECT_EQ(damaged.code, 2);
  EXPECT_TRUE(damaged.out.empty()) << damaged.out;
  EXPECT_NE(damaged.err.find("zeroshot: " + file.string() + ": damaged int8 weights file"), std::string::npos)
      << damaged.err;
  EXPECT_NE(damaged.err.find("zeroshot quantize"), std::string::npos) << damaged.err;
  EXPECT_EQ(zeroshot_cli(home, Args{"embed", "-m", dir.string()} + embed).code, 0);
}

TEST(Quantize, RefusesHubSnapshotsAndOtherModels) {
  TempDir home;
  const fs::path snap =
      home.path / "hub" / "models--org--tiny" / "snapshots" / "0123456789abcdef0123456789abcdef01234567";
  fs::create_directories(snap.parent_path());
  fs::rename(copy_model(home, "clip-tiny-quickgelu", "m"), snap);
  const CliResult r = zeroshot_cli(home, {"quantize", "--in-place", "-m", snap.string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("hub cache snapshot"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(snap / "zeroshot-int8.safetensors"));
  const CliResult hub_id =
      zeroshot_cli(home, {"quantize", "--in-place", "-m", "org/not-downloaded"});  // refused before any download
  EXPECT_EQ(hub_id.code, 2);
  EXPECT_NE(hub_id.err.find("org/not-downloaded: a hub id"), std::string::npos) << hub_id.err;
  // -o elsewhere is fine.
  const Args elsewhere = {"quantize", "-q", "-m", snap.string(), "-o", (home.path / "q.safetensors").string()};
  EXPECT_EQ(zeroshot_cli(home, elsewhere).code, 0);
  EXPECT_TRUE(fs::exists(home.path / "q.safetensors"));

  // A read-only folder (by its permission bits, also for root, who could write anywhere).
  {
    const fs::path ro = copy_model(home, "clip-tiny-quickgelu", "readonly");
    fs::permissions(ro, fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                    fs::perm_options::remove);
    const CliResult r2 = zeroshot_cli(home, {"quantize", "--in-place", "-m", ro.string()});
    fs::permissions(ro, fs::perms::owner_write, fs::perm_options::add);
    EXPECT_EQ(r2.code, 2);
    EXPECT_NE(r2.err.find(ro.string() + ": read-only folder"), std::string::npos) << r2.err;
  }

  const CliResult bf16 = zeroshot_cli(home, {"quantize", "-m", clip_dir("clip-tiny-quickgelu"), "--precision", "bf16"});
  EXPECT_NE(bf16.code, 0);
}

// Without --in-place nothing is written into the model folder (it may be shared): a one-line error saying what to
// give. -o DIR makes a new model folder of links to the model's files plus the int8 file, which int8 loads of DIR
// read, with the same embeddings as quantizing at load; the original folder stays as it was.
TEST(Quantize, WritesIntoTheModelFolderOnlyWithInPlace) {
  TempDir home;
  const fs::path dir = copy_model(home, "clip-tiny-quickgelu", "model");
  const CliResult bare = zeroshot_cli(home, {"quantize", "-m", dir.string()});
  EXPECT_EQ(bare.code, 2);
  EXPECT_EQ(std::count(bare.err.begin(), bare.err.end(), '\n'), 1) << bare.err;
  EXPECT_NE(bare.err.find(dir.string() + ": "), std::string::npos) << bare.err;
  EXPECT_NE(bare.err.find("--in-place"), std::string::npos) << bare.err;
  EXPECT_NE(bare.err.find("-o DIR"), std::string::npos) << bare.err;
  EXPECT_FALSE(fs::exists(dir / "zeroshot-int8.safetensors"));
  EXPECT_EQ(zeroshot_cli(home, {"quantize", "--in-place", "-o", (home.path / "x").string(), "-m", dir.string()}).code,
            2);  // one or the other

  const fs::path out = home.path / "model-int8";
  const CliResult q = zeroshot_cli(home, {"quantize", "-q", "-m", dir.string(), "-o", out.string()});
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_EQ(q.out, (out / "zeroshot-int8.safetensors").string() + "\n");
  EXPECT_FALSE(fs::exists(dir / "zeroshot-int8.safetensors"));
  for (const auto& e : fs::directory_iterator(dir)) {
    const fs::path link = out / e.path().filename();
    ASSERT_TRUE(fs::is_symlink(link)) << link;
    EXPECT_TRUE(fs::equivalent(link, e.path())) << link;
  }
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(out / "zeroshot-int8.safetensors")));
  const Args embed = {"-f",     "json", "--threads", "2", "--precision", "int8", "--image", image_path("chelsea.png"),
                      "--text", "a cat"};
  const CliResult at_load = zeroshot_cli(home, Args{"embed", "-m", dir.string()} + embed);
  const CliResult from_file = zeroshot_cli(home, Args{"embed", "-m", out.string()} + embed);
  ASSERT_EQ(at_load.code, 0) << at_load.err;
  ASSERT_EQ(from_file.code, 0) << from_file.err;
  EXPECT_EQ(from_file.out, at_load.out);
  EXPECT_NE(from_file.err.find("int8 weights read from zeroshot-int8.safetensors"), std::string::npos) << from_file.err;

  // Again into the same folder: its links are replaced. A file of someone else's there is never overwritten.
  EXPECT_EQ(zeroshot_cli(home, {"quantize", "-q", "-m", dir.string(), "-o", out.string()}).code, 0);
  const fs::path taken = home.path / "taken";
  fs::create_directories(taken);
  std::ofstream(taken / "config.json") << "{}";
  const CliResult clash = zeroshot_cli(home, {"quantize", "-q", "-m", dir.string(), "-o", taken.string()});
  EXPECT_EQ(clash.code, 2);
  EXPECT_NE(clash.err.find((taken / "config.json").string() + ": already exists"), std::string::npos) << clash.err;
  EXPECT_EQ(read_file((taken / "config.json").string()), "{}");
  const CliResult itself = zeroshot_cli(home, {"quantize", "-q", "-m", dir.string(), "-o", dir.string()});
  EXPECT_EQ(itself.code, 2);
  EXPECT_NE(itself.err.find("--in-place"), std::string::npos) << itself.err;
}

// Every family has an int8 weights file (the loader captures what an int8 load quantizes): CLAP's, unfused and
// fused, gives the same embeddings as quantizing at load, bit for bit, and later int8 loads read it.
TEST(Quantize, ClapModelsToo) {
  for (const std::string m : {"clap-tiny-unfused", "clap-tiny-fused"}) {
    const fs::path src = fs::path(ZEROSHOT_FIXTURES) / "clap" / m;
    ASSERT_TRUE(fs::exists(src)) << src;
    TempDir home;
    const fs::path dir = home.path / m;
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(src))
      if (e.is_regular_file() && e.path().filename().string().rfind("expected", 0) != 0)
        fs::copy_file(e.path(), dir / e.path().filename());
    for (const auto& e : fs::directory_iterator(dir))
      fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
    const CliResult q = zeroshot_cli(home, {"quantize", "-q", "--in-place", "-m", dir.string()});
    ASSERT_EQ(q.code, 0) << q.err;
    ASSERT_TRUE(fs::exists(dir / "zeroshot-int8.safetensors"));
    const io::SafeTensorsFile file((dir / "zeroshot-int8.safetensors").string());
    EXPECT_TRUE(file.tensors().count("text_model.encoder.layer.0.attention.self.query.weight"));
    EXPECT_TRUE(file.tensors().count("audio_model.audio_encoder.layers.0.blocks.0.intermediate.dense.weight"));

    ModelOptions o;
    o.precision = Precision::Int8;
    const auto at_load = Model::load(src.string(), o);  // no file there: quantized at load
    const auto from_file = Model::load(dir.string(), o);
    const std::vector<std::string> texts = {"a dog barking", "rain on a window"};
    const std::string sound = std::string(ZEROSHOT_FIXTURES) + "/audio/chord_3s.wav";
    const Embeddings ta = at_load->embed_texts(texts), tf = from_file->embed_texts(texts);
    const Embeddings aa = at_load->embed_audio_files({sound}), af = from_file->embed_audio_files({sound});
    EXPECT_EQ(ta.data, tf.data) << m;
    EXPECT_EQ(aa.data, af.data) << m;
    const CliResult e =
        zeroshot_cli(home, {"embed", "-m", dir.string(), "--precision", "int8", "--text", "dog", "--format", "json"});
    EXPECT_EQ(e.code, 0) << e.err;
    EXPECT_NE(e.err.find("int8 weights read from zeroshot-int8.safetensors"), std::string::npos) << e.err;
  }
}

TEST(Quantize, FileKeepsPeakMemoryWellBelowF32) {
  // The portable path runs int8 through OpenBLAS on f32 copies of the quantized weights: no memory saving there.
  if (!nn::avx512_kernels(nn::Precision::Int8)) GTEST_SKIP() << "no AVX512-VNNI kernels on this CPU";
  if (zeroshot::testing::kSanitized) GTEST_SKIP() << "the sanitizers' shadow memory and quarantine change the peak RSS";
  TempDir home;
  const fs::path dir = synthetic_model(home);
  const double f32 = bench(home, dir, "f32")["peak_rss_mb"].get<double>();
  const double at_load = bench(home, dir, "int8")["peak_rss_mb"].get<double>();
  ASSERT_EQ(zeroshot_cli(home, {"quantize", "-q", "--in-place", "-m", dir.string()}).code, 0);
  const io::Json j = bench(home, dir, "int8");
  const double from_file = j["peak_rss_mb"].get<double>();
  std::printf("peak RSS MB: f32 %.1f, int8 quantized at load %.1f, int8 from the file %.1f (after load %.1f)\n", f32,
              at_load, from_file, j["rss_after_load_mb"].get<double>());
  // ~57 MB of f32 layer weights against ~14 MB of int8 ones. Quantizing at load streams the f32 weights layer by
  // layer (each released once quantized), so it peaks about as low; the file must never cost more.
  EXPECT_LT(from_file, f32 - 30);
  EXPECT_LT(at_load, f32 - 30);
  EXPECT_LE(from_file, at_load + 3);
  EXPECT_GE(j["min_cosine_vs_f32"].get<double>(), 0.99);
}

// --precision int4 and `zeroshot quantize --precision int4` (the int4 weights file, docs/quantized-format.md):
// loads from the file give the same embeddings, bit for bit, as quantizing at load; a file made from other weights
// is ignored; a truncated file, a group size we do not read or tensors that disagree with the group size are
// refused with a one-line error naming the file.

TEST(QuantizeInt4, FileGivesTheSameEmbeddingsAsQuantizingAtLoad) {
  TempDir home;
  const fs::path dir = copy_model(home, "clip-tiny-quickgelu", "model");
  const Args embed = {"-f",    "json",   "--threads",       "2", "--image", image_path("chelsea.png"), "--text",
                      "a cat", "--text", "a photo of a dog"};
  const Args int4 = {"embed", "-m", dir.string(), "--precision", "int4"};
  const CliResult at_load = zeroshot_cli(home, int4 + embed);
  ASSERT_EQ(at_load.code, 0) << at_load.err;
  const CliResult f32 = zeroshot_cli(home, Args{"embed", "-m", dir.string()} + embed);
  ASSERT_EQ(f32.code, 0) << f32.err;
  // 4-bit weights: close to f32, not equal (the measured values on real models: docs/quantized-format.md).
  const auto e4 = embeddings(at_load.out), e32 = embeddings(f32.out);
  ASSERT_EQ(e4.size(), 3u);
  EXPECT_NE(e4, e32);
  EXPECT_GE(min_cosine(e4, e32), 0.98);

  const CliResult q = zeroshot_cli(home, {"quantize", "--in-place", "--precision", "int4", "-m", dir.string()});
  ASSERT_EQ(q.code, 0) << q.err;
  const fs::path file = dir / "zeroshot-int4.safetensors";
  EXPECT_EQ(q.out, file.string() + "\n");
  {
    const io::SafeTensorsFile f(file.string());
    EXPECT_EQ(f.metadata().at("format"), "zeroshot-int4");
    EXPECT_EQ(f.metadata().at("group_size"), "32");
    const io::TensorView& w = f.tensors().at("vision_model.encoder.layers.0.mlp.fc1.weight");
    EXPECT_EQ(w.dtype, io::DType::U8);
  }
  const CliResult from_file = zeroshot_cli(home, int4 + embed);
  ASSERT_EQ(from_file.code, 0) << from_file.err;
  EXPECT_EQ(from_file.out, at_load.out);
  const std::string used = "int4 weights read from zeroshot-int4.safetensors";
  EXPECT_NE(from_file.err.find(used), std::string::npos) << from_file.err;
  EXPECT_EQ(at_load.err.find(used), std::string::npos) << at_load.err;
  // An int8 load does not read the int4 file (nor an int4 load an int8 one).
  const CliResult int8 = zeroshot_cli(home, Args{"embed", "-m", dir.string(), "--precision", "int8"} + embed);
  ASSERT_EQ(int8.code, 0) << int8.err;
  EXPECT_EQ(int8.err.find("weights read from"), std::string::npos) << int8.err;
}

TEST(QuantizeInt4, StaleFileIgnoredDamagedOrWrongGroupSizeRefused) {
  TempDir home;
  const fs::path dir = copy_model(home, "clip-tiny-quickgelu", "model");
  const Args embed = {"-f", "json", "--threads", "2", "--image", image_path("chelsea.png"), "--text", "a cat"};
  const Args int4 = {"embed", "-m", dir.string(), "--precision", "int4"};
  const CliResult at_load = zeroshot_cli(home, int4 + embed);
  ASSERT_EQ(at_load.code, 0) << at_load.err;
  const fs::path file = dir / "zeroshot-int4.safetensors";

  // Made from other weights (a stale fingerprint): ignored, quantized at load instead (same output).
  const fs::path other = copy_model(home, "clip-tiny-gelu-f16", "other");
  ASSERT_EQ(
      zeroshot_cli(home, {"quantize", "-q", "--precision", "int4", "-m", other.string(), "-o", file.string()}).code, 0);
  const CliResult stale = zeroshot_cli(home, int4 + embed);
  ASSERT_EQ(stale.code, 0) << stale.err;
  EXPECT_EQ(stale.out, at_load.out);
  EXPECT_EQ(stale.err.find("weights read from"), std::string::npos) << stale.err;

  // A good file, then damaged in three ways.
  ASSERT_EQ(zeroshot_cli(home, {"quantize", "-q", "--precision", "int4", "--in-place", "-m", dir.string()}).code, 0);
  const std::string good = [&] {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  auto refused = [&](const std::string& problem) {
    const CliResult r = zeroshot_cli(home, int4 + embed);
    EXPECT_EQ(r.code, 2) << problem;
    EXPECT_TRUE(r.out.empty()) << r.out;
    const std::string line = line_with(r.err, "zeroshot: " + file.string() + ": ");
    EXPECT_NE(line.find(problem), std::string::npos) << r.err;
  };
  // Truncated.
  std::ofstream(file, std::ios::binary | std::ios::trunc) << good.substr(0, good.size() / 2);
  refused("damaged int4 weights file");
  // A group size we do not read.
  std::ofstream(file, std::ios::binary | std::ios::trunc) << good;
  rewrite_metadata(file, "group_size", "48");
  refused("unsupported int4 group size \"48\"");
  // A group size we read, but not the one the tensors were made with.
  std::ofstream(file, std::ios::binary | std::ios::trunc) << good;
  rewrite_metadata(file, "group_size", "64");
  refused("no valid int4 weight");
  // f32 never opens it.
  EXPECT_EQ(zeroshot_cli(home, Args{"embed", "-m", dir.string()} + embed).code, 0);
}
