// CLAP model against the reference outputs in fixtures/clap/* (README tolerances: audio 2e-4 x max abs, text
// 1e-4 x max abs, logits 1e-3, zero-shot scores 5e-4), the per-stage debug tensors, batch independence, and the
// refusals of bad configs and weight files (made in temp dirs from copies of the fixtures).
// CLAP_TEST_VERBOSE=1 prints each comparison's error as a fraction of its tolerance.
#include "models/clap.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"
#include "support/compare.h"
#include "support/errors.h"
#include "support/temp_model.h"
#include "zeroshot/error.h"

namespace zeroshot::models {
namespace {

namespace fs = std::filesystem;
using io::Json;

std::string clap_dir() { return std::string(ZEROSHOT_FIXTURES) + "/clap"; }
std::string fixture(const std::string& model) { return clap_dir() + "/" + model; }

using zeroshot::testing::batch_composition_error;
using zeroshot::testing::kAudioEmbedRelTol;
using zeroshot::testing::kClapLogitTol;
using zeroshot::testing::kTextEmbedRelTol;
using zeroshot::testing::max_abs;
using zeroshot::testing::max_abs_diff;

std::vector<float> l2_normalized(const std::vector<float>& v, int dim) {
  std::vector<float> out(v.size());
  for (size_t r = 0; r < v.size() / dim; ++r) {
    double s = 0;
    for (int k = 0; k < dim; ++k) s += static_cast<double>(v[r * dim + k]) * v[r * dim + k];
    const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);
    for (int k = 0; k < dim; ++k) out[r * dim + k] = static_cast<float>(v[r * dim + k] * inv);
  }
  return out;
}

// scale * cosine(a_i, b_j), in double: [na, nb].
std::vector<float> scaled_cosines(const std::vector<float>& a, const std::vector<float>& b, int dim, double scale) {
  const auto an = l2_normalized(a, dim), bn = l2_normalized(b, dim);
  const size_t na = a.size() / dim, nb = b.size() / dim;
  std::vector<float> out(na * nb);
  for (size_t i = 0; i < na; ++i)
    for (size_t j = 0; j < nb; ++j) {
      double dot = 0;
      for (int k = 0; k < dim; ++k) dot += static_cast<double>(an[i * dim + k]) * bn[j * dim + k];
      out[i * nb + j] = static_cast<float>(scale * dot);
    }
  return out;
}

struct Tensor {
  std::vector<float> v;
  std::vector<int64_t> shape;
};

// The fixture of one model: inputs (from the shared front-end outputs) and the expected tensors.
struct Fixture {
  std::string dir;
  Json expected;
  std::vector<std::string> files;
  std::vector<char> is_longer;  // per row
  std::vector<float> features;  // rows x [channels, 1001, 64]
  int channels = 1;
  std::map<std::string, Tensor> t;  // expected.safetensors
};

Fixture load_fixture(const std::string& model) {
  Fixture f;
  f.dir = fixture(model);
  f.expected = io::load_json(f.dir + "/expected.json");
  const std::string mode = f.expected.at("truncation").get<std::string>();  // rand_trunc / fusion
  f.channels = mode == "fusion" ? 4 : 1;
  const Json front = io::load_json(clap_dir() + "/frontend/" + mode + ".json");
  std::map<std::string, bool> longer;
  for (const auto& a : front.at("audio")) longer[a.at("file").get<std::string>()] = a.at("is_longer").get<bool>();
  io::SafeTensorsFile feats(clap_dir() + "/frontend/" + mode + ".safetensors");
  for (const auto& a : f.expected.at("audio")) {
    const std::string file = a.at("file").get<std::string>();
    f.files.push_back(file);
    f.is_longer.push_back(longer.at(file) ? 1 : 0);
    const io::TensorView& tv = feats.tensors().at("input_features/" + file);
    const std::vector<float> v = io::to_f32(tv);
    // Fused clips whose 4 channels are identical are stored once.
    const int stored = static_cast<int>(tv.shape.at(0));
    EXPECT_TRUE(stored == 1 || stored == f.channels) << file;
    for (int c = 0; c < f.channels; ++c) {
      const size_t per = v.size() / stored;
      const size_t off = stored == 1 ? 0 : c * per;
      f.features.insert(f.features.end(), v.begin() + off, v.begin() + off + per);
    }
  }
  io::SafeTensorsFile st(f.dir + "/expected.safetensors");
  for (const auto& [name, tv] : st.tensors()) f.t[name] = {io::to_f32(tv), tv.shape};
  return f;
}

std::vector<std::vector<int32_t>> input_ids(const Fixture& f) {
  std::vector<std::vector<int32_t>> ids;
  for (const auto& s : f.expected.at("input_ids")) ids.push_back(s.get<std::vector<int32_t>>());
  return ids;
}

class ClapFixture : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {}
  void SetUp() override {
    fx_ = load_fixture(GetParam());
    cfg_ = ClapConfig::load(fx_.dir + "/config.json");
    store_ = std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(fx_.dir));
    model_ = std::make_unique<ClapModel>(cfg_, store_, 2);
  }
  int n_audio() const { return static_cast<int>(fx_.files.size()); }
  int proj() const { return cfg_.projection_dim; }
  size_t clip_floats() const { return static_cast<size_t>(fx_.channels) * 1001 * 64; }
  const bool* longer() const { return reinterpret_cast<const bool*>(fx_.is_longer.data()); }
  const Tensor& T(const std::string& name) const {
    auto it = fx_.t.find(name);
    if (it == fx_.t.end()) throw std::runtime_error("expected.safetensors has no " + name);
    return it->second;
  }
  // Each row of got vs expected, within rel x max abs of the whole expected tensor.
  void expect_rows(const std::vector<float>& got, const Tensor& want, float rel, const std::string& what,
                   const std::vector<std::string>& names) const {
    ASSERT_EQ(got.size(), want.v.size()) << what;
    const size_t rows = want.shape.at(0), cols = want.v.size() / rows;
    const float tol = rel * max_abs(want.v);
    if (std::getenv("CLAP_TEST_VERBOSE"))
      std::cout << what << ": max err / tolerance = " << max_abs_diff(got.data(), want.v.data(), got.size()) / tol
                << "\n";
    for (size_t r = 0; r < rows; ++r)
      EXPECT_LE(max_abs_diff(&got[r * cols], &want.v[r * cols], cols), tol) << what << " row " << r << " " << names[r];
  }

  Fixture fx_;
  ClapConfig cfg_;
  std::shared_ptr<const io::WeightStore> store_;
  std::unique_ptr<ClapModel> model_;
};

TEST_P(ClapFixture, ConfigAsDocumented) {
  const ClapAudioConfig& a = cfg_.audio;
  if (GetParam() == "clap-tiny-unfused") {
    EXPECT_FALSE(a.enable_fusion);
    EXPECT_EQ(a.patch_embeds_hidden_size, 16);
    EXPECT_EQ(a.depths, (std::vector<int>{2, 1, 2, 2}));
    EXPECT_EQ(a.num_heads, (std::vector<int>{2, 2, 4, 8}));
    EXPECT_EQ(a.hidden_size, 128);
    EXPECT_EQ(cfg_.text.hidden_size, 32);
    EXPECT_EQ(cfg_.text.num_heads, 2);
    EXPECT_EQ(cfg_.text.intermediate_size, 64);
    EXPECT_EQ(cfg_.projection_dim, 32);
  } else {
    EXPECT_TRUE(a.enable_fusion);
    EXPECT_EQ(a.patch_embeds_hidden_size, 24);
    EXPECT_EQ(a.depths, (std::vector<int>{2, 2, 1, 2}));
    EXPECT_EQ(a.num_heads, (std::vector<int>{2, 3, 4, 6}));
    EXPECT_EQ(a.hidden_size, 192);
    EXPECT_EQ(a.aff_block_r, 4);
    EXPECT_EQ(cfg_.text.hidden_size, 48);
    EXPECT_EQ(cfg_.text.num_heads, 3);
    EXPECT_EQ(cfg_.text.intermediate_size, 96);
    EXPECT_EQ(cfg_.projection_dim, 40);
  }
  EXPECT_EQ(a.spec_size, 256);
  EXPECT_EQ(a.window_size, 8);
  EXPECT_EQ(a.num_mel_bins, 64);
  EXPECT_EQ(cfg_.text.num_layers, 2);
  EXPECT_EQ(cfg_.text.max_positions, 514);
  EXPECT_EQ(cfg_.text.vocab_size, 50265);
  EXPECT_FLOAT_EQ(cfg_.text.layer_norm_eps, 1e-12f);
  EXPECT_EQ(cfg_.projection_act, nn::Act::Relu);
  // logit scales: expected.json stores exp() of them.
  EXPECT_NEAR(std::exp(model_->logit_scale_a()), fx_.expected.at("logit_scale_a").get<double>(), 1e-3);
  EXPECT_NEAR(std::exp(model_->logit_scale_t()), fx_.expected.at("logit_scale_t").get<double>(), 1e-3);
}

TEST_P(ClapFixture, AudioEmbedsPooledAndFeatures) {
  const int n = n_audio();
  std::vector<float> embeds(static_cast<size_t>(n) * proj()), pooled(static_cast<size_t>(n) * cfg_.audio.hidden_size);
  model_->encode_audio(fx_.features.data(), n, fx_.channels, longer(), embeds.data(), pooled.data());
  expect_rows(pooled, T("audio_pooled"), kAudioEmbedRelTol, "audio_pooled", fx_.files);
  expect_rows(embeds, T("audio_embeds"), kAudioEmbedRelTol, "audio_embeds", fx_.files);
  expect_rows(l2_normalized(embeds, proj()), T("audio_features"), kAudioEmbedRelTol, "audio_features", fx_.files);
}

TEST_P(ClapFixture, AudioWithoutFusion) {
  if (!cfg_.audio.enable_fusion) GTEST_SKIP() << "unfused model: is_longer is not read";
  std::vector<std::string> rows;
  for (const auto& s : fx_.expected.at("audio_is_longer_false_rows")) rows.push_back(s.get<std::string>());
  std::vector<float> feats;
  for (const auto& name : rows) {
    const size_t i = std::find(fx_.files.begin(), fx_.files.end(), name) - fx_.files.begin();
    ASSERT_LT(i, fx_.files.size()) << name;
    feats.insert(feats.end(), fx_.features.begin() + i * clip_floats(), fx_.features.begin() + (i + 1) * clip_floats());
  }
  const int n = static_cast<int>(rows.size());
  std::vector<float> embeds(static_cast<size_t>(n) * proj());
  const std::vector<char> no(static_cast<size_t>(n), 0);
  model_->encode_audio(feats.data(), n, fx_.channels, reinterpret_cast<const bool*>(no.data()), embeds.data());
  expect_rows(embeds, T("audio_embeds_is_longer_false"), kAudioEmbedRelTol, "audio_embeds_is_longer_false", rows);
  // null is_longer means all false
  std::vector<float> again(embeds.size());
  model_->encode_audio(feats.data(), n, fx_.channels, nullptr, again.data());
  EXPECT_EQ(again, embeds);
  // and fusion does change the result (the test above is not vacuous)
  std::vector<float> fused(embeds.size());
  const std::vector<char> yes(static_cast<size_t>(n), 1);
  model_->encode_audio(feats.data(), n, fx_.channels, reinterpret_cast<const bool*>(yes.data()), fused.data());
  EXPECT_GT(max_abs_diff(fused.data(), embeds.data(), embeds.size()), 1e-2f * max_abs(embeds));
}

TEST_P(ClapFixture, TextEmbedsPooledAndFeatures) {
  const auto ids = input_ids(fx_);
  const int n = static_cast<int>(ids.size());
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) names.push_back("text " + std::to_string(i));
  std::vector<float> embeds(static_cast<size_t>(n) * proj()), pooled(static_cast<size_t>(n) * cfg_.text.hidden_size);
  model_->encode_texts(ids, embeds.data(), pooled.data());
  expect_rows(pooled, T("text_pooled"), kTextEmbedRelTol, "text_pooled", names);
  expect_rows(embeds, T("text_embeds"), kTextEmbedRelTol, "text_embeds", names);
  expect_rows(l2_normalized(embeds, proj()), T("text_features"), kTextEmbedRelTol, "text_features", names);
}

// bf16 / int8 GEMMs in the encoder layers: embeddings close to the reference (the f32 ones), and the rest of the
// model unchanged (the precision is really applied: the results differ from f32).
TEST_P(ClapFixture, LowerPrecisionsStayCloseToTheReference) {
  const auto ids = input_ids(fx_);
  const int n = n_audio(), nt = static_cast<int>(ids.size());
  auto min_cos = [&](const std::vector<float>& a, const Tensor& want) {
    double worst = 1;
    for (size_t r = 0; r * proj() < a.size(); ++r) {
      double ab = 0, aa = 0, bb = 0;
      for (int i = 0; i < proj(); ++i) {
        const double x = a[r * proj() + i], y = want.v[r * proj() + i];
        ab += x * y, aa += x * x, bb += y * y;
      }
      worst = std::min(worst, ab / std::sqrt(aa * bb));
    }
    return worst;
  };
  for (const nn::Precision p : {nn::Precision::BF16, nn::Precision::Int8}) {
    const ClapModel m(cfg_, store_, 2, p);
    EXPECT_EQ(m.precision(), p);
    std::vector<float> audio(static_cast<size_t>(n) * proj()), text(static_cast<size_t>(nt) * proj());
    m.encode_audio(fx_.features.data(), n, fx_.channels, longer(), audio.data());
    m.encode_texts(ids, text.data());
    const double ca = min_cos(audio, T("audio_embeds")), ct = min_cos(text, T("text_embeds"));
    if (std::getenv("CLAP_TEST_VERBOSE"))
      std::cout << nn::precision_name(p) << ": min cosine audio " << ca << ", text " << ct << "\n";
    EXPECT_GT(ca, 0.999) << nn::precision_name(p);
    EXPECT_GT(ct, 0.999) << nn::precision_name(p);
    EXPECT_GT(max_abs_diff(audio.data(), T("audio_embeds").v.data(), audio.size()), 1e-6f) << nn::precision_name(p);
  }
}

TEST_P(ClapFixture, Logits) {
  const auto ids = input_ids(fx_);
  const int na = n_audio(), nt = static_cast<int>(ids.size());
  std::vector<float> audio(static_cast<size_t>(na) * proj()), text(static_cast<size_t>(nt) * proj());
  model_->encode_audio(fx_.features.data(), na, fx_.channels, longer(), audio.data());
  model_->encode_texts(ids, text.data());
  const auto per_audio = scaled_cosines(audio, text, proj(), std::exp(static_cast<double>(model_->logit_scale_a())));
  const auto per_text = scaled_cosines(text, audio, proj(), std::exp(static_cast<double>(model_->logit_scale_t())));
  ASSERT_EQ(T("logits_per_audio").shape, (std::vector<int64_t>{na, nt}));
  ASSERT_EQ(T("logits_per_text").shape, (std::vector<int64_t>{nt, na}));
  EXPECT_LE(max_abs_diff(per_audio.data(), T("logits_per_audio").v.data(), per_audio.size()), kClapLogitTol);
  EXPECT_LE(max_abs_diff(per_text.data(), T("logits_per_text").v.data(), per_text.size()), kClapLogitTol);
}

// The pipeline's zero-shot scores: softmax over labels of exp(logit_scale_a) * cos(audio, text of each label),
// from this model's embeddings of the fixture's features and label ids (README: 5e-4, same order up to ties).
TEST_P(ClapFixture, ZeroShotScores) {
  const int na = n_audio();
  std::vector<float> audio(static_cast<size_t>(na) * proj());
  model_->encode_audio(fx_.features.data(), na, fx_.channels, longer(), audio.data());
  std::map<std::string, std::vector<float>> text;  // per template: embeddings of the label ids
  for (const auto& [tmpl, ids] : fx_.expected.at("zero_shot_input_ids").items()) {
    const auto v = ids.get<std::vector<std::vector<int32_t>>>();
    text[tmpl].resize(v.size() * proj());
    model_->encode_texts(v, text[tmpl].data());
  }
  int cases = 0;
  for (const auto& zc : fx_.expected.at("zero_shot")) {
    const std::string file = zc.at("audio").get<std::string>(), tmpl = zc.at("hypothesis_template").get<std::string>();
    const size_t i = std::find(fx_.files.begin(), fx_.files.end(), file) - fx_.files.begin();
    ASSERT_LT(i, fx_.files.size()) << file;
    const auto labels = zc.at("candidate_labels").get<std::vector<std::string>>();
    const std::vector<float>& t = text.at(tmpl);
    ASSERT_EQ(t.size(), labels.size() * proj());
    const std::vector<float> a(audio.begin() + i * proj(), audio.begin() + (i + 1) * proj());
    const auto logits = scaled_cosines(a, t, proj(), std::exp(static_cast<double>(model_->logit_scale_a())));
    double mx = -1e300, sum = 0;
    for (float l : logits) mx = std::max(mx, static_cast<double>(l));
    std::map<std::string, double> score;
    for (size_t k = 0; k < labels.size(); ++k) sum += std::exp(logits[k] - mx);
    for (size_t k = 0; k < labels.size(); ++k) score[labels[k]] = std::exp(logits[k] - mx) / sum;
    double prev = 2.0;
    for (const auto& r : zc.at("result")) {
      const double want = r.at("score").get<double>(), got = score.at(r.at("label").get<std::string>());
      EXPECT_NEAR(got, want, 5e-4) << file << " " << tmpl << " " << r.at("label");
      EXPECT_LE(got, prev + 5e-4) << file << ": order";
      prev = got;
    }
    ++cases;
  }
  EXPECT_EQ(cases, 2 * na);
}

TEST_P(ClapFixture, DebugIntermediates) {
  // The one clip with debug tensors.
  std::string file;
  for (const auto& [name, t] : fx_.t)
    if (name.rfind("debug/", 0) == 0 && name.find("/mel2img") != std::string::npos)
      file = name.substr(6, name.size() - 6 - 8);
  ASSERT_FALSE(file.empty());
  const size_t i = std::find(fx_.files.begin(), fx_.files.end(), file) - fx_.files.begin();
  ASSERT_LT(i, fx_.files.size());
  std::vector<std::string> seen;
  model_->debug_audio(
      fx_.features.data() + i * clip_floats(), fx_.channels, fx_.is_longer[i],
      [&](const std::string& name, const float* d, int64_t rows, int64_t cols) {
        seen.push_back(name);
        const Tensor& want = T("debug/" + file + "/" + name);
        ASSERT_EQ(static_cast<size_t>(rows * cols), want.v.size()) << name;
        if (std::getenv("CLAP_TEST_VERBOSE"))
          std::cout << name << ": max err / tolerance = "
                    << max_abs_diff(d, want.v.data(), want.v.size()) / (kAudioEmbedRelTol * max_abs(want.v)) << "\n";
        EXPECT_LE(max_abs_diff(d, want.v.data(), want.v.size()), kAudioEmbedRelTol * max_abs(want.v))
            << file << " " << name;
      });
  EXPECT_EQ(seen, (std::vector<std::string>{"mel2img", "patch_embeds", "stage0", "stage1", "stage2", "stage3",
                                            "final_norm"}));

  const std::string text0 = fx_.expected.at("debug_text0").get<std::string>();
  const auto& texts = fx_.expected.at("texts");
  size_t ti = 0;
  while (ti < texts.size() && texts[ti].get<std::string>() != text0) ++ti;
  ASSERT_LT(ti, texts.size());
  seen.clear();
  model_->debug_text(input_ids(fx_)[ti], [&](const std::string& name, const float* d, int64_t rows, int64_t cols) {
    seen.push_back(name);
    const Tensor& want = T("debug/text0/" + name);
    ASSERT_EQ(static_cast<size_t>(rows * cols), want.v.size()) << name;
    if (std::getenv("CLAP_TEST_VERBOSE"))
      std::cout << name << ": max err / tolerance = "
                << max_abs_diff(d, want.v.data(), want.v.size()) / (kTextEmbedRelTol * max_abs(want.v)) << "\n";
    EXPECT_LE(max_abs_diff(d, want.v.data(), want.v.size()), kTextEmbedRelTol * max_abs(want.v)) << "text0 " << name;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"embeddings", "last_hidden_state"}));
}

TEST_P(ClapFixture, AudioBatchCompositionIndependence) {
  const int n = n_audio();
  std::vector<float> batch(static_cast<size_t>(n) * proj());
  model_->encode_audio(fx_.features.data(), n, fx_.channels, longer(), batch.data());
  float worst = 0;
  // Each alone.
  for (int i = 0; i < n; ++i) {
    std::vector<float> one(proj());
    model_->encode_audio(fx_.features.data() + i * clip_floats(), 1, fx_.channels, longer() + i, one.data());
    worst = std::max(worst, max_abs_diff(one.data(), &batch[i * proj()], proj()));
  }
  // Reversed, and (fused) with the is_longer flags of some neighbours flipped: a clip's result depends only on its
  // own flag.
  std::vector<float> rev;
  std::vector<char> flags;
  for (int i = n - 1; i >= 0; --i) {
    rev.insert(rev.end(), fx_.features.begin() + i * clip_floats(), fx_.features.begin() + (i + 1) * clip_floats());
    flags.push_back(fx_.is_longer[i]);
  }
  const int extra = 3;
  for (int k = 0; k < extra; ++k) {  // duplicates with the flag off
    rev.insert(rev.end(), fx_.features.begin() + k * clip_floats(), fx_.features.begin() + (k + 1) * clip_floats());
    flags.push_back(0);
  }
  std::vector<float> out(static_cast<size_t>(n + extra) * proj());
  model_->encode_audio(rev.data(), n + extra, fx_.channels, reinterpret_cast<const bool*>(flags.data()), out.data());
  for (int i = 0; i < n; ++i)
    worst = std::max(worst, max_abs_diff(&out[(n - 1 - i) * proj()], &batch[i * proj()], proj()));
  // GEMM rounding only (OpenBLAS rounds differently for different row counts; a leak would be far larger).
  EXPECT_LE(worst, 1e-5f * max_abs(batch));
  if (!cfg_.audio.enable_fusion) {
    for (int k = 0; k < extra; ++k)
      EXPECT_LE(max_abs_diff(&out[(n + k) * proj()], &batch[k * proj()], proj()), 1e-5f * max_abs(batch));
  }
}

TEST_P(ClapFixture, TextBatchCompositionIndependence) {
  std::vector<float> together;
  const float worst = batch_composition_error(
      [&](const std::vector<std::vector<int32_t>>& ids, float* out) { model_->encode_texts(ids, out); }, input_ids(fx_),
      proj(), &together);
  EXPECT_LE(worst, 1e-5f * max_abs(together));
}

TEST_P(ClapFixture, ThreadsAndConcurrency) {
  const int n = 3;
  std::vector<float> ref_a(static_cast<size_t>(n) * proj());
  model_->encode_audio(fx_.features.data(), n, fx_.channels, longer(), ref_a.data());
  const auto ids = input_ids(fx_);
  std::vector<float> ref_t(ids.size() * proj());
  model_->encode_texts(ids, ref_t.data());

  // One thread gives the same numbers (up to GEMM rounding).
  ClapModel single(cfg_, store_, 1);
  std::vector<float> a(ref_a.size()), t(ref_t.size());
  single.encode_audio(fx_.features.data(), n, fx_.channels, longer(), a.data());
  single.encode_texts(ids, t.data());
  EXPECT_LE(max_abs_diff(a.data(), ref_a.data(), a.size()), 1e-5f * max_abs(ref_a));
  EXPECT_LE(max_abs_diff(t.data(), ref_t.data(), t.size()), 1e-5f * max_abs(ref_t));

  // Concurrent callers on one model get what a lone caller gets.
  std::atomic<int> bad{0};
  std::vector<std::thread> callers;
  callers.reserve(4);
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&, c] {
      for (int rep = 0; rep < 2; ++rep) {
        if ((c + rep) % 2 == 0) {
          std::vector<float> o(ref_a.size());
          model_->encode_audio(fx_.features.data(), n, fx_.channels, longer(), o.data());
          if (o != ref_a) bad++;
        } else {
          std::vector<float> o(ref_t.size());
          model_->encode_texts(ids, o.data());
          if (o != ref_t) bad++;
        }
      }
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(bad.load(), 0);
}

// RoBERTa positions skip pad tokens: a <pad> inside a sequence takes position pad_token_id and does not advance
// the count, so the tokens after it see the same positions as without it (their values still differ, since the
// pad token is attended to).
TEST_P(ClapFixture, RefusesBadTokenSequences) {
  std::vector<float> out(4 * proj());
  auto message = [&](const std::vector<std::vector<int32_t>>& ids) {
    try {
      model_->encode_texts(ids, out.data());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::vector<int32_t> ok = {0, 16319, 2};
  EXPECT_EQ(message({ok, {}}), "input_ids[1]: empty token sequence");
  EXPECT_NE(message({{0, 50265, 2}}).find("input_ids[0]: token id 50265 is outside the vocabulary"), std::string::npos);
  EXPECT_NE(message({{0, -1, 2}}).find("token id -1"), std::string::npos);
  // 512 real tokens fit (positions 2..513), 513 do not (HF fails there too); pads do not use positions.
  std::vector<int32_t> longest(512, 16319);
  EXPECT_EQ(message({longest}), "no error");
  longest.push_back(16319);
  EXPECT_NE(message({ok, longest}).find("input_ids[1]: 513 tokens"), std::string::npos) << message({ok, longest});
  std::vector<int32_t> with_pads(512, 16319);
  with_pads.insert(with_pads.begin() + 1, 1);
  EXPECT_EQ(message({with_pads}), "no error");
  EXPECT_NE(message({std::vector<int32_t>(515, 1)}).find("515 tokens, more than max_position_embeddings 514"),
            std::string::npos);
  // too_long_text of the fixture: refused, not crashed.
  const auto too_long = fx_.expected.at("too_long_text").at("input_ids").get<std::vector<int32_t>>();
  EXPECT_NE(message({too_long}).find("input_ids[0]: "), std::string::npos);
  model_->encode_texts({}, nullptr);  // nothing to do
}

TEST_P(ClapFixture, RefusesBadAudioArguments) {
  std::vector<float> out(proj());
  auto message = [&](auto&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const int wrong = fx_.channels == 4 ? 1 : 4;
  EXPECT_NE(message([&] {
              model_->encode_audio(fx_.features.data(), 1, wrong, nullptr, out.data());
            }).find("input_features: "),
            std::string::npos);
  EXPECT_NE(message([&] {
              model_->encode_audio(fx_.features.data(), -1, fx_.channels, nullptr, out.data());
            }).find("negative batch"),
            std::string::npos);
  EXPECT_EQ(message([&] { model_->encode_audio(nullptr, 0, fx_.channels, nullptr, nullptr); }), "no error");
  EXPECT_NE(message([&] { model_->encode_audio(nullptr, 1, fx_.channels, nullptr, out.data()); }), "no error");
}

TEST_P(ClapFixture, NonFiniteInputsDoNotCrash) {
  // Not something the feature extractor produces; it must still run (NaN out), not crash or trip the sanitizers.
  std::vector<float> feats(fx_.features.begin(), fx_.features.begin() + clip_floats());
  feats[123] = std::nanf("");
  feats[4567] = INFINITY;
  feats[clip_floats() - 1] = -INFINITY;
  std::vector<float> out(proj());
  const bool yes = true;
  model_->encode_audio(feats.data(), 1, fx_.channels, &yes, out.data());
  std::fill(feats.begin(), feats.end(), std::nanf(""));
  model_->encode_audio(feats.data(), 1, fx_.channels, &yes, out.data());
  SUCCEED();
}

TEST_P(ClapFixture, InputFramesRange) {
  ClapConfig c = cfg_;
  c.audio.input_frames = 1025;  // more than spec_size * freq_ratio: HF refuses too
  try {
    ClapModel m(c, store_, 1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "ClapModel: audio input_frames 1025 outside [1, 1024]");
  }
  // 1024 frames: no time resizing (HF skips the interpolation), i.e. the fold of the normalized input as is.
  c.audio.input_frames = 1024;
  ClapModel m(c, store_, 1);
  std::vector<float> feats(static_cast<size_t>(fx_.channels) * 1024 * 64);
  for (size_t i = 0; i < feats.size(); ++i) feats[i] = -50.0f + 30.0f * std::sin(0.001f * static_cast<float>(i));
  std::vector<float> img;
  m.debug_audio(feats.data(), fx_.channels, false,
                [&](const std::string& name, const float* d, int64_t rows, int64_t cols) {
                  if (name == "mel2img") img.assign(d, d + rows * cols);
                });
  ASSERT_EQ(img.size(), static_cast<size_t>(fx_.channels) * 256 * 256);
  // BatchNorm is per mel bin and affine: the image rows of one mel bin m (rows 64 k + m) are an affine function of
  // the input frames 256 k + j of that bin. Check it is exactly the fold (no resampling) via two frames' ratio.
  for (int k = 0; k < 4; ++k)
    for (int m = 0; m < 64; m += 21) {
      const float* row = &img[(static_cast<size_t>(64) * k + m) * 256];
      const float x0 = feats[(static_cast<size_t>(256) * k + 0) * 64 + m],
                  x1 = feats[(static_cast<size_t>(256) * k + 1) * 64 + m],
                  x2 = feats[(static_cast<size_t>(256) * k + 2) * 64 + m];
      // (y2 - y0) / (y1 - y0) == (x2 - x0) / (x1 - x0) for an affine map
      EXPECT_NEAR((row[2] - row[0]) / (row[1] - row[0]), (x2 - x0) / (x1 - x0), 1e-3) << k << " " << m;
    }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ClapFixture, ::testing::Values("clap-tiny-unfused", "clap-tiny-fused"),
                         [](const auto& info) {
                           return info.param == "clap-tiny-unfused" ? "UnfusedF32" : "FusedF16";
                         });

// ------------------------------------------------------------------------------------------- refusals

// A writable copy of a fixture model (tests/support), and the loader's verdict on it.
struct TempModel : zeroshot::testing::TempModel {
  explicit TempModel(const std::string& model = "clap-tiny-unfused") : zeroshot::testing::TempModel(fixture(model)) {}
  // Loads config + weights and builds the model: the error message, or "(no error)" (support/errors.h).
  std::string build() const {
    return zeroshot::testing::error_of([&] {
      const ClapConfig cfg = ClapConfig::load(config_path());
      ClapModel m(cfg, std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir())), 1);
    });
  }
  // Drops a tensor.
  void erase(const std::string& name) { tensors().erase(name); }
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(ClapRefusals, UnmodifiedCopiesLoad) {
  TempModel t;
  EXPECT_EQ(t.build(), "(no error)");
  TempModel f("clap-tiny-fused");
  EXPECT_EQ(f.build(), "(no error)");
}

TEST(ClapRefusals, IntegerBuffersAreOptional) {
  // Full-size checkpoints omit them; the engine computes its index buffers itself.
  TempModel t("clap-tiny-fused");
  std::vector<std::string> ints;
  for (const auto& [name, tensor] : t.tensors())
    if (tensor.dtype == io::DType::I64) ints.push_back(name);
  EXPECT_GT(ints.size(), 10u);
  for (const auto& k : ints) t.erase(k);
  t.write_weights();
  EXPECT_EQ(t.build(), "(no error)");
}

TEST(ClapRefusals, WrongSizesInConfig) {
  struct Case {
    const char* tower;
    const char* key;
    Json value;
    const char* expect;  // a part of the message
  };
  const Case cases[] = {
      {"audio_config", "patch_embeds_hidden_size", 32,
       "audio_config.hidden_size 128 does not match patch_embeds_hidden_size * 2^(stages - 1) = 256"},
      {"audio_config", "hidden_size", 256, "audio_config.hidden_size 256 does not match"},
      {"text_config", "hidden_size", 64,
       "tensor text_model.embeddings.word_embeddings.weight has shape [50265, 32], expected [50265, 64]"},
      {"text_config", "intermediate_size", 128,
       "tensor text_model.encoder.layer.0.intermediate.dense.weight has shape [64, 32], expected [128, 32]"},
      {"text_config", "num_hidden_layers", 3, "missing tensor text_model.encoder.layer.2.attention.self.query.weight"},
      {"text_config", "num_hidden_layers", 1, "unexpected tensor text_model.encoder.layer.1."},
      {"audio_config", "depths", Json::array({2, 2, 2, 2}),
       "missing tensor audio_model.audio_encoder.layers.1.blocks.1."},
      {"audio_config", "num_attention_heads", Json::array({2, 2, 4, 4}),
       "tensor audio_model.audio_encoder.layers.3.blocks.0.attention.self.relative_position_bias_table has shape [225, "
       "8], expected [225, 4]"},
      {"audio_config", "num_attention_heads", Json::array({3, 2, 4, 8}),
       "stage 0 width 16 is not divisible by num_attention_heads 3"},
      {"audio_config", "num_attention_heads", Json::array({2, 2, 4}), "num_attention_heads has 3 entries, depths 4"},
      {"audio_config", "window_size", 16, "is not a multiple of window_size * 2^(stages - 1) = 128"},
      {"audio_config", "spec_size", 250, "spec_size 250 is not a multiple of num_mel_bins 64"},
      {"audio_config", "patch_size", 0, "audio_config.patch_size must be a positive integer"},
      {"audio_config", "patch_stride", Json::array({4, 2}), "audio_config.patch_stride [4,2] is not supported"},
      {"audio_config", "patch_size", 8, "audio_config.patch_stride 4 differs from patch_size 8"},
      {"audio_config", "enable_fusion", true, "missing tensor audio_model.audio_encoder.patch_embed.mel_conv2d.weight"},
      {"audio_config", "enable_fusion", "yes", "audio_config.enable_fusion must be true or false"},
      {"audio_config", "hidden_act", "swishy", "audio_config.hidden_act \"swishy\" is not supported"},
      {"audio_config", "depths", Json::array({}), "audio_config.depths must be a list of 1 to 8 positive integers"},
      {"audio_config", "depths", Json::array({2, -1, 2, 2}), "audio_config.depths must be a list of positive integers"},
      {"audio_config", "mlp_ratio", 2.0,
       "tensor audio_model.audio_encoder.layers.0.blocks.0.intermediate.dense.weight has shape [64, 16], expected [32, "
       "16]"},
      {"audio_config", "num_mel_bins", 16, "final grid 8 cannot be grouped by spec_size / num_mel_bins = 16"},
      {"audio_config", "num_mel_bins", 32,
       "tensor audio_model.audio_encoder.batch_norm.weight has shape [64], expected [32]"},
      {"text_config", "num_attention_heads", 5, "text_config.hidden_size 32 is not divisible by num_attention_heads 5"},
      {"text_config", "vocab_size", 1 << 30, "text_config.vocab_size must be a positive integer"},
      {"text_config", "layer_norm_eps", -1, "text_config.layer_norm_eps must be a non-negative number, got -1"},
      {"text_config", "position_embedding_type", "relative_key",
       "position_embedding_type \"relative_key\" is not supported"},
      {"text_config", "max_position_embeddings", 512,
       "tensor text_model.embeddings.position_embeddings.weight has shape [514, 32], expected [512, 32]"},
  };
  for (const auto& c : cases) {
    TempModel t;
    t.config()[c.tower][c.key] = c.value;
    t.write_config();
    const std::string m = t.build();
    EXPECT_TRUE(contains(m, c.expect)) << c.tower << "." << c.key << ": " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos);
    const bool from_config = contains(m, t.config_path() + ": "), from_weights = contains(m, t.weights_path() + ": ");
    EXPECT_TRUE(from_config || from_weights) << m;
  }
  TempModel t;
  t.config()["projection_dim"] = 16;
  t.write_config();
  EXPECT_TRUE(contains(
      t.build(), t.weights_path() + ": tensor audio_projection.linear1.weight has shape [32, 128], expected [16, 128]"))
      << t.build();
  t.config()["projection_dim"] = 32;
  t.config()["projection_hidden_act"] = "tanhh";
  t.write_config();
  EXPECT_TRUE(contains(t.build(), t.config_path() + ": projection_hidden_act \"tanhh\" is not supported")) << t.build();
  t.config()["projection_hidden_act"] = "relu";
  t.config()["audio_config"] = "nope";
  t.write_config();
  EXPECT_TRUE(contains(t.build(), t.config_path() + ": audio_config is not an object"));
}

TEST(ClapRefusals, FusedGeometry) {
  TempModel t("clap-tiny-fused");
  t.config()["audio_config"]["fusion_type"] = "channel_map";
  t.write_config();
  EXPECT_TRUE(contains(t.build(), t.config_path() + ": audio_config.fusion_type \"channel_map\" is not supported"))
      << t.build();
  t.config()["audio_config"]["fusion_type"] = "aff_2d";  // any other value: the AFF block, as in HF
  t.write_config();
  EXPECT_EQ(t.build(), "(no error)");
  t.config()["audio_config"]["aff_block_r"] = 8;
  t.write_config();
  EXPECT_TRUE(contains(t.build(),
                       "tensor audio_model.audio_encoder.patch_embed.fusion_model.local_att.0.weight has shape [6, 24, "
                       "1, 1], expected [3, 24, 1, 1]"))
      << t.build();
  t.config()["audio_config"]["aff_block_r"] = 48;
  t.write_config();
  EXPECT_TRUE(contains(t.build(), "aff_block_r 48 leaves no channels")) << t.build();
}

TEST(ClapRefusals, UnknownModelType) {
  TempModel t;
  t.config()["model_type"] = "clip";
  t.write_config();
  const std::string m = t.build();
  EXPECT_EQ(m, t.config_path() + ": model_type \"clip\" is not supported (expected \"clap\")");
  t.config().erase("model_type");
  t.write_config();
  EXPECT_EQ(t.build(), t.config_path() + ": no model_type (expected \"clap\")");
}

TEST(ClapRefusals, MissingTensor) {
  TempModel t;
  t.erase("audio_model.audio_encoder.layers.0.blocks.1.attention.self.relative_position_bias_table");
  t.write_weights();
  EXPECT_EQ(
      t.build(),
      t.weights_path() +
          ": missing tensor audio_model.audio_encoder.layers.0.blocks.1.attention.self.relative_position_bias_table");
  TempModel b;
  b.erase("audio_model.audio_encoder.batch_norm.running_var");
  b.write_weights();
  EXPECT_EQ(b.build(), b.weights_path() + ": missing tensor audio_model.audio_encoder.batch_norm.running_var");
  TempModel s;
  s.erase("logit_scale_t");
  s.write_weights();
  EXPECT_EQ(s.build(), s.weights_path() + ": missing tensor logit_scale_t");
}

TEST(ClapRefusals, UnexpectedTensor) {
  TempModel t;
  t.tensors()["audio_model.audio_encoder.head.bias"] = {io::DType::F32, {16}, std::vector<uint8_t>(16 * 4, 0)};
  t.write_weights();
  EXPECT_EQ(
      t.build(),
      t.weights_path() +
          ": unexpected tensor audio_model.audio_encoder.head.bias (not part of a CLAP model with this config.json)");
  // Fusion weights in an unfused config are unexpected too.
  TempModel f("clap-tiny-fused");
  f.config()["audio_config"]["enable_fusion"] = false;
  f.write_config();
  EXPECT_TRUE(contains(f.build(), f.weights_path() + ": unexpected tensor audio_model.audio_encoder.patch_embed."))
      << f.build();
}

TEST(ClapRefusals, WrongDtypeAndScalarShape) {
  TempModel t;
  t.tensors().at("text_projection.linear2.bias").dtype = io::DType::I32;  // same byte size as F32
  t.write_weights();
  EXPECT_TRUE(contains(t.build(), t.weights_path() + ": tensor text_projection.linear2.bias has dtype I32"))
      << t.build();
  TempModel s;
  s.tensors().at("logit_scale_a").shape = {};
  s.write_weights();
  EXPECT_EQ(s.build(), "(no error)");  // [] (HF) and [1] both accepted
  s.tensors()["logit_scale_a"] = {io::DType::F32, {2}, std::vector<uint8_t>(8, 0)};
  s.write_weights();
  EXPECT_TRUE(contains(s.build(), s.weights_path() + ": tensor logit_scale_a has F32 [2], expected a float scalar"))
      << s.build();
}

TEST(ClapRefusals, TruncatedWeights) {
  TempModel t;
  const auto full = fs::file_size(t.weights_path());
  t.truncate_weights(static_cast<size_t>(full / 2));
  std::string m = t.build();
  EXPECT_TRUE(contains(m, t.weights_path() + ": ")) << m;
  EXPECT_TRUE(contains(m, "truncated")) << m;
  t.truncate_weights(100);
  m = t.build();
  EXPECT_TRUE(contains(m, t.weights_path() + ": ")) << m;
  t.truncate_weights(5);
  EXPECT_TRUE(contains(t.build(), t.weights_path() + ": ")) << t.build();
  t.truncate_weights(0);
  EXPECT_TRUE(contains(t.build(), t.weights_path() + ": ")) << t.build();
}

TEST(ClapConfigDefaults, MissingKeysTakeTransformersDefaults) {
  TempModel t;
  t.config() = Json{{"model_type", "clap"}};
  t.write_config();
  const ClapConfig c = ClapConfig::load(t.config_path());
  // transformers' ClapAudioConfig / ClapTextConfig / ClapConfig defaults (laion/clap-htsat-fused geometry).
  EXPECT_EQ(c.audio.window_size, 8);
  EXPECT_EQ(c.audio.num_mel_bins, 64);
  EXPECT_EQ(c.audio.spec_size, 256);
  EXPECT_EQ(c.audio.patch_size, 4);
  EXPECT_EQ(c.audio.hidden_size, 768);
  EXPECT_EQ(c.audio.patch_embeds_hidden_size, 96);
  EXPECT_EQ(c.audio.depths, (std::vector<int>{2, 2, 6, 2}));
  EXPECT_EQ(c.audio.num_heads, (std::vector<int>{4, 8, 16, 32}));
  EXPECT_FALSE(c.audio.enable_fusion);
  EXPECT_EQ(c.audio.aff_block_r, 4);
  EXPECT_EQ(c.audio.act, nn::Act::Gelu);
  EXPECT_FLOAT_EQ(c.audio.layer_norm_eps, 1e-5f);
  EXPECT_EQ(c.text.vocab_size, 50265);
  EXPECT_EQ(c.text.hidden_size, 768);
  EXPECT_EQ(c.text.num_layers, 12);
  EXPECT_EQ(c.text.num_heads, 12);
  EXPECT_EQ(c.text.intermediate_size, 3072);
  EXPECT_EQ(c.text.max_positions, 514);
  EXPECT_EQ(c.text.type_vocab_size, 1);
  EXPECT_EQ(c.text.pad_token_id, 1);
  EXPECT_FLOAT_EQ(c.text.layer_norm_eps, 1e-12f);
  EXPECT_EQ(c.text.act, nn::Act::Gelu);
  EXPECT_EQ(c.projection_dim, 512);
  EXPECT_EQ(c.projection_act, nn::Act::Relu);

  // The top-level projection settings win over the towers' own.
  t.config() = Json{{"model_type", "clap"},
                    {"projection_dim", 64},
                    {"text_config", {{"projection_dim", 99}, {"hidden_act", "gelu_new"}}},
                    {"audio_config", {{"projection_dim", 77}, {"patch_stride", 4}}}};
  t.write_config();
  const ClapConfig d = ClapConfig::load(t.config_path());
  EXPECT_EQ(d.projection_dim, 64);
  EXPECT_EQ(d.text.act, nn::Act::GeluTanh);
}

// Timing on the fixtures and, when CLAP_BENCH_DIR names a full-size checkpoint (make_random_checkpoint.py), on it
// (informational; run with --gtest_also_run_disabled_tests).
TEST(ClapTiming, DISABLED_Speed) {
  std::vector<std::string> dirs = {fixture("clap-tiny-unfused"), fixture("clap-tiny-fused")};
  for (const char* env : {"CLAP_BENCH_DIR", "CLAP_BENCH_DIR2"})
    if (const char* d = std::getenv(env)) dirs.emplace_back(d);
  const Fixture fx = load_fixture("clap-tiny-fused");
  const auto ids = input_ids(fx);
  for (const auto& dir : dirs) {
    const ClapConfig cfg = ClapConfig::load(dir + "/config.json");
    ClapModel m(cfg, std::make_shared<const io::WeightStore>(io::WeightStore::open_dir(dir)), 2);
    const int channels = cfg.audio.enable_fusion ? 4 : 1;
    std::vector<float> feats(4 * static_cast<size_t>(channels) * 1001 * 64);
    for (int i = 0; i < 4; ++i)
      for (int c = 0; c < channels; ++c)
        std::copy(fx.features.begin(), fx.features.begin() + 1001 * 64,
                  feats.begin() + (static_cast<size_t>(i) * channels + c) * 1001 * 64);
    const bool longer[4] = {true, true, true, true};
    std::vector<float> out(64 * static_cast<size_t>(cfg.projection_dim));
    // Best wall time and the process CPU time of that run (the CPU time is what a busy shared machine does not
    // inflate much: wall ~ CPU / 2 on 2 idle cores).
    auto time = [](int reps, auto&& fn) {
      double best = 1e18, cpu = 0;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        const std::clock_t c0 = std::clock();
        fn();
        const double c = 1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
        const double w = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (w < best) best = w, cpu = c;
      }
      return std::make_pair(best, cpu);
    };
    const auto one = time(3, [&] { m.encode_audio(feats.data(), 1, channels, longer, out.data()); });
    const auto four = time(2, [&] { m.encode_audio(feats.data(), 4, channels, longer, out.data()); });
    std::vector<std::vector<int32_t>> eight(ids.begin() + 6, ids.begin() + 14);
    const auto t8 = time(5, [&] { m.encode_texts(eight, out.data()); });
    std::cout << dir << " (2 threads): audio 1 clip " << one.first << " ms (cpu " << one.second << " ms), 4 clips "
              << four.first / 4 << " ms/clip (cpu " << four.second / 4 << " ms/clip); texts batch 8 " << t8.first / 8
              << " ms/text (cpu " << t8.second / 8 << " ms/text)\n";
  }
}

}  // namespace
}  // namespace zeroshot::models
