// Each kernel against a naive double-precision reference on random inputs (odd sizes included).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "nn/gemm.h"
#include "nn/ops.h"
#include "nn/thread_pool.h"
#include "support/activations.h"

namespace zeroshot::nn {
namespace {

constexpr double kEps = 1.0 / (1 << 23);  // f32 unit roundoff * 2

std::vector<float> random_vec(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// C = alpha op(A) op(B) + beta C in double; also returns sum |terms| per element for an error bound.
void ref_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const std::vector<float>& a, int lda,
              const std::vector<float>& b, int ldb, double beta, const std::vector<float>& c, int ldc,
              std::vector<double>* out, std::vector<double>* mag) {
  out->assign(static_cast<size_t>(m) * ldc, 0.0);
  mag->assign(out->size(), 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0, s_abs = 0;
      for (int p = 0; p < k; ++p) {
        const double av = ta ? a[static_cast<size_t>(p) * lda + i] : a[static_cast<size_t>(i) * lda + p];
        const double bv = tb ? b[static_cast<size_t>(j) * ldb + p] : b[static_cast<size_t>(p) * ldb + j];
        s += av * bv;
        s_abs += std::fabs(av * bv);
      }
      const double cv = c[static_cast<size_t>(i) * ldc + j];
      (*out)[static_cast<size_t>(i) * ldc + j] = alpha * s + beta * cv;
      (*mag)[static_cast<size_t>(i) * ldc + j] = std::fabs(alpha) * s_abs + std::fabs(beta * cv);
    }
}

TEST(Gemm, AllTransposesOddSizesAndStrides) {
  std::mt19937 rng(1);
  const int sizes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 64, 64}, {50, 768 / 8, 3072 / 8}, {3, 1, 200}};
  for (const auto& s : sizes) {
    const int m = s[0], n = s[1], k = s[2];
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
        auto a = random_vec(static_cast<size_t>(ta ? k : m) * lda, rng);
        auto b = random_vec(static_cast<size_t>(tb ? n : k) * ldb, rng);
        auto c = random_vec(static_cast<size_t>(m) * ldc, rng);
        const float alpha = 0.75f, beta = -0.5f;
        std::vector<double> want, mag;
        ref_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, &want, &mag);
        std::vector<float> got = c;
        gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, got.data(), ldc);
        for (int i = 0; i < m; ++i) {
          for (int j = 0; j < ldc; ++j) {
            const size_t at = static_cast<size_t>(i) * ldc + j;
            if (j >= n) {
              EXPECT_EQ(got[at], c[at]) << "padding column written";
              continue;
            }
            EXPECT_NEAR(got[at], want[at], (k + 2) * kEps * mag[at] + 1e-30)
                << "m" << m << " n" << n << " k" << k << " ta" << ta << " tb" << tb << " at " << i << "," << j;
          }
        }
      }
  }
}

TEST(Gemm, EmptyInnerDimensionScalesC) {
  std::vector<float> c = {1, 2, 3, 4};
  gemm(false, true, 2, 2, 0, 1.0f, nullptr, 0, nullptr, 0, 0.5f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0.5f, 1, 1.5f, 2}));
  gemm(false, true, 2, 2, 0, 1.0f, nullptr, 0, nullptr, 0, 0.0f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0, 0, 0, 0}));
  EXPECT_NE(std::string(gemm_backend()), "");
}

void check_linear(int m, int k, int n, bool with_bias, ThreadPool* pool, std::mt19937& rng) {
  auto x = random_vec(static_cast<size_t>(m) * k, rng);
  auto w = random_vec(static_cast<size_t>(n) * k, rng);
  auto b = random_vec(static_cast<size_t>(n), rng);
  std::vector<float> y(static_cast<size_t>(m) * n, 12345.0f);
  linear(x.data(), m, k, w.data(), with_bias ? b.data() : nullptr, n, y.data(), pool);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = with_bias ? b[j] : 0.0, mag = std::fabs(s);
      for (int p = 0; p < k; ++p) {
        s += static_cast<double>(x[static_cast<size_t>(i) * k + p]) * w[static_cast<size_t>(j) * k + p];
        mag += std::fabs(static_cast<double>(x[static_cast<size_t>(i) * k + p]) * w[static_cast<size_t>(j) * k + p]);
      }
      ASSERT_NEAR(y[static_cast<size_t>(i) * n + j], s, (k + 2) * kEps * mag)
          << "m" << m << " k" << k << " n" << n << " bias " << with_bias << " threads " << (pool ? pool->threads() : 1);
    }
}

TEST(Linear, MatchesReferenceSerialAndThreaded) {
  std::mt19937 rng(2);
  ThreadPool two(2), three(3);
  const int sizes[][3] = {{1, 1, 1}, {5, 7, 3}, {50, 96, 384}, {77, 64, 257}, {3, 301, 129}, {400, 96, 33}};
  for (const auto& s : sizes)
    for (bool bias : {false, true})
      for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &two, &three})
        check_linear(s[0], s[1], s[2], bias, pool, rng);
}

void ref_layer_norm(const std::vector<float>& x, int rows, int dim, const std::vector<float>& g,
                    const std::vector<float>& b, double eps, std::vector<double>* out) {
  out->resize(x.size());
  for (int r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int i = 0; i < dim; ++i) mean += x[static_cast<size_t>(r) * dim + i];
    mean /= dim;
    for (int i = 0; i < dim; ++i) {
      const double d = x[static_cast<size_t>(r) * dim + i] - mean;
      var += d * d;
    }
    var /= dim;
    for (int i = 0; i < dim; ++i)
      (*out)[static_cast<size_t>(r) * dim + i] =
          (x[static_cast<size_t>(r) * dim + i] - mean) / std::sqrt(var + eps) * g[i] + b[i];
  }
}

TEST(LayerNorm, MatchesReferenceIncludingLargeMean) {
  std::mt19937 rng(3);
  ThreadPool pool(2);
  for (int dim : {1, 3, 64, 77, 773}) {
    for (float offset : {0.0f, 1000.0f}) {
      const int rows = 37;
      auto x = random_vec(static_cast<size_t>(rows) * dim, rng, offset - 0.05f, offset + 0.05f);
      auto g = random_vec(dim, rng, 0.5f, 2.0f);
      auto b = random_vec(dim, rng);
      std::vector<double> want;
      ref_layer_norm(x, rows, dim, g, b, 1e-5, &want);
      for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
        std::vector<float> y(x.size());
        layer_norm(x.data(), rows, dim, g.data(), b.data(), 1e-5f, y.data(), p);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_NEAR(y[i], want[i], 4e-6 * (1 + std::fabs(want[i]))) << "dim " << dim << " offset " << offset;
        // In place gives the same bits.
        std::vector<float> z = x;
        layer_norm(z.data(), rows, dim, g.data(), b.data(), 1e-5f, z.data(), p);
        EXPECT_EQ(z, y);
      }
    }
  }
}

TEST(Softmax, MatchesReferenceWithLargeValuesAndMask) {
  std::mt19937 rng(4);
  for (int cols : {1, 2, 9, 50, 77}) {
    for (float scale : {1.0f, 100.0f, 1e4f}) {
      auto x = random_vec(static_cast<size_t>(cols), rng, -scale, scale);
      for (int valid : {cols, (cols + 1) / 2, 1}) {
        std::vector<float> got = x;
        softmax_row(got.data(), valid, cols);
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < valid; ++j) mx = std::max(mx, static_cast<double>(x[j]));
        for (int j = 0; j < valid; ++j) sum += std::exp(x[j] - mx);
        double total = 0;
        for (int j = 0; j < cols; ++j) {
          ASSERT_TRUE(std::isfinite(got[j]));
          const double want = j < valid ? std::exp(x[j] - mx) / sum : 0.0;
          ASSERT_NEAR(got[j], want, 1e-6 * (1 + want)) << "cols " << cols << " scale " << scale << " valid " << valid;
          total += got[j];
        }
        EXPECT_NEAR(total, 1.0, 1e-5);
      }
    }
  }
}

TEST(Activations, MatchReferenceFormulas) {
  std::vector<float> x;
  for (float v = -12.0f; v <= 12.0f; v += 0.0371f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-8f, -1e-8f, 50.0f, -50.0f, 100.0f, -100.0f, 1e4f, -1e4f}) x.push_back(v);
  const auto ref = zeroshot::testing::act_ref;
  ThreadPool pool(2);
  for (Act a : {Act::QuickGelu, Act::Gelu, Act::GeluTanh, Act::Relu, Act::Silu}) {
    // Long enough to be split across the pool.
    std::vector<float> big;
    while (big.size() < 100000) big.insert(big.end(), x.begin(), x.end());
    std::vector<float> got = big;
    activate(a, got.data(), static_cast<long>(got.size()), &pool);
    for (size_t i = 0; i < big.size(); ++i) {
      const double want = ref(a, big[i]);
      ASSERT_NEAR(got[i], want, 2e-6 * std::fabs(want) + 1e-7) << "act " << static_cast<int>(a) << " x " << big[i];
    }
  }
}

TEST(AddInplace, Adds) {
  std::mt19937 rng(5);
  ThreadPool pool(2);
  auto a = random_vec(200001, rng), b = random_vec(200001, rng);
  std::vector<float> y = a;
  add_inplace(y.data(), b.data(), static_cast<long>(y.size()), &pool);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], a[i] + b[i]);
}

// Naive attention in double: q, k, v [sum(lens), heads*hd], sequences back to back.
std::vector<double> ref_attention(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                                  const std::vector<int>& lens, int heads, int hd, double scale, bool causal) {
  const int dim = heads * hd;
  std::vector<double> out(q.size(), 0.0);
  size_t start = 0;
  for (int seq : lens) {
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < seq; ++i) {
        std::vector<double> s(seq, -INFINITY);
        double mx = -INFINITY;
        for (int j = 0; j < seq; ++j) {
          if (causal && j > i) continue;
          double d = 0;
          for (int c = 0; c < hd; ++c)
            d += static_cast<double>(q[(start + i) * dim + h * hd + c]) * k[(start + j) * dim + h * hd + c];
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < seq; ++j) sum += (s[j] == -INFINITY) ? 0.0 : std::exp(s[j] - mx);
        for (int j = 0; j < seq; ++j) {
          if (s[j] == -INFINITY) continue;
          const double p = std::exp(s[j] - mx) / sum;
          for (int c = 0; c < hd; ++c) out[(start + i) * dim + h * hd + c] += p * v[(start + j) * dim + h * hd + c];
        }
      }
    start += static_cast<size_t>(seq);
  }
  return out;
}

TEST(Attention, MatchesReferenceCausalFullAndRagged) {
  std::mt19937 rng(6);
  ThreadPool pool(2);
  struct Shape {
    std::vector<int> lens;
    int heads, hd;
  };
  const Shape shapes[] = {{{1}, 1, 1},       {{7, 7}, 3, 5},           {{50, 50, 50}, 4, 24},
                          {{13, 13}, 6, 12}, {{3, 1, 7, 5, 77}, 2, 8}, {{}, 2, 4}};
  for (const auto& s : shapes) {
    int rows = 0;
    for (int l : s.lens) rows += l;
    const int dim = s.heads * s.hd;
    const size_t n = static_cast<size_t>(rows) * dim;
    auto q = random_vec(n, rng, -2, 2), k = random_vec(n, rng, -2, 2), v = random_vec(n, rng);
    for (bool causal : {false, true})
      for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
        const float scale = static_cast<float>(1.0 / std::sqrt(s.hd));
        std::vector<float> out(n, 777.0f);
        attention(q.data(), k.data(), v.data(), s.lens, s.heads, s.hd, scale, causal, out.data(), p);
        auto want = ref_attention(q, k, v, s.lens, s.heads, s.hd, scale, causal);
        for (size_t i = 0; i < n; ++i)
          ASSERT_NEAR(out[i], want[i], 2e-6) << "rows " << rows << " heads " << s.heads << " causal " << causal;
        if (causal) {
          // The first row of every sequence attends to itself only.
          size_t start = 0;
          for (int l : s.lens) {
            for (int c = 0; c < dim; ++c) EXPECT_NEAR(out[start * dim + c], v[start * dim + c], 1e-6);
            start += static_cast<size_t>(l);
          }
        }
      }
  }
}

TEST(SelfAttention, MatchesReferenceWithProjections) {
  std::mt19937 rng(7);
  ThreadPool pool(2);
  const std::vector<int> lens = {9, 4, 9};
  const int heads = 3, hd = 8, dim = heads * hd, rows = 22;
  const size_t n = static_cast<size_t>(rows) * dim;
  auto x = random_vec(n, rng);
  std::vector<std::vector<float>> ws, bs;
  for (int i = 0; i < 4; ++i) {
    ws.push_back(random_vec(static_cast<size_t>(dim) * dim, rng, -0.3f, 0.3f));
    bs.push_back(random_vec(dim, rng, -0.1f, 0.1f));
  }
  AttentionWeights w;
  w.q_w = ws[0].data(), w.q_b = bs[0].data(), w.k_w = ws[1].data(), w.k_b = bs[1].data();
  w.v_w = ws[2].data(), w.v_b = bs[2].data(), w.out_w = ws[3].data(), w.out_b = bs[3].data();
  auto proj = [&](const std::vector<float>& in, int which) {
    std::vector<double> out(n);
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < dim; ++j) {
        double s = bs[which][j];
        for (int c = 0; c < dim; ++c)
          s += static_cast<double>(in[static_cast<size_t>(r) * dim + c]) * ws[which][static_cast<size_t>(j) * dim + c];
        out[static_cast<size_t>(r) * dim + j] = s;
      }
    return out;
  };
  auto to_f = [](const std::vector<double>& d) { return std::vector<float>(d.begin(), d.end()); };
  for (bool causal : {false, true}) {
    auto ctx = ref_attention(to_f(proj(x, 0)), to_f(proj(x, 1)), to_f(proj(x, 2)), lens, heads, hd, 1.0 / std::sqrt(hd),
                             causal);
    auto want = proj(to_f(ctx), 3);
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      std::vector<float> y(n);
      self_attention(x.data(), lens, dim, heads, w, causal, y.data(), p);
      for (size_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], want[i], 1e-5) << "causal " << causal;
    }
  }
}

TEST(ThreadPool, EveryIndexExactlyOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.threads(), threads);
    for (int n : {0, 1, 2, 3, 17, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int i) { hits[static_cast<size_t>(i)]++; });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n " << n << " i " << i;
    }
  }
  EXPECT_GE(ThreadPool(0).threads(), 1);
}

TEST(ThreadPool, ConcurrentCallersAndNesting) {
  ThreadPool pool(2);
  std::atomic<long> total{0};
  std::vector<std::thread> callers;
  callers.reserve(4);
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep)
        pool.parallel_for(8, [&](int) { pool.parallel_for(3, [&](int j) { total += j + 1; }); });
    });
  for (auto& c : callers) c.join();
  EXPECT_EQ(total.load(), 4L * 50 * 8 * 6);
}

TEST(ThreadPool, RethrowsTaskException) {
  ThreadPool pool(2);
  std::atomic<int> ran{0};
  EXPECT_THROW(pool.parallel_for(16,
                                 [&](int i) {
                                   ran++;
                                   if (i == 5) throw std::runtime_error("boom");
                                 }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 16);  // the others still ran; the pool stays usable
  std::atomic<int> after{0};
  pool.parallel_for(4, [&](int) { after++; });
  EXPECT_EQ(after.load(), 4);
}

TEST(ThreadPool, ParallelRangesCoverExactly) {
  ThreadPool pool(3);
  for (long total : {0L, 1L, 5L, 100L, 1001L})
    for (long min_chunk : {1L, 7L, 1000L}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(total));
      parallel_ranges(&pool, total, min_chunk, [&](long b, long e) {
        for (long i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (long i = 0; i < total; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1);
    }
}

// Every item once, no range below min_chunk but possibly the last, ranges shrinking (the point of the split), and
// the same ranges for the same arguments (the callers' outputs must not depend on timing).
TEST(ThreadPool, ParallelGuidedCoversExactlyWithShrinkingRanges) {
  ThreadPool pool(2);
  for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool})
    for (long total : {0L, 1L, 5L, 24L, 96L, 1576L})
      for (long min_chunk : {1L, 8L, 1000L}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(total));
        std::mutex mu;
        std::vector<std::pair<long, long>> ranges;
        parallel_guided(p, total, min_chunk, [&](long b, long e) {
          for (long i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
          std::lock_guard<std::mutex> lock(mu);
          ranges.emplace_back(b, e);
        });
        for (long i = 0; i < total; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1);
        std::sort(ranges.begin(), ranges.end());
        for (size_t r = 0; r < ranges.size(); ++r) {
          const long len = ranges[r].second - ranges[r].first;
          if (r + 1 < ranges.size()) {
            EXPECT_GE(len, min_chunk) << total << " " << min_chunk;
            EXPECT_GE(len, ranges[r + 1].second - ranges[r + 1].first) << total << " " << min_chunk;
          }
        }
        if (p && total == 1576 && min_chunk == 8) {
          EXPECT_GT(ranges.size(), 8u);  // several ranges per thread, not a static halving
        }
      }
}

}  // namespace
}  // namespace zeroshot::nn
