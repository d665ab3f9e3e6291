// Few-shot heads: the logistic fits against scikit-learn's LogisticRegression (few_shot_reference.py, run by CTest
// as a fixture), zero-init at 0 shots = zero-shot, Tip-Adapter, the validation split, the head file and its errors.
#include "classify/few_shot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "classify/zero_shot.h"
#include "io/safetensors.h"
#include "support/temp_dir.h"
#include "zeroshot/error.h"

namespace zeroshot::classify {
namespace {

namespace fs = std::filesystem;

template <typename T>
std::vector<T> read_raw(const fs::path& p, size_t count) {
  std::vector<T> v(count);
  std::ifstream f(p, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(T)));
  EXPECT_TRUE(f.good()) << p;
  return v;
}

struct Reference {
  LabeledEmbeddings single, multi;
  nlohmann::json json;
};

// Skips the test when the fixture did not run (no scikit-learn).
bool load_reference(Reference* r) {
  const fs::path dir = FEW_SHOT_REFERENCE_DIR;
  std::ifstream f(dir / "reference.json");
  if (!f) return false;
  r->json = nlohmann::json::parse(f);
  const size_t n = r->json["n"], d = r->json["dim"], k = r->json["classes"];
  LabeledEmbeddings& s = r->single;
  s.n = n;
  s.dim = d;
  s.num_classes = k;
  s.x = read_raw<float>(dir / "x.f32", n * d);
  s.y = read_raw<int>(dir / "y.i32", n);
  r->multi = s;
  r->multi.y.clear();
  r->multi.multi_label = true;
  r->multi.targets = read_raw<uint8_t>(dir / "targets.u8", n * k);
  return true;
}

std::vector<double> centered(std::vector<double> b) {
  double m = 0;
  for (double v : b) m += v;
  m /= static_cast<double>(b.size());
  for (double& v : b) v -= m;
  return b;
}

// The objective is 1-strongly convex in W (its 1/2 ||W||^2 term), so for any W: ||W - W*||^2 <= 2 (f(W) - f*).
// Ours must reach an objective at least as low as scikit-learn's (to 1e-9 relative: the last digits of a double sum
// of 240 x 6 terms); then both points lie within sqrt(2 gap) of W*, gap = scikit-learn's excess over ours plus
// that allowance, and the weights' L2 distance is bounded by twice that. The probabilities (measured: 7e-5 at
// most, at C = 10 where scikit-learn stops 6e-9 above our objective) are held to 1e-4.
void expect_same_optimum(const LabeledEmbeddings& d, const nlohmann::json& ref, bool multi) {
  LogisticOptions opt;
  opt.C = ref["C"];
  opt.epsilon = 1e-9;
  opt.max_iterations = 20000;
  const LogisticFit f = fit_logistic(d, opt);
  const std::vector<double> sk_w = ref["coef"], sk_b = ref["intercept"];
  const double f_sk = logistic_objective(d, opt, sk_w, sk_b);
  SCOPED_TRACE("C=" + std::to_string(opt.C) + (multi ? " multi-label" : " multinomial"));
  EXPECT_LE(f.objective, f_sk * (1 + 1e-9));
  const double gap = std::max(0.0, f_sk - f.objective) + 1e-9 * f_sk;
  double max_dw = 0, dist2 = 0;
  for (size_t i = 0; i < sk_w.size(); ++i) {
    max_dw = std::max(max_dw, std::abs(f.w[i] - sk_w[i]));
    dist2 += (f.w[i] - sk_w[i]) * (f.w[i] - sk_w[i]);
  }
  EXPECT_LE(std::sqrt(dist2), 2 * std::sqrt(2 * gap));
  // Multinomial intercepts are defined up to a common shift (the softmax ignores it): compare them centered.
  const auto ob = multi ? f.b : centered(f.b), sb = multi ? sk_b : centered(sk_b);
  for (size_t k = 0; k < ob.size(); ++k) EXPECT_NEAR(ob[k], sb[k], 1e-3) << "intercept " << k;
  Head h;
  h.multi_label = multi;
  h.num_classes = d.num_classes;
  h.dim = d.dim;
  h.weight.assign(f.w.begin(), f.w.end());
  h.bias.assign(f.b.begin(), f.b.end());
  const std::vector<double> proba = ref["proba"];
  double max_dp = 0;
  for (size_t i = 0; i < d.n; ++i) {
    const auto p = head_scores(h, d.x.data() + i * d.dim);
    for (size_t k = 0; k < d.num_classes; ++k) max_dp = std::max(max_dp, std::abs(p[k] - proba[i * d.num_classes + k]));
  }
  EXPECT_LT(max_dp, 1e-4);
  std::printf("C=%g %s: objective %.10g (scikit-learn %.10g), max |dW| %.2g, max |dp| %.2g\n", opt.C,
              multi ? "per label" : "multinomial", f.objective, f_sk, max_dw, max_dp);
}

TEST(FewShot, MultinomialMatchesScikitLearn) {
  Reference r;
  if (!load_reference(&r)) GTEST_SKIP() << "no scikit-learn reference (python3-sklearn)";
  for (const auto& ref : r.json["single"]) expect_same_optimum(r.single, ref, false);
}

TEST(FewShot, OneLogisticPerLabelMatchesScikitLearn) {
  Reference r;
  if (!load_reference(&r)) GTEST_SKIP() << "no scikit-learn reference (python3-sklearn)";
  for (const auto& ref : r.json["multi"]) expect_same_optimum(r.multi, ref, true);
}

// The C sweep's fits (float products, loose stop) land near the double optimum: the objective within 1e-4 relative,
// the probabilities within 1e-2 (what ranking values of C needs, not what a head needs).
TEST(FewShot, SinglePrecisionFitIsNearTheOptimum) {
  Reference r;
  if (!load_reference(&r)) GTEST_SKIP() << "no scikit-learn reference (python3-sklearn)";
  for (const auto& ref : r.json["single"]) {
    LogisticOptions opt;
    opt.C = ref["C"];
    opt.single_precision = true;
    opt.epsilon = 1e-4;
    opt.delta = 1e-5;
    const LogisticFit f = fit_logistic(r.single, opt);
    opt.single_precision = false;
    const double ours = logistic_objective(r.single, opt, f.w, f.b);
    const double sk = logistic_objective(r.single, opt, ref["coef"].get<std::vector<double>>(),
                                         ref["intercept"].get<std::vector<double>>());
    SCOPED_TRACE("C=" + std::to_string(opt.C));
    EXPECT_LE(std::abs(ours - sk), 1e-4 * sk);
    Head h;
    h.num_classes = r.single.num_classes;
    h.dim = r.single.dim;
    h.weight.assign(f.w.begin(), f.w.end());
    h.bias.assign(f.b.begin(), f.b.end());
    const std::vector<double> proba = ref["proba"];
    for (size_t i = 0; i < r.single.n; ++i) {
      const auto p = head_scores(h, r.single.x.data() + i * r.single.dim);
      for (size_t k = 0; k < h.num_classes; ++k) ASSERT_NEAR(p[k], proba[i * h.num_classes + k], 1e-2);
    }
  }
}

// Random clustered data: K classes x `shots` rows of `dim`, unnormalized.
LabeledEmbeddings clusters(size_t K, size_t shots, size_t dim, uint64_t seed, std::vector<float>* centers) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  centers->resize(K * dim);
  for (float& c : *centers) c = g(rng);
  l2_normalize_rows(centers->data(), K, dim);
  LabeledEmbeddings d;
  d.dim = dim;
  d.num_classes = K;
  for (size_t k = 0; k < K; ++k)
    for (size_t s = 0; s < shots; ++s) {
      for (size_t j = 0; j < dim; ++j) d.x.push_back((*centers)[k * dim + j] + 0.15f * g(rng));
      d.y.push_back(static_cast<int>(k));
    }
  d.n = d.y.size();
  return d;
}

TEST(FewShot, LinearProbeIsDeterministicAndLearns) {
  std::vector<float> centers;
  const LabeledEmbeddings d = clusters(5, 8, 16, 1, &centers);
  FitOptions opt;
  opt.seed = 7;
  opt.log10_c_lo = -2;
  opt.log10_c_hi = 3;
  opt.refine = 3;
  const Head a = fit_head(d, opt), b = fit_head(d, opt);
  EXPECT_EQ(a.weight, b.weight);
  EXPECT_EQ(a.C, b.C);
  EXPECT_EQ(a.validation, 10u);  // floor(0.25 * 8) = 2 per class
  size_t correct = 0;
  for (size_t i = 0; i < d.n; ++i) {
    const auto s = head_scores(a, d.x.data() + i * d.dim);
    correct += static_cast<int>(std::max_element(s.begin(), s.end()) - s.begin()) == d.y[i];
  }
  EXPECT_EQ(correct, d.n);
}

TEST(FewShot, ValidationSplitIsStratifiedAndSeeded) {
  std::vector<float> centers;
  LabeledEmbeddings d = clusters(3, 4, 4, 2, &centers);
  d.y.push_back(2);  // class 2: 5 rows -> 1 held out; add a class of one row: none held out
  d.x.insert(d.x.end(), 4, 0.5f);
  d.num_classes = 4;
  d.y.push_back(3);
  d.x.insert(d.x.end(), 4, 0.5f);
  d.n = d.y.size();
  const auto v = validation_rows(d, 0.25, 3);
  EXPECT_EQ(v, validation_rows(d, 0.25, 3));
  ASSERT_EQ(v.size(), 3u);  // floor(0.25 x 4 or 5) = 1 per class, none from the class of 1
  std::vector<int> per_class(4, 0);
  for (size_t r : v) ++per_class[static_cast<size_t>(d.y[r])];
  EXPECT_EQ(per_class, (std::vector<int>{1, 1, 1, 0}));
  EXPECT_NE(v, validation_rows(d, 0.25, 4));
}

// 0 shots: zero-init is the zero-shot classifier (W = scale * Z, b = 0).
TEST(FewShot, ZeroInitWithoutShotsIsZeroShot) {
  std::vector<float> centers;
  const LabeledEmbeddings some = clusters(4, 3, 8, 3, &centers);
  LabeledEmbeddings none;
  none.dim = 8;
  none.num_classes = 4;
  FitOptions opt;
  opt.method = FewShotMethod::ZeroInit;
  opt.zero_shot = centers.data();
  opt.scale = 100.f;
  const Head h = fit_head(none, opt);
  for (size_t i = 0; i < some.n; ++i) {
    const float* x = some.x.data() + i * some.dim;
    const auto p = head_scores(h, x);
    const auto z = zero_shot_probs(x, centers.data(), 4, 8, 100.f);
    for (size_t k = 0; k < 4; ++k) EXPECT_NEAR(p[k], z[k], 1e-6);
  }
}

TEST(FewShot, ZeroInitMovesTowardTheShots) {
  std::vector<float> centers;
  const LabeledEmbeddings d = clusters(4, 6, 8, 4, &centers);
  std::vector<float> wrong(centers.size());  // zero-shot embeddings of the classes rotated by one: all wrong
  for (size_t k = 0; k < 4; ++k)
    std::copy(centers.begin() + static_cast<std::ptrdiff_t>(((k + 1) % 4) * 8),
              centers.begin() + static_cast<std::ptrdiff_t>(((k + 1) % 4) * 8 + 8),
              wrong.begin() + static_cast<std::ptrdiff_t>(k * 8));
  FitOptions opt;
  opt.method = FewShotMethod::ZeroInit;
  opt.zero_shot = wrong.data();
  opt.scale = 10.f;
  opt.log10_c_lo = -3;
  opt.log10_c_hi = 3;
  opt.refine = 2;
  const Head h = fit_head(d, opt);
  size_t correct = 0;
  for (size_t i = 0; i < d.n; ++i) {
    const auto s = head_logits(h, d.x.data() + i * d.dim);
    correct += static_cast<int>(std::max_element(s.begin(), s.end()) - s.begin()) == d.y[i];
  }
  EXPECT_EQ(correct, d.n);
}

TEST(FewShot, TipAdapterBlendsCacheAndZeroShot) {
  std::vector<float> centers;
  const LabeledEmbeddings d = clusters(3, 4, 8, 5, &centers);
  FitOptions opt;
  opt.method = FewShotMethod::TipAdapter;
  opt.zero_shot = centers.data();
  Head h = fit_head(d, opt);
  EXPECT_EQ(h.num_keys(), d.n);
  EXPECT_GE(h.beta, 0.5f);
  // By hand for one input: zero-shot logits + alpha * sum_j exp(-beta (1 - cos_j)) one_hot_j.
  h.alpha = 0.7f;
  h.beta = 2.f;
  std::vector<float> x(d.x.begin(), d.x.begin() + 8);
  l2_normalize_rows(x.data(), 1, 8);
  const auto l = head_logits(h, x.data());
  std::vector<float> keys = normalized(d).x;
  for (size_t k = 0; k < 3; ++k) {
    double want = 100 * cosines(x.data(), centers.data() + k * 8, 1, 8)[0];
    for (size_t j = 0; j < d.n; ++j)
      if (static_cast<size_t>(d.y[j]) == k)
        want += 0.7 * std::exp(-2.0 * (1 - cosines(x.data(), keys.data() + j * 8, 1, 8)[0]));
    EXPECT_NEAR(l[k], want, 1e-3);
  }
  h.alpha = 0;
  const auto p = head_scores(h, x.data());
  const auto z = zero_shot_probs(x.data(), centers.data(), 3, 8, 100.f);
  for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(p[k], z[k], 1e-6);
}

// Tip-Adapter's (alpha, beta) search against a brute-force leave-one-out: every grid point's accuracy from the
// logits computed directly (double, argmax), the chosen point must have the best of them. Noisy zero-shot weights, so
// the cache has something to add and the best alpha is not 0.
TEST(FewShot, TipAdapterSearchMatchesBruteForce) {
  std::vector<float> centers;
  const LabeledEmbeddings d = normalized(clusters(6, 5, 8, 9, &centers));
  std::mt19937_64 rng(10);
  std::normal_distribution<float> g;
  std::vector<float> zs = centers;
  for (float& v : zs) v += 0.6f * g(rng);
  l2_normalize_rows(zs.data(), 6, 8);
  FitOptions opt;
  opt.method = FewShotMethod::TipAdapter;
  opt.zero_shot = zs.data();
  opt.scale = 10.f;
  const Head h = fit_head(d, opt);
  auto accuracy = [&](double alpha, double beta) {
    size_t correct = 0;
    for (size_t i = 0; i < d.n; ++i) {
      const float* x = d.x.data() + i * d.dim;
      std::vector<double> l(6);
      for (size_t k = 0; k < 6; ++k) l[k] = 10.0 * cosines(x, zs.data() + k * 8, 1, 8)[0];
      for (size_t j = 0; j < d.n; ++j)
        if (j != i)
          l[static_cast<size_t>(d.y[j])] += alpha * std::exp(-beta * (1 - cosines(x, d.x.data() + j * 8, 1, 8)[0]));
      correct += static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin()) == d.y[i];
    }
    return correct;
  };
  size_t best = 0;
  for (int b = 1; b <= 14; ++b)
    for (int a = 0; a <= 30; ++a) best = std::max(best, accuracy(0.1f * static_cast<float>(a), 0.5 * b));
  EXPECT_GT(best, accuracy(0, 1));  // the cache helps: a search that ignored it would fail below
  EXPECT_GT(h.alpha, 0.f);
  EXPECT_EQ(accuracy(h.alpha, h.beta), best);
  EXPECT_DOUBLE_EQ(h.validation_score, static_cast<double>(best) / static_cast<double>(d.n));
}

TEST(FewShot, BadInput) {
  std::vector<float> centers;
  LabeledEmbeddings d = clusters(3, 2, 4, 6, &centers);
  d.num_classes = 4;  // class 3 has no samples
  EXPECT_THROW(fit_head(d, {}), Error);
  FitOptions zi;
  zi.method = FewShotMethod::ZeroInit;
  std::vector<float> z(16, 0.5f);
  zi.zero_shot = z.data();
  zi.log10_c_lo = 0;
  zi.log10_c_hi = 0;
  zi.refine = 0;
  EXPECT_NO_THROW(fit_head(d, zi));  // the empty class keeps its zero-shot weights
  d.y[0] = 9;
  EXPECT_THROW(fit_head(d, {}), Error);
  d.y[0] = 0;
  d.x[0] = NAN;
  EXPECT_THROW(fit_head(d, {}), Error);
  EXPECT_THROW(parse_method("svm"), Error);
  LabeledEmbeddings ml = clusters(2, 2, 4, 7, &centers);
  ml.multi_label = true;
  ml.targets.assign(ml.n * 2, 1);
  EXPECT_THROW(fit_head(ml, zi), Error);  // zero-init is single-label only
}

TEST(FewShot, HeadFileRoundTripAndRefusals) {
  testing::TempDir dir("few_shot");
  std::vector<float> centers;
  const LabeledEmbeddings d = clusters(3, 3, 8, 8, &centers);
  FitOptions opt;
  opt.method = FewShotMethod::TipAdapter;
  opt.zero_shot = centers.data();
  const Head h = fit_head(d, opt);
  const std::string path = dir / "head.safetensors";
  save_head(path, h, {"cat", "dog", "car"}, "abc123", {{"model", "m"}});
  const LoadedHead l = load_head(path, "abc123");
  EXPECT_EQ(l.labels, (std::vector<std::string>{"cat", "dog", "car"}));
  EXPECT_EQ(l.head.weight, h.weight);
  EXPECT_EQ(l.head.keys, h.keys);
  EXPECT_EQ(l.head.alpha, h.alpha);
  EXPECT_EQ(l.metadata.at("model"), "m");
  EXPECT_NO_THROW(check_head_labels(path, l, {"cat", "dog", "car"}));
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { load_head(path, "fff"); }).find("fitted for another model"), std::string::npos);
  EXPECT_NE(message([&] {
              check_head_labels(path, l, {"cat", "dog"});
            }).find("3 labels, 2 were given"),
            std::string::npos);
  EXPECT_NE(message([&] {
              check_head_labels(path, l, {"cat", "car", "dog"});
            }).find("label 2 is \"dog\""),
            std::string::npos);
  // Corrupt files: truncated, garbage, a safetensors file that is not a head.
  std::string bytes = testing::read_file(path);
  testing::write_file(dir / "cut.safetensors", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(load_head(dir / "cut.safetensors"), Error);
  testing::write_file(dir / "junk.safetensors", "not a head at all");
  EXPECT_THROW(load_head(dir / "junk.safetensors"), Error);
  std::vector<float> one(1, 1.f);
  io::write_safetensors(dir / "other.safetensors", {{"weight", io::DType::F32, {1}, one.data()}});
  EXPECT_NE(message([&] { load_head(dir / "other.safetensors"); }).find("not a zeroshot head file"), std::string::npos);
  EXPECT_EQ(message([&] { load_head(dir / "cut.safetensors"); }).rfind(dir / "cut.safetensors", 0), 0u);
}

}  // namespace
}  // namespace zeroshot::classify
