#include "nn/linear.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

#include "nn/gemm.h"
#include "nn/gemm_common.h"
#include "nn/int4_gemm.h"
#include "nn/kernels.h"
#include "zeroshot/error.h"

namespace zeroshot::nn {

// ---------------------------------------------------------------------------------------------- CPU dispatch

namespace kern {

namespace {

bool forced_generic() {
  const char* v = std::getenv("ZEROSHOT_KERNELS");
  return v && std::string(v) == "generic";
}

struct Features {
  bool avx512 = false, bf16 = false, vnni = false;
  Features() {
    if (forced_generic()) return;
    __builtin_cpu_init();
    // libgcc also checks that the OS saves the zmm state (XCR0) before reporting these.
    avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
    vnni = avx512 && __builtin_cpu_supports("avx512vnni");
  }
};

const Features& features() {
  static const Features f;
  return f;
}

}  // namespace

std::atomic<bool> forced{false};

bool cpu_has_avx512() { return !forced.load(std::memory_order_relaxed) && features().avx512; }
bool cpu_has_avx512_bf16() { return !forced.load(std::memory_order_relaxed) && features().bf16; }
bool cpu_has_avx512_vnni() { return !forced.load(std::memory_order_relaxed) && features().vnni; }

}  // namespace kern

void force_generic_kernels(bool on) { kern::forced.store(on); }

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::F32: return "f32";
    case Precision::BF16: return "bf16";
    case Precision::Int8: return "int8";
    case Precision::Int4: return "int4";
  }
  return "?";
}

bool avx512_kernels(Precision p) {
  switch (p) {
    case Precision::F32: return kern::cpu_has_avx512();
    case Precision::BF16: return kern::cpu_has_avx512_bf16();
    case Precision::Int8: return kern::cpu_has_avx512_vnni();
    case Precision::Int4: return kern::cpu_has_avx512();  // f32 FMA over dequantized panels
  }
  return false;
}

// ---------------------------------------------------------------------------------------------- conversions

uint16_t f32_to_bf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40);  // NaN: keep it quiet
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}

float bf16_round(float x) {
  const uint32_t b = static_cast<uint32_t>(f32_to_bf16(x)) << 16;
  float r;
  std::memcpy(&r, &b, 4);
  return r;
}

namespace {

// Per-row activation quantization, bit for bit what kern::avx512::convert_a computes.
void quant_params(const float* x, int k, float* scale, int* zp) {
  float lo = 0.0f, hi = 0.0f;
  for (int i = 0; i < k; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  float s = (hi - lo) / 255.0f;
  if (!(s > 0.0f) || !(s < 3.0e38f)) s = 1.0f;
  int z = static_cast<int>(std::nearbyint(-lo / s));
  *scale = s;
  *zp = std::clamp(z, 0, 255);
}

int quantize_u8(float x, float inv, int zp) {
  const float v = x * inv;
  // cvtps2dq semantics: nearest even; out of int range (or NaN) gives INT_MIN, then clamped.
  const long r = std::isfinite(v) && std::fabs(v) < 2.0e9f ? std::lrint(v) : INT32_MIN;
  return static_cast<int>(std::clamp<long>(r + zp, 0, 255));
}

// Activation values below which the conversion (layer norm, bf16 / int8) runs in the calling thread: it takes
// microseconds, less than waking a worker (ViT-B/32 int8 batch 1, 3 alternating runs: 20-24 images/s serial
// against 16-21 with the conversions of every GEMM split at 32K values).
constexpr long kMinParallelPack = 1L << 20;
// Rows per range at least when activations are converted in parallel (a row is 3-12 KB of work).
constexpr long kMinGuidedRows = 8;
// Weights below which a layer is packed by the calling thread alone (~0.1 ms of work).
constexpr long kMinParallelWeights = 1L << 16;

// Per calling thread, grown on demand and kept: the packed activations of one GEMM.
struct Scratch {
  std::vector<uint32_t> a;
  std::vector<float> scale, tmp, normed, row;
  std::vector<int32_t> zp;
};
Scratch& scratch() { return thread_scratch<Scratch>(); }

// Maps the pages of a fresh buffer of `bytes` in one call (MADV_POPULATE_WRITE, Linux 5.14; best effort) instead
// of one page fault per 4 KB page as the packing first writes them.
void prefault(void* p, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0 || bytes < (size_t{1} << 20)) return;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~static_cast<uintptr_t>(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~static_cast<uintptr_t>(page - 1);
  if (e > b) (void)madvise(reinterpret_cast<void*>(b), e - b, MADV_POPULATE_WRITE);
#else
  (void)p;
  (void)bytes;
#endif
}

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

Int8Weights quantize_int8(const float* w, int n, int k) {
  Int8Weights q;
  q.n = n;
  q.k = k;
  q.q.resize(static_cast<size_t>(n) * k);
  q.scale.resize(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) {
    const float* row = w + static_cast<size_t>(j) * k;
    float mx = 0.0f;
    for (int i = 0; i < k; ++i) mx = std::max(mx, std::fabs(row[i]));
    const float s = mx > 0.0f && std::isfinite(mx) ? mx / 127.0f : 1.0f;
    q.scale[static_cast<size_t>(j)] = s;
    int8_t* dst = q.q.data() + static_cast<size_t>(j) * k;
    for (int i = 0; i < k; ++i) {
      // Round half to even by adding and removing 1.5 * 2^23 (exact for |v| < 2^22; here |v| <= 127): the same
      // as nearbyint in the default rounding mode, without a libm call per weight.
      const float v = row[i] / s;
      const float r = (v + 12582912.0f) - 12582912.0f;
      dst[i] = static_cast<int8_t>(std::isfinite(r) ? std::clamp(r, -127.0f, 127.0f) : 0.0f);
    }
  }
  return q;
}

// ---------------------------------------------------------------------------------------------- PackedLinear

struct PackedLinear::Impl {
  int n = 0, k = 0;
  Precision prec = Precision::F32;
  bool avx = false;
  std::vector<float> bias_own;
  const float* bias = nullptr;
  // AVX-512 path: b_panels points into `panels` or into memory the caller keeps (from_panels)
  std::unique_ptr<uint8_t, AlignedFree> panels;
  const uint8_t* b_panels = nullptr;
  size_t panel_bytes = 0;
  // Int8: per column, padded to whole panels: the scale and the sum of q over k. They follow the panels in the same
  // block (panel_bytes counts them), so that the block is all a packed weights file needs to store and map back.
  const float* b_scale = nullptr;
  const int32_t* b_colsum = nullptr;
  // Generic path: f32 weights [n, k] (in place for F32, else the rounded / quantized values), int8 scales.
  const float* w = nullptr;
  std::vector<float> w_own;
  std::vector<float> w_scale;

  bool borrowed = false;
  std::unique_ptr<Int4Packed> int4;  // Int4: its own packing and forward (nn/int4_gemm.h)

  // Splits [0, count) over pool's threads when the layer is big enough to pay for waking them.
  void pack_parallel(ThreadPool* pool, int count, const std::function<void(long, long)>& fn) const {
    if (pool && static_cast<long>(n) * k >= kMinParallelWeights) parallel_ranges(pool, count, 1, fn);
    else fn(0, count);
  }

  ThreadPool* pack_pool = nullptr;

  void init(const float* wp, const float* bp, int n_, int k_, Precision p, KernelChoice kc) {
    if (n_ <= 0 || k_ <= 0 || !wp)
      throw Error("PackedLinear", "empty weight [" + std::to_string(n_) + ", " + std::to_string(k_) + "]");
    n = n_;
    k = k_;
    prec = p;
    if (p == Precision::Int4) return init_int4(quantize_int4(wp, n, k), bp, kc);
    avx = kc == KernelChoice::Auto && avx512_kernels(p);
    set_bias(bp, avx || p != Precision::F32);
    if (avx) {
      switch (p) {
        case Precision::F32: pack_f32(wp); break;
        case Precision::BF16: pack_bf16(wp); break;
        case Precision::Int8: pack_int8(quantize_int8(wp, n, k)); break;
        case Precision::Int4: break;  // init_int4
      }
      return;
    }
    switch (p) {
      case Precision::F32:
        w = wp;
        borrowed = true;
        break;
      case Precision::BF16:
        w_own.resize(static_cast<size_t>(n) * k);
        for (size_t i = 0; i < w_own.size(); ++i) w_own[i] = bf16_round(wp[i]);
        w = w_own.data();
        break;
      case Precision::Int8: generic_int8(quantize_int8(wp, n, k)); break;
      case Precision::Int4: break;  // init_int4
    }
  }

  void init_int4(Int4Weights q, const float* bp, KernelChoice kc) {
    n = q.n;
    k = q.k;
    prec = Precision::Int4;
    set_bias(bp, true);
    int4 = std::make_unique<Int4Packed>(pack_int4(std::move(q), kc));
    avx = int4->avx;
  }

  void set_bias(const float* b, bool copy) {
    if (!b) return;
    if (copy) {
      bias_own.assign(b, b + n);
      bias = bias_own.data();
    } else {
      bias = b;
    }
  }

  // No transparent huge pages for the panels: tried (2 MB-aligned, MADV_HUGEPAGE), the kernel's zeroing of each huge
  // page on this VM made the load's system time erratic (0.14 to 4.2 s for ViT-B/32, clear_page_erms in perf).
  uint8_t* alloc_panels() {
    panel_bytes = packed_panel_bytes(n, k, prec);
    void* p = std::aligned_alloc(64, panel_bytes);
    if (!p) throw Error("PackedLinear", "out of memory for " + std::to_string(panel_bytes) + " bytes of weights");
    prefault(p, panel_bytes);
    // Every element is written by the packing below; only the padding (columns past n, the tail of the last
    // unit) needs zeros.
    if (n % kern::kNR != 0 || k % kern::unit_of(prec) != 0) std::memset(p, 0, panel_bytes);
    panels.reset(static_cast<uint8_t*>(p));
    b_panels = panels.get();
    return panels.get();
  }

  // Panel p holds columns [32p, 32p + 32) as [ku][32 columns][unit]: element i of column j lies at
  // ((i / unit) * 32 + j % 32) * unit + i % unit of its panel. Written in order, one 128-byte panel row (one unit
  // of 32 columns) at a time, reading the 32 weight rows side by side (32 sequential streams). Filling the panel one
  // weight row at a time instead (each store on a different cache line) cost a ViT-B/32 classify 0.1 s more user
  // time (perf: PackedLinear::Impl::init 35% of the process against 16%).
  template <class T, class Convert>
  void pack_rows(const float* src, T* dst, int unit, Convert convert) {
    const int ku = kern::units(prec, k);
    pack_parallel(pack_pool, kern::panels(n), [&](long p0, long p1) {
      for (long p = p0; p < p1; ++p) {
        const int c1 = std::min(kern::kNR, n - static_cast<int>(p) * kern::kNR);
        const float* rows = src + static_cast<size_t>(p) * kern::kNR * k;
        T* out = dst + static_cast<size_t>(p) * ku * kern::kNR * unit;
        for (int u = 0; u < ku; ++u, out += static_cast<size_t>(kern::kNR) * unit) {
          const int i0 = u * unit, e1 = std::min(unit, k - i0);
          for (int c = 0; c < c1; ++c)
            for (int e = 0; e < e1; ++e) out[c * unit + e] = convert(rows[static_cast<size_t>(c) * k + i0 + e]);
        }
      }
    });
  }

  void pack_f32(const float* src) {
    pack_rows(src, reinterpret_cast<float*>(alloc_panels()), 1, [](float v) { return v; });
  }

  void pack_bf16(const float* src) {
    pack_rows(src, reinterpret_cast<uint16_t*>(alloc_panels()), 2, [](float v) { return f32_to_bf16(v); });
  }

  // Points b_scale / b_colsum at the per-column scales and sums of an Int8 block of panels (alloc_panels /
  // from_panels), after its panels; returns their offset in the block.
  size_t int8_columns(const uint8_t* block) {
    const size_t padded = static_cast<size_t>(kern::panels(n)) * kern::kNR;
    const size_t panels_only = panel_bytes - padded * (sizeof(float) + sizeof(int32_t));
    b_scale = reinterpret_cast<const float*>(block + panels_only);
    b_colsum = reinterpret_cast<const int32_t*>(block + panels_only + padded * sizeof(float));
    return panels_only;
  }

  void pack_int8(const Int8Weights& q) {
    uint8_t* dst = alloc_panels();
    const size_t padded = static_cast<size_t>(kern::panels(n)) * kern::kNR;
    auto* scale = reinterpret_cast<float*>(dst + int8_columns(dst));
    auto* colsum = reinterpret_cast<int32_t*>(scale + padded);
    std::fill(scale, scale + padded, 0.0f);
    std::fill(colsum, colsum + padded, 0);
    const size_t panel_elems = static_cast<size_t>(kern::units(prec, k)) * kern::kNR * 4;
    for (int j = 0; j < n; ++j) {
      const int8_t* row = q.q.data() + static_cast<size_t>(j) * k;
      uint8_t* col = dst + static_cast<size_t>(j / kern::kNR) * panel_elems + static_cast<size_t>(j % kern::kNR) * 4;
      int32_t sum = 0;
      for (int i = 0; i < k; ++i) {
        col[static_cast<size_t>(i / 4) * kern::kNR * 4 + (i & 3)] = static_cast<uint8_t>(row[i]);
        sum += row[i];
      }
      colsum[static_cast<size_t>(j)] = sum;
      scale[static_cast<size_t>(j)] = q.scale[static_cast<size_t>(j)];
    }
  }

  void generic_int8(const Int8Weights& q) {
    w_own.resize(q.q.size());
    for (size_t i = 0; i < q.q.size(); ++i) w_own[i] = q.q[i];
    w = w_own.data();
    w_scale = q.scale;
  }
};

PackedLinear::PackedLinear() = default;
PackedLinear::~PackedLinear() = default;
PackedLinear::PackedLinear(PackedLinear&&) noexcept = default;
PackedLinear& PackedLinear::operator=(PackedLinear&&) noexcept = default;

PackedLinear::PackedLinear(const float* w, const float* bias, int n, int k, Precision p, KernelChoice kc,
                           ThreadPool* pool)
    : impl_(std::make_unique<Impl>()) {
  impl_->pack_pool = pool;
  impl_->init(w, bias, n, k, p, kc);
  impl_->pack_pool = nullptr;
}

PackedLinear::PackedLinear(std::vector<float> w, std::vector<float> bias, int n, int k, Precision p, KernelChoice kc,
                           ThreadPool* pool)
    : impl_(std::make_unique<Impl>()) {
  impl_->pack_pool = pool;
  if (w.size() != static_cast<size_t>(n) * static_cast<size_t>(k) ||
      (!bias.empty() && bias.size() != static_cast<size_t>(n)))
    throw Error("PackedLinear",
                "weight or bias size does not match [" + std::to_string(n) + ", " + std::to_string(k) + "]");
  impl_->init(w.data(), bias.empty() ? nullptr : bias.data(), n, k, p, kc);
  impl_->pack_pool = nullptr;
  // Keep what the layer would otherwise borrow.
  if (impl_->w == w.data()) {
    impl_->w_own = std::move(w);
    impl_->w = impl_->w_own.data();
    impl_->borrowed = false;
  }
  if (impl_->bias && impl_->bias != impl_->bias_own.data()) {
    impl_->bias_own = std::move(bias);
    impl_->bias = impl_->bias_own.data();
  }
}

PackedLinear::PackedLinear(const Int8Weights& q, const float* bias, KernelChoice kc) : impl_(std::make_unique<Impl>()) {
  if (q.n <= 0 || q.k <= 0 || q.q.size() != static_cast<size_t>(q.n) * q.k ||
      q.scale.size() != static_cast<size_t>(q.n))
    throw Error("PackedLinear", "inconsistent int8 weights");
  Impl& m = *impl_;
  m.n = q.n;
  m.k = q.k;
  m.prec = Precision::Int8;
  m.avx = kc == KernelChoice::Auto && avx512_kernels(Precision::Int8);
  m.set_bias(bias, true);
  if (m.avx) m.pack_int8(q);
  else m.generic_int8(q);
}

const char* packed_layout(Precision p) {
  // From the constants that define the panels (nn/kernels.h), so that changing them retires every stored copy; bump
  // the version for a change they do not show (the order of elements inside a panel, its padding).
  static const std::string f32 = "zeroshot-avx512-panels-v1 nr=" + std::to_string(kern::kNR) +
                                 " row=" + std::to_string(kern::kPanelRowBytes) + "B unit=f32";
  static const std::string bf16 = "zeroshot-avx512-panels-v1 nr=" + std::to_string(kern::kNR) +
                                  " row=" + std::to_string(kern::kPanelRowBytes) + "B unit=bf16x2";
  // The panels of signed bytes, then the f32 scale and the int32 sum of each (padded) column.
  static const std::string int8 = "zeroshot-avx512-panels-v1 nr=" + std::to_string(kern::kNR) +
                                  " row=" + std::to_string(kern::kPanelRowBytes) + "B unit=s8x4 +scale,colsum";
  if (!avx512_kernels(p)) return "";
  switch (p) {
    case Precision::F32: return f32.c_str();
    case Precision::BF16: return bf16.c_str();
    case Precision::Int8: return int8.c_str();
    case Precision::Int4: break;  // its own packing (nn/int4_gemm.h) and file (zeroshot-int4.safetensors)
  }
  return "";
}

size_t packed_panel_bytes(int n, int k, Precision p) {
  if (n <= 0 || k <= 0) return 0;
  const size_t panels = static_cast<size_t>(kern::panels(n)) * kern::units(p, k) * kern::kPanelRowBytes;
  if (p != Precision::Int8) return panels;
  return panels + static_cast<size_t>(kern::panels(n)) * kern::kNR * (sizeof(float) + sizeof(int32_t));
}

PackedLinear PackedLinear::from_panels(const uint8_t* panels, size_t bytes, const float* bias, int n, int k,
                                       Precision p) {
  if (!*packed_layout(p)) throw Error("PackedLinear", "no stored panel layout for this precision on this CPU");
  if (n <= 0 || k <= 0 || !panels || bytes != packed_panel_bytes(n, k, p) ||
      reinterpret_cast<uintptr_t>(panels) % 64 != 0)
    throw Error("PackedLinear", "stored panels do not fit [" + std::to_string(n) + ", " + std::to_string(k) + "]");
  PackedLinear l;
  l.impl_ = std::make_unique<Impl>();
  Impl& m = *l.impl_;
  m.n = n;
  m.k = k;
  m.prec = p;
  m.avx = true;
  m.set_bias(bias, true);
  m.b_panels = panels;
  m.panel_bytes = bytes;
  if (p == Precision::Int8) m.int8_columns(panels);
  return l;
}

const uint8_t* PackedLinear::panels() const {
  return impl_ && impl_->avx && impl_->prec != Precision::Int4 ? impl_->b_panels : nullptr;
}
size_t PackedLinear::panel_bytes() const { return panels() ? impl_->panel_bytes : 0; }

PackedLinear::PackedLinear(Int4Weights q, const float* bias, KernelChoice kc) : impl_(std::make_unique<Impl>()) {
  impl_->init_int4(std::move(q), bias, kc);
}

int PackedLinear::in_features() const { return impl_ ? impl_->k : 0; }
int PackedLinear::out_features() const { return impl_ ? impl_->n : 0; }
Precision PackedLinear::precision() const { return impl_ ? impl_->prec : Precision::F32; }
bool PackedLinear::uses_avx512() const { return impl_ && impl_->avx; }
bool PackedLinear::borrows_weights() const { return impl_ && impl_->borrowed; }
size_t PackedLinear::weight_bytes() const {
  if (!impl_) return 0;
  return (impl_->panels ? impl_->panel_bytes : 0) + impl_->w_own.size() * sizeof(float) +
         impl_->bias_own.size() * sizeof(float) + impl_->w_scale.size() * sizeof(float) +
         (impl_->int4 ? impl_->int4->bytes() : 0);
}

void PackedLinear::forward(const float* x, int m, long ldx, float* y, long ldy, ThreadPool* pool, LinearPost post,
                           const RowLayerNorm* norm) const {
  if (!impl_) throw Error("PackedLinear", "forward on an empty layer");
  const Impl& L = *impl_;
  if (m <= 0) return;
  const int n = L.n, k = L.k;
  if (post.kind == LinearPost::Activate && !kern::epilogue_act(post.act)) {
    forward(x, m, ldx, y, ldy, pool, LinearPost::store(), norm);
    if (ldy == n) return activate(post.act, y, static_cast<long>(m) * n, pool);
    for (int r = 0; r < m; ++r) activate(post.act, y + r * ldy, n, pool);
    return;
  }
  if (L.int4) return int4_forward(*L.int4, L.bias, x, m, ldx, y, ldy, pool, post, norm);
  int threads = pool ? pool->threads() : 1;
  if (static_cast<long>(m) * n * k < kMinParallelGemm) threads = 1;
  Scratch& s = scratch();
  auto rows_in_parallel = [&](const std::function<void(long, long)>& fn) {
    if (threads > 1 && static_cast<long>(m) * k >= kMinParallelPack) parallel_guided(pool, m, kMinGuidedRows, fn);
    else fn(0, m);
  };

  if (L.avx) {
    const Precision kp = L.prec;
    const int ku = kern::units(kp, k);
    const uint32_t* a = reinterpret_cast<const uint32_t*>(x);  // F32 without norm: x itself
    long lda = ldx;
    if (kp != Precision::F32 || norm) {
      lda = (static_cast<long>(ku) * kern::avx512::a_words(kp) + 15) & ~15L;
      grow(s.a, static_cast<size_t>(m) * lda);
      if (kp == Precision::Int8) {
        grow(s.scale, static_cast<size_t>(m));
        grow(s.zp, static_cast<size_t>(m));
      }
      uint32_t* out = s.a.data();
      float* a_scale = s.scale.data();
      int32_t* a_zp = s.zp.data();
      kern::avx512::RowNorm rn;
      if (norm) rn = {norm->gamma, norm->beta, norm->eps};
      rows_in_parallel([&](long r0, long r1) {
        Scratch& mine = scratch();  // this thread's row buffer
        if (norm) grow(mine.row, static_cast<size_t>(k));
        kern::avx512::convert_a(kp, x, k, ldx, static_cast<int>(r0), static_cast<int>(r1), out, lda, a_scale, a_zp,
                                norm ? &rn : nullptr, norm ? mine.row.data() : nullptr);
      });
      a = out;
    }

    kern::GemmCall g;
    g.prec = kp;
    g.m = m;
    g.n = n;
    g.ku = ku;
    g.a = a;
    g.lda = lda;
    g.a_scale = s.scale.data();
    g.a_zp = s.zp.data();
    g.b = L.b_panels;
    g.b_scale = L.b_scale;
    g.b_colsum = L.b_colsum;
    g.bias = L.bias;
    g.has_act = post.kind == LinearPost::Activate;
    g.act = post.act;
    g.accumulate = post.kind == LinearPost::Accumulate;
    g.c = y;
    g.ldc = ldy;
    const int np = kern::panels(n), blocks = kern::row_blocks(m);
    if (threads <= 1) {
      kern::avx512::gemm(g, 0, np, 0, blocks);
    } else if (np >= threads) {
      // Ranges of panels taken in turn, shrinking towards the end: when a thread starts late or is preempted (a
      // shared machine) the others take over its remaining ranges, and the last wait is for one short range. At
      // least 2 panels a range: with 1 the packed A rows were reloaded per panel (+1% CPU per image, ViT-B/16 int8).
      parallel_guided(pool, np, 2, [&](long p0, long p1) {
        kern::avx512::gemm(g, static_cast<int>(p0), static_cast<int>(p1), 0, blocks);
      });
    } else {
      pool->parallel_for(threads, [&](int t) {
        kern::avx512::gemm(g, 0, np, static_cast<int>(static_cast<long>(blocks) * t / threads),
                           static_cast<int>(static_cast<long>(blocks) * (t + 1) / threads));
      });
    }
    return;
  }

  if (norm) {
    grow(s.normed, static_cast<size_t>(m) * k);
    float* h = s.normed.data();
    rows_in_parallel([&](long r0, long r1) {
      for (long r = r0; r < r1; ++r)
        layer_norm(x + r * ldx, 1, k, norm->gamma, norm->beta, norm->eps, h + r * k, nullptr);
    });
    x = h;
    ldx = k;
  }
  // Generic path: the same rounded / quantized operands, as f32, through OpenBLAS.
  const float* src = x;
  long lds = ldx;
  std::vector<float> row_scale;
  if (L.prec != Precision::F32) {
    grow(s.tmp, static_cast<size_t>(m) * k);
    float* t = s.tmp.data();
    if (L.prec == Precision::Int8) row_scale.resize(static_cast<size_t>(m));
    for (int r = 0; r < m; ++r) {
      const float* xr = x + static_cast<long>(r) * ldx;
      float* tr = t + static_cast<long>(r) * k;
      if (L.prec == Precision::BF16) {
        for (int i = 0; i < k; ++i) tr[i] = bf16_round(xr[i]);
      } else {
        float sc;
        int zp;
        quant_params(xr, k, &sc, &zp);
        row_scale[static_cast<size_t>(r)] = sc;
        const float inv = 1.0f / sc;
        for (int i = 0; i < k; ++i) tr[i] = static_cast<float>(quantize_u8(xr[i], inv, zp) - zp);
      }
    }
    src = t;
    lds = k;
  }
  const bool acc = post.kind == LinearPost::Accumulate;
  // Accumulate needs the product apart from y; elsewhere it is computed in y and finished in place.
  std::vector<float> prod;
  float* out = y;
  long ldo = ldy;
  if (acc) {
    prod.resize(static_cast<size_t>(m) * n);
    out = prod.data();
    ldo = n;
  }
  int parts = std::min(threads, (n + 15) / 16);
  const int per = parts <= 1 ? n : (((n + parts - 1) / parts + 15) & ~15);
  const int nblk = (n + per - 1) / per;
  auto run = [&](int blk) {
    const int j0 = blk * per, nc = std::min(per, n - j0);
    gemm(false, true, m, nc, k, 1.0f, src, static_cast<int>(lds), L.w + static_cast<long>(j0) * k, k, 0.0f, out + j0,
         static_cast<int>(ldo));
    for (int r = 0; r < m; ++r) {
      const float* o = out + static_cast<long>(r) * ldo + j0;
      float* yr = y + static_cast<long>(r) * ldy + j0;
      for (int j = 0; j < nc; ++j) {
        float v = o[j];
        if (L.prec == Precision::Int8)
          v *= row_scale[static_cast<size_t>(r)] * L.w_scale[static_cast<size_t>(j0) + static_cast<size_t>(j)];
        if (L.bias) v += L.bias[j0 + j];
        if (acc) yr[j] += v;
        else yr[j] = post.kind == LinearPost::Activate ? epilogue_act(post.act, v) : v;
      }
    }
  };
  if (nblk <= 1 || !pool) {
    for (int b = 0; b < nblk; ++b) run(b);
  } else {
    pool->parallel_for(nblk, run);
  }
}

}  // namespace zeroshot::nn
