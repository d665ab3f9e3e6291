#include "nn/int4_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>

#include "nn/gemm.h"
#include "nn/gemm_common.h"
#include "nn/int4_kernels.h"
#include "nn/kernels.h"
#include "zeroshot/error.h"

namespace zeroshot::nn {

namespace {

constexpr long kAChunkBytes = 1L << 20;  // activation rows per dequantized panel: they stay in L2 (kernels_avx512)
constexpr int kGenericCols = 64;         // columns dequantized at a time on the generic path

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

// Per thread, grown on demand and kept: a dequantized panel (64-byte aligned for the f32 micro-kernel), normalized
// activation rows, and the generic path's block of weights and products.
struct Scratch {
  std::unique_ptr<float, AlignedFree> panel;
  size_t panel_floats = 0;
  std::vector<float> rows, row, wblock, prod;
  float* panel_buf(size_t n) {
    if (panel_floats < n) {
      void* p = std::aligned_alloc(64, (n * sizeof(float) + 63) & ~size_t{63});
      if (!p) throw Error("int4", "out of memory for a weight panel");
      panel.reset(static_cast<float*>(p));
      panel_floats = n;
    }
    return panel.get();
  }
};
Scratch& scratch() { return thread_scratch<Scratch>(); }

int nibble(const Int4Weights& q, int j, int i) {
  const uint8_t b = q.q[static_cast<size_t>(j) * q.row_bytes() + static_cast<size_t>(i) / 2];
  return (i & 1) ? b >> 4 : b & 0xF;
}

// Rows [j0, j1) of the dequantized weights into dst ([j1 - j0, k]).
void dequantize_rows(const Int4Weights& q, int j0, int j1, float* dst) {
  const int g = q.groups();
  for (int j = j0; j < j1; ++j, dst += q.k)
    for (int i = 0; i < q.k; ++i) {
      const size_t p = static_cast<size_t>(j) * g + static_cast<size_t>(i / q.group);
      // fma: one rounding, as the AVX-512 dequantization (vfmadd) computes it.
      dst[i] = std::fma(static_cast<float>(nibble(q, j, i)), q.scale[p], q.minimum[p]);
    }
}

}  // namespace

bool int4_group_supported(int group) { return group == 32 || group == 64 || group == 128; }

Int4Weights quantize_int4(const float* w, int n, int k, int group) {
  if (n <= 0 || k <= 0 || !w)
    throw Error("int4", "empty weight [" + std::to_string(n) + ", " + std::to_string(k) + "]");
  if (!int4_group_supported(group)) throw Error("int4", "unsupported group size " + std::to_string(group));
  Int4Weights q;
  q.n = n;
  q.k = k;
  q.group = group;
  const int groups = q.groups();
  q.q.assign(static_cast<size_t>(n) * q.row_bytes(), 0);
  q.scale.assign(static_cast<size_t>(n) * groups, 0.0f);
  q.minimum.assign(static_cast<size_t>(n) * groups, 0.0f);
  for (int j = 0; j < n; ++j) {
    const float* row = w + static_cast<size_t>(j) * k;
    uint8_t* dst = q.q.data() + static_cast<size_t>(j) * q.row_bytes();
    for (int gi = 0; gi < groups; ++gi) {
      const int i0 = gi * group, i1 = std::min(k, i0 + group);
      float lo = row[i0], hi = row[i0];
      for (int i = i0; i < i1; ++i) {
        lo = std::min(lo, row[i]);
        hi = std::max(hi, row[i]);
      }
      float s = (hi - lo) / 15.0f;
      // Non-finite weights (garbage in) give a zero group rather than undefined conversions.
      if (!std::isfinite(lo) || !std::isfinite(hi) || !std::isfinite(s)) lo = s = 0.0f;
      const size_t p = static_cast<size_t>(j) * groups + static_cast<size_t>(gi);
      q.scale[p] = s;
      q.minimum[p] = lo;
      if (s == 0.0f) continue;  // a constant group: every q is 0
      for (int i = i0; i < i1; ++i) {
        // Round half to even by adding and removing 1.5 * 2^23 (exact here: 0 <= v <= 15), as quantize_int8.
        const float v = (row[i] - lo) / s;
        const float r = (v + 12582912.0f) - 12582912.0f;
        const int u = static_cast<int>(std::clamp(std::isfinite(r) ? r : 0.0f, 0.0f, 15.0f));
        dst[i / 2] = static_cast<uint8_t>(dst[i / 2] | (u << ((i & 1) * 4)));
      }
    }
  }
  return q;
}

std::vector<float> dequantize_int4(const Int4Weights& q) {
  std::vector<float> w(static_cast<size_t>(q.n) * q.k);
  dequantize_rows(q, 0, q.n, w.data());
  return w;
}

void check_int4(const Int4Weights& q, const std::string& what) {
  if (q.n <= 0 || q.k <= 0) throw Error(what, "empty int4 weight");
  if (!int4_group_supported(q.group))
    throw Error(what, "unsupported int4 group size " + std::to_string(q.group) + " (32, 64 or 128)");
  const size_t params = static_cast<size_t>(q.n) * q.groups();
  if (q.q.size() != static_cast<size_t>(q.n) * q.row_bytes() || q.scale.size() != params || q.minimum.size() != params)
    throw Error(what, "int4 weight sizes do not match [" + std::to_string(q.n) + ", " + std::to_string(q.k) +
                          "] in groups of " + std::to_string(q.group));
  for (size_t i = 0; i < params; ++i)
    if (!std::isfinite(q.scale[i]) || q.scale[i] < 0.0f || !std::isfinite(q.minimum[i]))
      throw Error(what, "invalid int4 scale or minimum");
}

Int4Packed pack_int4(Int4Weights q, KernelChoice kc) {
  check_int4(q, "int4");
  Int4Packed L;
  L.n = q.n;
  L.k = q.k;
  L.group = q.group;
  L.avx = kc == KernelChoice::Auto && avx512_kernels(Precision::F32);
  if (!L.avx) {
    L.plain = std::move(q);
    return L;
  }
  const int np = kern::panels(q.n), groups = q.groups();
  L.panels.assign(static_cast<size_t>(np) * q.k * 16, 0);
  L.panel_params.assign(static_cast<size_t>(np) * groups * 64, 0.0f);
  for (int j = 0; j < q.n; ++j) {
    const int p = j / kern::kNR, c = j % kern::kNR;
    uint8_t* col = L.panels.data() + static_cast<size_t>(p) * q.k * 16 + (c & 15);
    const int shift = c < 16 ? 0 : 4;
    for (int i = 0; i < q.k; ++i) col[static_cast<size_t>(i) * 16] |= static_cast<uint8_t>(nibble(q, j, i) << shift);
    float* prm = L.panel_params.data() + static_cast<size_t>(p) * groups * 64 + c;
    for (int gi = 0; gi < groups; ++gi) {
      prm[static_cast<size_t>(gi) * 64] = q.scale[static_cast<size_t>(j) * groups + gi];
      prm[static_cast<size_t>(gi) * 64 + 32] = q.minimum[static_cast<size_t>(j) * groups + gi];
    }
  }
  return L;
}

void int4_forward(const Int4Packed& L, const float* bias, const float* x, int m, long ldx, float* y, long ldy,
                  ThreadPool* pool, LinearPost post, const RowLayerNorm* norm) {
  if (m <= 0) return;
  const int n = L.n, k = L.k;
  int threads = pool ? pool->threads() : 1;
  if (static_cast<long>(m) * n * k < kMinParallelGemm) threads = 1;
  Scratch& s = scratch();

  if (L.avx) {
    const float* a = x;
    long lda = ldx;
    if (norm) {
      lda = (k + 15) & ~15L;
      grow(s.rows, static_cast<size_t>(m) * lda);
      grow(s.row, static_cast<size_t>(k));
      const kern::avx512::RowNorm rn{norm->gamma, norm->beta, norm->eps};
      kern::avx512::convert_a(Precision::F32, x, k, ldx, 0, m, reinterpret_cast<uint32_t*>(s.rows.data()), lda, nullptr,
                              nullptr, &rn, s.row.data());
      a = s.rows.data();
    }
    kern::GemmCall g;
    g.prec = Precision::F32;
    g.m = m;
    g.ku = k;
    g.a = reinterpret_cast<const uint32_t*>(a);
    g.lda = lda;
    g.has_act = post.kind == LinearPost::Activate;
    g.act = post.act;
    g.accumulate = post.kind == LinearPost::Accumulate;
    g.ldc = ldy;
    const int np = kern::panels(n), blocks = kern::row_blocks(m), groups = (k + L.group - 1) / L.group;
    const int rb_chunk = static_cast<int>(std::max(1L, kAChunkBytes / (static_cast<long>(k) * kern::kMR * 4)));
    auto run = [&](int p0, int p1) {
      float* buf = scratch().panel_buf(static_cast<size_t>(k) * kern::kNR);
      for (int c0 = 0; c0 < blocks; c0 += rb_chunk) {
        const int c1 = std::min(blocks, c0 + rb_chunk);
        for (int p = p0; p < p1; ++p) {
          kern::avx512::dequant_int4_panel(L.panels.data() + static_cast<size_t>(p) * k * 16,
                                           L.panel_params.data() + static_cast<size_t>(p) * groups * 64, k, L.group,
                                           buf);
          kern::GemmCall gp = g;
          gp.n = std::min(kern::kNR, n - p * kern::kNR);
          gp.b = reinterpret_cast<const uint8_t*>(buf);
          gp.bias = bias ? bias + p * kern::kNR : nullptr;
          gp.c = y + p * kern::kNR;
          kern::avx512::gemm(gp, 0, 1, c0, c1);
        }
      }
    };
    if (threads <= 1) {
      run(0, np);
    } else {
      const int chunks = std::min(np, threads * kChunksPerThread);
      pool->parallel_for(chunks, [&](int c) {
        run(static_cast<int>(static_cast<long>(np) * c / chunks),
            static_cast<int>(static_cast<long>(np) * (c + 1) / chunks));
      });
    }
    return;
  }

  // Generic path: blocks of columns dequantized to f32, through OpenBLAS, then the epilogue.
  if (norm) {
    grow(s.rows, static_cast<size_t>(m) * k);
    for (int r = 0; r < m; ++r)
      layer_norm(x + r * ldx, 1, k, norm->gamma, norm->beta, norm->eps, s.rows.data() + static_cast<size_t>(r) * k,
                 nullptr);
    x = s.rows.data();
    ldx = k;
  }
  const int nblk = (n + kGenericCols - 1) / kGenericCols;
  auto run = [&](int blk) {
    Scratch& t = scratch();
    const int j0 = blk * kGenericCols, nc = std::min(kGenericCols, n - j0);
    grow(t.wblock, static_cast<size_t>(nc) * k);
    grow(t.prod, static_cast<size_t>(m) * nc);
    dequantize_rows(L.plain, j0, j0 + nc, t.wblock.data());
    gemm(false, true, m, nc, k, 1.0f, x, static_cast<int>(ldx), t.wblock.data(), k, 0.0f, t.prod.data(), nc);
    for (int r = 0; r < m; ++r) {
      float* yr = y + static_cast<long>(r) * ldy + j0;
      for (int j = 0; j < nc; ++j) {
        float v = t.prod[static_cast<size_t>(r) * nc + j];
        if (bias) v += bias[j0 + j];
        if (post.kind == LinearPost::Accumulate) yr[j] += v;
        else yr[j] = post.kind == LinearPost::Activate ? epilogue_act(post.act, v) : v;
      }
    }
  };
  if (threads <= 1 || nblk <= 1) {
    for (int b = 0; b < nblk; ++b) run(b);
  } else {
    pool->parallel_for(nblk, run);
  }
}

}  // namespace zeroshot::nn
