#include "classify/few_shot.h"

#include <cblas.h>
#include <lbfgs.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "classify/zero_shot.h"
#include "io/safetensors.h"
#include "zeroshot/error.h"

namespace zeroshot::classify {

namespace {

constexpr const char* kHeadFormat = "zeroshot-head";

// One logistic problem for libLBFGS: variables are W (K x d) then b (K), always double (libLBFGS's). The products
// are in T: double (dgemm) for the fits that must match scikit-learn (with float products the optimum of C = 10
// moved probabilities by 1e-4 against scikit-learn's, which is double throughout); float (sgemm, half the time and
// memory traffic) for the C sweep, which only ranks values of C by validation score. Sums over rows (the loss, the
// intercept's gradient) are double in both.
template <typename T>
struct Problem {
  const LabeledEmbeddings* d = nullptr;
  const LogisticOptions* opt = nullptr;
  std::vector<T> x, w, logits, gw;  // w: the variables' W in T (float only; double uses them in place)
};

template <typename T>
void init_problem(Problem<T>& p, const LabeledEmbeddings& d, const LogisticOptions& opt) {
  p.d = &d;
  p.opt = &opt;
  p.x.assign(d.x.begin(), d.x.end());
  if constexpr (!std::is_same_v<T, double>) p.w.resize(d.num_classes * d.dim);
  p.gw.resize(d.num_classes * d.dim);
  p.logits.resize(d.n * d.num_classes);
}

// C = A B^T (trans_a false) or A^T B (trans_a true), row-major, in T.
void gemm(bool trans_a, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_a ? CblasNoTrans : CblasTrans, m, n, k, 1.f, a,
              lda, b, ldb, 0.f, c, ldc);
}
void gemm(bool trans_a, int m, int n, int k, const double* a, int lda, const double* b, int ldb, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_a ? CblasNoTrans : CblasTrans, m, n, k, 1.0, a,
              lda, b, ldb, 0.0, c, ldc);
}

// f = C * sum_i loss_i + 1/2 ||W - P||^2 and its gradient. The logits are overwritten by the residuals
// C * (p - t), the gradient's left factor.
template <typename T>
double evaluate(Problem<T>& p, const double* v, double* g) {
  const LabeledEmbeddings& d = *p.d;
  const size_t K = d.num_classes, D = d.dim, n = d.n;
  const double C = p.opt->C;
  const float* prior = p.opt->prior;
  const double* b = v + K * D;
  double loss = 0;
  std::vector<double> gb(K, 0.0);
  const T* w = nullptr;
  if constexpr (std::is_same_v<T, double>) {
    w = v;
  } else {
    for (size_t i = 0; i < K * D; ++i) p.w[i] = static_cast<T>(v[i]);
    w = p.w.data();
  }
  const auto Ki = static_cast<int>(K), Di = static_cast<int>(D), ni = static_cast<int>(n);
  if (n > 0) {
    gemm(false, ni, Ki, Di, p.x.data(), Di, w, Di, p.logits.data(), Ki);
    for (size_t i = 0; i < n; ++i) {
      T* z = p.logits.data() + i * K;
      for (size_t k = 0; k < K; ++k) z[k] += static_cast<T>(b[k]);
      if (d.multi_label) {
        const uint8_t* t = d.targets.data() + i * K;
        for (size_t k = 0; k < K; ++k) {
          // log(1 + e^z) - t z, stably; d/dz = sigmoid(z) - t.
          const T e = std::exp(-std::abs(z[k]));
          const T sp = std::max(z[k], T(0)) + std::log1p(e);
          loss += static_cast<double>(sp) - (t[k] ? static_cast<double>(z[k]) : 0.0);
          const T s = z[k] >= 0 ? 1 / (1 + e) : e / (1 + e);
          z[k] = static_cast<T>(C * (static_cast<double>(s) - t[k]));
          gb[k] += static_cast<double>(z[k]);
        }
      } else {
        const T m = *std::max_element(z, z + K);
        const auto y = static_cast<size_t>(d.y[i]);
        loss += static_cast<double>(m - z[y]);
        double sum = 0;
        for (size_t k = 0; k < K; ++k) {
          z[k] = std::exp(z[k] - m);
          sum += static_cast<double>(z[k]);
        }
        loss += std::log(sum);
        const double scale = C / sum;
        for (size_t k = 0; k < K; ++k) {
          z[k] = static_cast<T>(scale * static_cast<double>(z[k]) - (k == y ? C : 0.0));
          gb[k] += static_cast<double>(z[k]);
        }
      }
    }
    if (g) gemm(true, Ki, Di, ni, p.logits.data(), Ki, p.x.data(), Di, p.gw.data(), Di);
  } else {
    std::fill(p.gw.begin(), p.gw.end(), T(0));
  }
  double reg = 0;
  for (size_t i = 0; i < K * D; ++i) {
    const double delta = v[i] - (prior ? static_cast<double>(prior[i]) : 0.0);
    reg += delta * delta;
    if (g) g[i] = static_cast<double>(p.gw[i]) + delta;
  }
  if (g)
    for (size_t k = 0; k < K; ++k) g[K * D + k] = p.opt->fit_intercept ? gb[k] : 0.0;
  return C * loss + 0.5 * reg;
}

template <typename T>
lbfgsfloatval_t lbfgs_evaluate(void* instance, const lbfgsfloatval_t* x, lbfgsfloatval_t* g, int /*n*/,
                               lbfgsfloatval_t /*step*/) {
  return evaluate(*static_cast<Problem<T>*>(instance), x, g);
}

void check_data(const LabeledEmbeddings& d) {
  if (d.dim == 0 || d.num_classes == 0) throw Error("few-shot data", "no classes or zero dimensions");
  if (d.x.size() != d.n * d.dim) throw Error("few-shot data", "embedding matrix is not n x dim");
  if (d.multi_label) {
    if (d.targets.size() != d.n * d.num_classes) throw Error("few-shot data", "target matrix is not n x classes");
  } else {
    if (d.y.size() != d.n) throw Error("few-shot data", "label count is not n");
    for (int y : d.y)
      if (y < 0 || static_cast<size_t>(y) >= d.num_classes)
        throw Error("few-shot data", "label " + std::to_string(y) + " out of range");
  }
  for (float v : d.x)
    if (!std::isfinite(v)) throw Error("few-shot data", "an embedding is not finite");
}

LabeledEmbeddings subset(const LabeledEmbeddings& d, const std::vector<size_t>& rows) {
  LabeledEmbeddings s;
  s.dim = d.dim;
  s.num_classes = d.num_classes;
  s.multi_label = d.multi_label;
  s.n = rows.size();
  s.x.reserve(rows.size() * d.dim);
  for (size_t r : rows) {
    s.x.insert(s.x.end(), d.x.begin() + static_cast<std::ptrdiff_t>(r * d.dim),
               d.x.begin() + static_cast<std::ptrdiff_t>((r + 1) * d.dim));
    if (d.multi_label)
      s.targets.insert(s.targets.end(), d.targets.begin() + static_cast<std::ptrdiff_t>(r * d.num_classes),
                       d.targets.begin() + static_cast<std::ptrdiff_t>((r + 1) * d.num_classes));
    else s.y.push_back(d.y[r]);
  }
  return s;
}

// Uniform index in [0, n) from a 64-bit engine: the engine is specified by the standard, std::shuffle and the
// distributions are not, and a seed must give the same split with every standard library.
size_t draw(std::mt19937_64& rng, size_t n) { return static_cast<size_t>(rng() % n); }

void shuffle(std::vector<size_t>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[draw(rng, i)]);
}

Head linear_head(const LabeledEmbeddings& d, const LogisticFit& f) {
  Head h;
  h.multi_label = d.multi_label;
  h.num_classes = d.num_classes;
  h.dim = d.dim;
  h.weight.assign(f.w.begin(), f.w.end());
  h.bias.assign(f.b.begin(), f.b.end());
  return h;
}

// Validation score of a head, compared lexicographically: single-label (accuracy, -mean cross-entropy), so that
// ties in accuracy, common with few validation rows, go to the better-calibrated C; multi-label (-mean BCE, 0).
struct Score {
  double primary = 0, secondary = 0;
  bool operator>(const Score& o) const {
    return primary > o.primary || (primary == o.primary && secondary > o.secondary);
  }
};

// v's rows are L2-normalized (they are fit_head's), so the logits of all of them are one sgemm; head_logits row by
// row took 4,000 x 1,000 x 512 scalar double products for every C of a 1,000-class sweep.
Score validate(const Head& h, const LabeledEmbeddings& v) {
  Score s;
  const size_t K = v.num_classes;
  std::vector<float> logits(v.n * K);
  if (v.n)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(v.n), static_cast<int>(K),
                static_cast<int>(v.dim), 1.f, v.x.data(), static_cast<int>(v.dim), h.weight.data(),
                static_cast<int>(v.dim), 0.f, logits.data(), static_cast<int>(K));
  for (size_t i = 0; i < v.n; ++i) {
    float* l = logits.data() + i * K;
    for (size_t k = 0; k < K; ++k) l[k] += h.bias[k];
    if (v.multi_label) {
      for (size_t k = 0; k < K; ++k) {
        const double z = l[k];
        const double sp = z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
        s.primary -= sp - (v.targets[i * K + k] ? z : 0.0);
      }
    } else {
      const auto y = static_cast<size_t>(v.y[i]);
      const float* top = std::max_element(l, l + K);
      s.primary += static_cast<size_t>(top - l) == y ? 1 : 0;
      const double m = *top;
      double sum = 0;
      for (size_t k = 0; k < K; ++k) sum += std::exp(l[k] - m);
      s.secondary -= m + std::log(sum) - l[y];
    }
  }
  if (v.n) {
    s.primary /= static_cast<double>(v.n);
    s.secondary /= static_cast<double>(v.n);
  }
  return s;
}

// Linear / ZeroInit: the C sweep on (train, val), then the refit on everything.
Head fit_logistic_head(const LabeledEmbeddings& all, const FitOptions& opt, const std::vector<float>* prior) {
  LogisticOptions lo;
  lo.prior = prior ? prior->data() : nullptr;
  const auto val_rows = validation_rows(all, opt.validation_fraction, opt.seed);
  double best_c = 1.0;  // scikit-learn's default C, when there is nothing to validate on
  Score best_score{-std::numeric_limits<double>::infinity(), 0};
  LogisticFit best_fit;  // the sweep's fit at best_c: the refit starts there
  if (!val_rows.empty()) {
    std::vector<size_t> train_rows;
    size_t j = 0;
    for (size_t i = 0; i < all.n; ++i) {
      if (j < val_rows.size() && val_rows[j] == i) ++j;
      else train_rows.push_back(i);
    }
    const LabeledEmbeddings train = subset(all, train_rows), val = subset(all, val_rows);
    // The sweep compares validation scores, which settle long before the weights do: float products and a looser
    // stop than the refit's.
    LogisticOptions sweep = lo;
    sweep.single_precision = true;
    sweep.epsilon = 1e-4;
    // Float objectives are noisy at about 1e-7 relative: near the optimum the line search fails on rounding after
    // dozens of evaluations without this test (measured: 745 evaluations for the sweep of 200 classes, 278 with it,
    // the same C chosen).
    sweep.delta = 1e-5;
    sweep.max_iterations = 500;
    // Fits by log10(C); the exponents are sums of powers of two, exact in a double, so they are exact map keys.
    struct Tried {
      LogisticFit fit;
      Score score;
    };
    std::map<double, Tried> tried;
    auto try_c = [&](double e) {
      if (tried.count(e)) return;
      // Warm start from the nearest C tried (the solutions move smoothly with log C).
      const LogisticFit* warm = nullptr;
      double gap = std::numeric_limits<double>::infinity();
      for (const auto& [e2, t] : tried)
        if (std::abs(e2 - e) < gap) {
          gap = std::abs(e2 - e);
          warm = &t.fit;
        }
      sweep.C = std::pow(10.0, e);
      Tried t{fit_logistic(train, sweep, warm), {}};
      t.score = validate(linear_head(train, t.fit), val);
      tried.emplace(e, std::move(t));
    };
    // The best exponent so far; ties go to the smaller C (stronger regularization).
    auto best = [&] {
      auto it = tried.begin();
      for (auto i = tried.begin(); i != tried.end(); ++i)
        if (i->second.score > it->second.score) it = i;
      return it->first;
    };
    // The CLIP paper's protocol (Radford et al. 2021, appendix A.3): a coarse log-spaced sweep, then a parametric
    // binary search that halves the step around the best value, instead of every value at the final resolution.
    const double lo_e = opt.log10_c_lo, hi_e = std::max(opt.log10_c_hi, opt.log10_c_lo);
    const double step = std::max(opt.log10_c_step, 1);
    for (double e = lo_e; e < hi_e; e += step) try_c(e);  // small C first (strong regularization: quick)
    try_c(hi_e);
    for (int r = 1; r <= opt.refine; ++r) {
      const double s = step / std::pow(2.0, r), e0 = best();
      if (e0 - s >= lo_e) try_c(e0 - s);
      if (e0 + s <= hi_e) try_c(e0 + s);
    }
    const auto& chosen = *tried.find(best());
    best_c = std::pow(10.0, chosen.first);
    best_score = chosen.second.score;
    best_fit = chosen.second.fit;
  }
  lo.C = best_c;
  if (!best_fit.w.empty()) {  // most of the way on all the rows in float, from the sweep's fit; then the double fit
    LogisticOptions rough = lo;
    rough.single_precision = true;
    rough.epsilon = 1e-4;
    rough.delta = 1e-5;
    rough.max_iterations = 500;
    best_fit = fit_logistic(all, rough, &best_fit);
  }
  Head h = linear_head(all, fit_logistic(all, lo, best_fit.w.empty() ? nullptr : &best_fit));
  h.C = best_c;
  h.train = all.n - val_rows.size();
  h.validation = val_rows.size();
  h.validation_score = val_rows.empty() ? std::numeric_limits<double>::quiet_NaN() : best_score.primary;
  return h;
}

// Tip-Adapter: alpha, beta by leave-one-out accuracy over the shots. The search ranges follow the paper's code
// (beta in (0, 7], alpha in (0, 3]) on a coarser grid.
Head fit_tip_adapter(const LabeledEmbeddings& d, const FitOptions& opt) {
  const size_t K = d.num_classes, D = d.dim, n = d.n;
  Head h;
  h.method = FewShotMethod::TipAdapter;
  h.num_classes = K;
  h.dim = D;
  h.weight.resize(K * D);
  for (size_t i = 0; i < K * D; ++i) h.weight[i] = opt.scale * opt.zero_shot[i];
  h.bias.assign(K, 0.f);
  h.keys = d.x;
  h.values.assign(n * K, 0.f);
  for (size_t i = 0; i < n; ++i) h.values[i * K + static_cast<size_t>(d.y[i])] = 1.f;
  h.train = n;
  h.validation = n;
  h.validation_score = std::numeric_limits<double>::quiet_NaN();
  if (n < 2) return h;  // nothing to choose with: alpha = 0, the zero-shot classifier
  // The keys in class order, so that a class's cache term is a sum over a contiguous run instead of a scatter.
  std::vector<size_t> order(n), seg(K + 1, 0), pos(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return d.y[i] < d.y[j]; });
  for (int y : d.y) ++seg[static_cast<size_t>(y) + 1];
  for (size_t k = 0; k < K; ++k) seg[k + 1] += seg[k];
  std::vector<float> keys(n * D);
  for (size_t q = 0; q < n; ++q) {
    pos[order[q]] = q;
    std::copy_n(d.x.data() + order[q] * D, D, keys.data() + q * D);
  }
  constexpr int kBetas = 14, kAlphas = 31;  // beta = 0.5 .. 7 step 0.5, alpha = 0 .. 3 step 0.1
  std::vector<size_t> correct(static_cast<size_t>(kBetas * kAlphas), 0);
  // Rows in chunks, so that the n x n affinities are never held at once (16,000 shots: 1 GB).
  const size_t chunk = 256;
  std::vector<float> zs(chunk * K), aff(chunk * n), e(n), p(n), cache(K);
  for (size_t r0 = 0; r0 < n; r0 += chunk) {
    const size_t m = std::min(chunk, n - r0);
    const float* xr = d.x.data() + r0 * D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(K), static_cast<int>(D),
                1.f, xr, static_cast<int>(D), h.weight.data(), static_cast<int>(D), 0.f, zs.data(),
                static_cast<int>(K));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n), static_cast<int>(D),
                1.f, xr, static_cast<int>(D), keys.data(), static_cast<int>(D), 0.f, aff.data(), static_cast<int>(n));
    for (size_t i = 0; i < m; ++i) {
      // exp(-beta (1 - a)) for beta = 0.5 (b + 1) is e^(b + 1), e = exp(-0.5 (1 - a)): one exp per pair, then a
      // product per beta. The row's own key is left out (leave-one-out): e = 0.
      const float* a = aff.data() + i * n;
      for (size_t j = 0; j < n; ++j) e[j] = std::exp(0.5f * (a[j] - 1.f));
      e[pos[r0 + i]] = 0.f;
      p = e;
      const auto y = static_cast<size_t>(d.y[r0 + i]);
      const float* z = zs.data() + i * K;
      for (int bi = 0; bi < kBetas; ++bi) {
        for (size_t k = 0; k < K; ++k)
          cache[k] = std::accumulate(p.begin() + static_cast<std::ptrdiff_t>(seg[k]),
                                     p.begin() + static_cast<std::ptrdiff_t>(seg[k + 1]), 0.f);
        // y's logit z_y + alpha c_y beats z_k + alpha c_k on a half-line of alpha (or everywhere, or nowhere):
        // the alphas where y wins against every k are an interval (lo, hi). Ties count as wrong.
        float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
        bool never = false;
        for (size_t k = 0; k < K; ++k) {
          if (k == y) continue;
          const float dz = z[y] - z[k], dc = cache[y] - cache[k];
          if (dc > 0) lo = std::max(lo, -dz / dc);
          else if (dc < 0) hi = std::min(hi, -dz / dc);
          else never = never || dz <= 0;
        }
        if (!never)
          for (int ai = 0; ai < kAlphas; ++ai) {
            const float alpha = 0.1f * static_cast<float>(ai);
            correct[(static_cast<size_t>(bi) * kAlphas) + static_cast<size_t>(ai)] += alpha > lo && alpha < hi;
          }
        for (size_t j = 0; j < n; ++j) p[j] *= e[j];
      }
    }
  }
  // The best (beta, alpha), the first in (beta, alpha) order on ties.
  size_t best = 0;
  for (size_t c = 1; c < correct.size(); ++c)
    if (correct[c] > correct[best]) best = c;
  const size_t beta_index = best / kAlphas;
  h.beta = 0.5f * static_cast<float>(beta_index + 1);
  h.alpha = 0.1f * static_cast<float>(best % kAlphas);
  h.validation_score = static_cast<double>(correct[best]) / static_cast<double>(n);
  return h;
}

std::string fmt_double(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

}  // namespace

const char* method_name(FewShotMethod m) {
  switch (m) {
    case FewShotMethod::Linear: return "linear";
    case FewShotMethod::ZeroInit: return "zero-init";
    case FewShotMethod::TipAdapter: return "tip-adapter";
  }
  return "?";
}

FewShotMethod parse_method(const std::string& name) {
  for (auto m : {FewShotMethod::Linear, FewShotMethod::ZeroInit, FewShotMethod::TipAdapter})
    if (name == method_name(m)) return m;
  throw Error("--method " + name, "unknown method (linear, zero-init, tip-adapter)");
}

LabeledEmbeddings normalized(LabeledEmbeddings d) {
  if (d.n) l2_normalize_rows(d.x.data(), d.n, d.dim);
  return d;
}

namespace {

template <typename T>
LogisticFit minimize(const LabeledEmbeddings& d, const LogisticOptions& opt, const LogisticFit* start) {
  const size_t K = d.num_classes, D = d.dim, nv = K * D + K;
  Problem<T> p;
  init_problem(p, d, opt);
  lbfgsfloatval_t* v = lbfgs_malloc(static_cast<int>(nv));
  if (!v) throw Error("few-shot fit", "out of memory");
  for (size_t i = 0; i < nv; ++i) v[i] = 0;
  if (start && start->w.size() == K * D && start->b.size() == K) {
    std::copy(start->w.begin(), start->w.end(), v);
    std::copy(start->b.begin(), start->b.end(), v + K * D);
  } else if (opt.prior) {
    for (size_t i = 0; i < K * D; ++i) v[i] = opt.prior[i];
  }
  lbfgs_parameter_t param;
  lbfgs_parameter_init(&param);
  param.epsilon = opt.epsilon;
  param.max_iterations = opt.max_iterations;
  if (opt.delta > 0) {
    param.past = 3;
    param.delta = opt.delta;
  }
  lbfgsfloatval_t fx = 0;
  LogisticFit f;
  f.status = lbfgs(static_cast<int>(nv), v, &fx, lbfgs_evaluate<T>, nullptr, &p, &param);
  // Stops at the rounding limit (or the iteration cap) keep the best point reached; anything else is a parameter
  // error, i.e. a bug here.
  if (f.status < 0 && f.status != LBFGSERR_ROUNDING_ERROR && f.status != LBFGSERR_MAXIMUMITERATION &&
      f.status != LBFGSERR_MAXIMUMLINESEARCH && f.status != LBFGSERR_MINIMUMSTEP && f.status != LBFGSERR_MAXIMUMSTEP &&
      f.status != LBFGSERR_WIDTHTOOSMALL && f.status != LBFGSERR_INCREASEGRADIENT) {
    lbfgs_free(v);
    throw Error("few-shot fit", "L-BFGS failed (libLBFGS status " + std::to_string(f.status) + ")");
  }
  f.w.assign(v, v + K * D);
  f.b.assign(v + K * D, v + nv);
  if (!opt.fit_intercept) std::fill(f.b.begin(), f.b.end(), 0.0);
  f.objective = evaluate(p, v, nullptr);
  lbfgs_free(v);
  return f;
}

}  // namespace

LogisticFit fit_logistic(const LabeledEmbeddings& d, const LogisticOptions& opt, const LogisticFit* start) {
  check_data(d);
  if (!(opt.C > 0) || !std::isfinite(opt.C)) throw Error("few-shot fit", "C must be positive");
  return opt.single_precision ? minimize<float>(d, opt, start) : minimize<double>(d, opt, start);
}

double logistic_objective(const LabeledEmbeddings& d, const LogisticOptions& opt, const std::vector<double>& w,
                          const std::vector<double>& b) {
  check_data(d);
  Problem<double> p;
  init_problem(p, d, opt);
  std::vector<double> v(w);
  v.insert(v.end(), b.begin(), b.end());
  if (v.size() != d.num_classes * (d.dim + 1)) throw Error("few-shot fit", "weights are not classes x (dim + 1)");
  return evaluate(p, v.data(), nullptr);
}

std::vector<size_t> validation_rows(const LabeledEmbeddings& d, double fraction, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<size_t> out;
  auto take = [&](std::vector<size_t> rows) {
    shuffle(rows, rng);
    const auto m = static_cast<size_t>(std::floor(fraction * static_cast<double>(rows.size())));
    if (rows.size() >= 2) out.insert(out.end(), rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(m));
  };
  if (d.multi_label) {
    std::vector<size_t> rows(d.n);
    std::iota(rows.begin(), rows.end(), size_t{0});
    take(rows);
  } else {
    std::vector<std::vector<size_t>> by_class(d.num_classes);
    for (size_t i = 0; i < d.n; ++i) by_class[static_cast<size_t>(d.y[i])].push_back(i);
    for (auto& rows : by_class) take(rows);
  }
  std::sort(out.begin(), out.end());
  return out;
}

LabeledEmbeddings rows_of(const LabeledEmbeddings& d, const std::vector<size_t>& rows) {
  for (size_t r : rows)
    if (r >= d.n) throw Error("few-shot data", "row " + std::to_string(r) + " out of range");
  return subset(d, rows);
}

std::vector<size_t> select_shots(const LabeledEmbeddings& d, size_t k, uint64_t seed,
                                 std::vector<std::pair<size_t, size_t>>* short_classes) {
  std::mt19937_64 rng(seed);
  std::vector<size_t> out;
  std::vector<size_t> taken(d.num_classes, 0);
  if (d.multi_label) {
    std::vector<size_t> rows(d.n);
    std::iota(rows.begin(), rows.end(), size_t{0});
    shuffle(rows, rng);
    for (size_t r : rows) {
      const uint8_t* t = d.targets.data() + r * d.num_classes;
      bool useful = false;
      for (size_t c = 0; c < d.num_classes; ++c) useful = useful || (t[c] && taken[c] < k);
      if (!useful) continue;
      out.push_back(r);
      for (size_t c = 0; c < d.num_classes; ++c) taken[c] += t[c];
    }
  } else {
    std::vector<std::vector<size_t>> by_class(d.num_classes);
    for (size_t i = 0; i < d.n; ++i) by_class[static_cast<size_t>(d.y[i])].push_back(i);
    for (size_t c = 0; c < d.num_classes; ++c) {
      shuffle(by_class[c], rng);
      taken[c] = std::min(k, by_class[c].size());
      out.insert(out.end(), by_class[c].begin(), by_class[c].begin() + static_cast<std::ptrdiff_t>(taken[c]));
    }
  }
  if (short_classes)
    for (size_t c = 0; c < d.num_classes; ++c)
      if (taken[c] < k) short_classes->emplace_back(c, taken[c]);
  std::sort(out.begin(), out.end());
  return out;
}

Head fit_head(const LabeledEmbeddings& data, const FitOptions& opt) {
  check_data(data);
  const LabeledEmbeddings d = normalized(data);
  const bool needs_zero_shot = opt.method != FewShotMethod::Linear;
  if (needs_zero_shot) {
    if (d.multi_label)
      throw Error(std::string("--method ") + method_name(opt.method), "is single-label only (use linear)");
    if (!opt.zero_shot) throw Error("few-shot fit", "zero-shot class embeddings are required");
  }
  std::vector<size_t> count(d.num_classes, 0);
  if (d.multi_label) {
    for (size_t i = 0; i < d.n; ++i)
      for (size_t k = 0; k < d.num_classes; ++k) count[k] += d.targets[i * d.num_classes + k];
  } else {
    for (int y : d.y) ++count[static_cast<size_t>(y)];
  }
  if (opt.method == FewShotMethod::Linear) {
    for (size_t k = 0; k < d.num_classes; ++k)
      if (count[k] == 0)
        throw Error("class " + std::to_string(k), "has no samples (a linear probe could never predict it)");
  }
  if (opt.method == FewShotMethod::TipAdapter) return fit_tip_adapter(d, opt);
  std::vector<float> prior;
  if (opt.method == FewShotMethod::ZeroInit) {
    prior.resize(d.num_classes * d.dim);
    for (size_t i = 0; i < prior.size(); ++i) prior[i] = opt.scale * opt.zero_shot[i];
    if (d.n == 0) {
      Head h;
      h.method = FewShotMethod::ZeroInit;
      h.num_classes = d.num_classes;
      h.dim = d.dim;
      h.weight = prior;
      h.bias.assign(d.num_classes, 0.f);
      h.validation_score = std::numeric_limits<double>::quiet_NaN();
      return h;
    }
  }
  Head h = fit_logistic_head(d, opt, opt.method == FewShotMethod::ZeroInit ? &prior : nullptr);
  h.method = opt.method;
  return h;
}

std::vector<float> head_logits(const Head& h, const float* x) {
  std::vector<float> xn(x, x + h.dim);
  l2_normalize_rows(xn.data(), 1, h.dim);
  std::vector<float> out(h.num_classes);
  for (size_t k = 0; k < h.num_classes; ++k) {
    double s = h.bias[k];
    const float* w = h.weight.data() + k * h.dim;
    for (size_t j = 0; j < h.dim; ++j) s += static_cast<double>(w[j]) * xn[j];
    out[k] = static_cast<float>(s);
  }
  const size_t nk = h.num_keys();
  if (nk && h.alpha != 0.f) {
    std::vector<double> cache(h.num_classes, 0.0);
    for (size_t i = 0; i < nk; ++i) {
      double c = 0;
      const float* key = h.keys.data() + i * h.dim;
      for (size_t j = 0; j < h.dim; ++j) c += static_cast<double>(key[j]) * xn[j];
      const double a = std::exp(-static_cast<double>(h.beta) * (1 - c));
      const float* val = h.values.data() + i * h.num_classes;
      for (size_t k = 0; k < h.num_classes; ++k) cache[k] += a * val[k];
    }
    for (size_t k = 0; k < h.num_classes; ++k) out[k] += static_cast<float>(h.alpha * cache[k]);
  }
  return out;
}

std::vector<float> head_scores(const Head& h, const float* x) {
  std::vector<float> l = head_logits(h, x);
  if (h.multi_label) {
    for (float& v : l) v = 1.f / (1.f + std::exp(-v));
    return l;
  }
  const float m = *std::max_element(l.begin(), l.end());
  double sum = 0;
  for (float& v : l) sum += std::exp(static_cast<double>(v - m));
  for (float& v : l) v = static_cast<float>(std::exp(static_cast<double>(v - m)) / sum);
  return l;
}

void save_head(const std::string& path, const Head& h, const std::vector<std::string>& labels,
               const std::string& model_fingerprint, const std::map<std::string, std::string>& extra) {
  if (labels.size() != h.num_classes) throw Error(path, "label count does not match the head");
  std::map<std::string, std::string> meta = extra;
  meta["format"] = kHeadFormat;
  meta["method"] = method_name(h.method);
  meta["multi_label"] = h.multi_label ? "true" : "false";
  meta["labels"] = nlohmann::json(labels).dump();
  meta["model_fingerprint"] = model_fingerprint;
  meta["alpha"] = fmt_double(h.alpha);
  meta["beta"] = fmt_double(h.beta);
  meta["C"] = fmt_double(h.C);
  meta["train"] = std::to_string(h.train);
  meta["validation"] = std::to_string(h.validation);
  meta["validation_score"] = std::isfinite(h.validation_score) ? fmt_double(h.validation_score) : "null";
  const auto K = static_cast<int64_t>(h.num_classes), D = static_cast<int64_t>(h.dim);
  std::vector<io::TensorData> t = {{"weight", io::DType::F32, {K, D}, h.weight.data()},
                                   {"bias", io::DType::F32, {K}, h.bias.data()}};
  if (h.num_keys()) {
    const auto N = static_cast<int64_t>(h.num_keys());
    t.push_back({"keys", io::DType::F32, {N, D}, h.keys.data()});
    t.push_back({"values", io::DType::F32, {N, K}, h.values.data()});
  }
  io::write_safetensors(path, t, meta);
}

LoadedHead load_head(const std::string& path, const std::string& model_fingerprint) {
  io::SafeTensorsFile f(path);
  const auto& meta = f.metadata();
  auto get = [&](const std::string& key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end()) throw Error(path, "not a zeroshot head file (no \"" + key + "\" in its metadata)");
    return it->second;
  };
  if (get("format") != kHeadFormat) throw Error(path, "not a zeroshot head file (format \"" + get("format") + "\")");
  LoadedHead out;
  out.metadata = meta;
  Head& h = out.head;
  h.method = parse_method(get("method"));
  h.multi_label = get("multi_label") == "true";
  const std::string& fp = get("model_fingerprint");
  if (!model_fingerprint.empty() && fp != model_fingerprint)
    throw Error(path, "fitted for another model (fingerprint " + fp.substr(0, 16) + ", this model's " +
                          model_fingerprint.substr(0, 16) + ")");
  nlohmann::json labels = nlohmann::json::parse(get("labels"), nullptr, false);
  if (!labels.is_array() || labels.empty()) throw Error(path, "metadata \"labels\" is not a JSON array of names");
  for (const auto& l : labels) {
    if (!l.is_string()) throw Error(path, "metadata \"labels\" is not a JSON array of names");
    out.labels.push_back(l.get<std::string>());
  }
  auto num = [&](const std::string& key) {
    const std::string& s = get(key);
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end || !std::isfinite(v)) throw Error(path, "metadata \"" + key + "\" is not a number");
    return v;
  };
  h.alpha = static_cast<float>(num("alpha"));
  h.beta = static_cast<float>(num("beta"));
  h.C = num("C");
  auto tensor = [&](const std::string& name, size_t rank) -> const io::TensorView* {
    auto it = f.tensors().find(name);
    if (it == f.tensors().end()) return nullptr;
    if (it->second.dtype != io::DType::F32 || it->second.shape.size() != rank)
      throw Error(path, "tensor " + name + " is not F32 of rank " + std::to_string(rank));
    return &it->second;
  };
  const io::TensorView* w = tensor("weight", 2);
  const io::TensorView* b = tensor("bias", 1);
  if (!w || !b) throw Error(path, "missing tensor weight or bias");
  h.num_classes = static_cast<size_t>(w->shape[0]);
  h.dim = static_cast<size_t>(w->shape[1]);
  if (h.num_classes != out.labels.size() || h.dim == 0 || static_cast<size_t>(b->shape[0]) != h.num_classes)
    throw Error(path, "weight / bias shapes do not match the " + std::to_string(out.labels.size()) + " labels");
  h.weight = io::to_f32(*w);
  h.bias = io::to_f32(*b);
  const io::TensorView* keys = tensor("keys", 2);
  const io::TensorView* values = tensor("values", 2);
  if ((keys == nullptr) != (values == nullptr)) throw Error(path, "keys without values (or values without keys)");
  if (keys) {
    if (static_cast<size_t>(keys->shape[1]) != h.dim || values->shape[0] != keys->shape[0] ||
        static_cast<size_t>(values->shape[1]) != h.num_classes)
      throw Error(path, "keys / values shapes do not match the weight");
    h.keys = io::to_f32(*keys);
    h.values = io::to_f32(*values);
  }
  for (const auto* v : {&h.weight, &h.bias, &h.keys, &h.values})
    for (float x : *v)
      if (!std::isfinite(x)) throw Error(path, "a weight is not finite");
  return out;
}

void check_head_labels(const std::string& path, const LoadedHead& h, const std::vector<std::string>& labels) {
  if (labels.size() != h.labels.size())
    throw Error(path, "the head has " + std::to_string(h.labels.size()) + " labels, " + std::to_string(labels.size()) +
                          " were given");
  for (size_t k = 0; k < labels.size(); ++k)
    if (labels[k] != h.labels[k])
      throw Error(path, "label " + std::to_string(k + 1) + " is \"" + h.labels[k] + "\" in the head, \"" + labels[k] +
                            "\" was given");
}

}  // namespace zeroshot::classify
