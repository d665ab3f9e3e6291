// Pillow's Resample.c, written out with the same constants and expression order (see resample.h).
#include "image/resample.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <numbers>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "image/resample_avx2.h"
#include "image/resample_avx512.h"
#include "image/resample_lanes.h"

namespace zeroshot::image::detail {

namespace {

std::atomic<int> simd_limit{2};  // limit_resample_simd

bool use_avx512() { return simd_limit.load(std::memory_order_relaxed) >= 2 && resample_avx512_available(); }
bool use_avx2() { return simd_limit.load(std::memory_order_relaxed) >= 1 && resample_avx2_available(); }

double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * std::numbers::pi;
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * std::numbers::pi;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct Filter {
  double (*fn)(double);
  double support;
};

const Filter* filter_for(int resample) {
  static const Filter kLanczos{lanczos_filter, 3.0}, kBilinear{bilinear_filter, 1.0}, kBicubic{bicubic_filter, 2.0},
      kBox{box_filter, 0.5}, kHamming{hamming_filter, 1.0};
  switch (resample) {
    case 1: return &kLanczos;
    case 2: return &kBilinear;
    case 3: return &kBicubic;
    case 4: return &kBox;
    case 5: return &kHamming;
    default: return nullptr;
  }
}

constexpr int kPrecisionBits = 32 - 8 - 2;

// Coefficients for the output positions [o0, o1) of a resize from in_size to out_size: Pillow's precompute_coeffs
// (normalized doubles, kept in `kd` for the 32-bit path) followed by normalize_coeffs_8bpc (fixed point, `k`).
struct Coeffs {
  int ksize = 0;
  std::vector<int> first;  // first source index of each output position
  std::vector<int> count;  // number of taps
  std::vector<int32_t> k;  // ksize per output position
  std::vector<double> kd;  // same, as doubles (only when asked for)
};

Coeffs precompute(int in_size, int out_size, int o0, int o1, const Filter& f, bool doubles) {
  // Pillow passes the box as floats: (double)(in1 - in0) with in0 = 0.0f, in1 = (float)in_size.
  const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = f.support * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  const int n = o1 - o0;
  c.first.resize(n);
  c.count.resize(n);
  c.k.assign(static_cast<size_t>(n) * c.ksize, 0);
  if (doubles) c.kd.assign(static_cast<size_t>(n) * c.ksize, 0.0);
  std::vector<double> w(c.ksize);
  for (int xx = o0; xx < o1; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    xmax = std::min(xmax, c.ksize);  // cannot happen (Pillow relies on it); keeps the buffer safe regardless
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double v = f.fn((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    int32_t* k = &c.k[static_cast<size_t>(xx - o0) * c.ksize];
    for (int x = 0; x < xmax; ++x) {
      double v = w[x];
      if (ww != 0.0) v /= ww;
      if (doubles) c.kd[static_cast<size_t>(xx - o0) * c.ksize + x] = v;
      k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx - o0] = xmin;
    c.count[xx - o0] = std::max(xmax, 0);
  }
  return c;
}

inline uint8_t clip8(int v) {
  v >>= kPrecisionBits;  // arithmetic shift (C++20), as Pillow's lookup table index
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Pillow's ROUND_UP: (int)(f >= 0 ? f + 0.5F : f - 0.5F), computed in double. Values outside int32 (only from
// absurd inputs) are clamped instead of being undefined behaviour.
inline int32_t round_up(double f) {
  const double r = f >= 0.0 ? f + 0.5 : f - 0.5;
  if (!(r > -2147483648.0)) return INT32_MIN;
  if (!(r < 2147483647.0)) return INT32_MAX;
  return static_cast<int32_t>(r);
}

// A block of interleaved rows: pixel (x, y), band b at base[y * stride + x * C + b].
template <typename T>
struct Plane {
  const T* base;
  size_t stride;
};

// Horizontal pass, 8 bits, C bands: rows [0, rows) of `in` -> out (rows x n pixels, packed).
template <int C>
void horizontal_u8(Plane<uint8_t> in, int rows, const Coeffs& c, uint8_t* out) {
  const int n = static_cast<int>(c.first.size());
  if (use_avx512()) {
    horizontal_u8_avx512(in.base, in.stride, rows, C, n, c.first.data(), c.count.data(), c.k.data(), c.ksize, out);
    return;
  }
  if (use_avx2()) {
    horizontal_u8_avx2(in.base, in.stride, rows, C, n, c.first.data(), c.count.data(), c.k.data(), c.ksize, out);
    return;
  }
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in.base + y * in.stride;
    uint8_t* dst = out + static_cast<size_t>(y) * n * C;
    for (int xx = 0; xx < n; ++xx) {
      const int32_t* k = &c.k[static_cast<size_t>(xx) * c.ksize];
      const uint8_t* p = src + static_cast<size_t>(c.first[xx]) * C;
      int s[C];
      for (int b = 0; b < C; ++b) s[b] = 1 << (kPrecisionBits - 1);
      for (int x = 0, cnt = c.count[xx]; x < cnt; ++x, p += C) {
        for (int b = 0; b < C; ++b) s[b] += p[b] * k[x];
      }
      for (int b = 0; b < C; ++b) dst[C * xx + b] = clip8(s[b]);
    }
  }
}

// Vertical pass, 8 bits: `in` rows are source rows shifted by `row0`; writes the output rows [ya, yb) of
// c.first.size(), each `row_bytes` long, at out + yy * row_bytes.
void vertical_u8(Plane<uint8_t> in, int row0, size_t row_bytes, const Coeffs& c, int ya, int yb, uint8_t* out) {
  // Sums accumulate tap by tap over a whole row (integer sums: the order does not change the result).
  if (use_avx512() || use_avx2()) {
    const auto row = use_avx512() ? vertical_row_u8_avx512 : vertical_row_u8_avx2;
    for (int yy = ya; yy < yb; ++yy)
      row(in.base + static_cast<size_t>(c.first[yy] - row0) * in.stride, in.stride, c.count[yy],
          &c.k[static_cast<size_t>(yy) * c.ksize], row_bytes, out + yy * row_bytes);
    return;
  }
  std::vector<int> acc(row_bytes);
  for (int yy = ya; yy < yb; ++yy) {
    const int32_t* k = &c.k[static_cast<size_t>(yy) * c.ksize];
    const uint8_t* src = in.base + static_cast<size_t>(c.first[yy] - row0) * in.stride;
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0, cnt = c.count[yy]; y < cnt; ++y) {
      const uint8_t* p = src + y * in.stride;
      const int ky = k[y];
      for (size_t i = 0; i < row_bytes; ++i) acc[i] += p[i] * ky;
    }
    uint8_t* dst = out + yy * row_bytes;
    for (size_t i = 0; i < row_bytes; ++i) dst[i] = clip8(acc[i]);
  }
}

// Pillow's 32bpc passes: double sums in tap order (the order matters for doubles), ROUND_UP per pass.
void horizontal_i32(Plane<int32_t> in, int rows, const Coeffs& c, int32_t* out) {
  const int n = static_cast<int>(c.first.size());
  for (int y = 0; y < rows; ++y) {
    const int32_t* src = in.base + y * in.stride;
    for (int xx = 0; xx < n; ++xx) {
      const double* k = &c.kd[static_cast<size_t>(xx) * c.ksize];
      const int32_t* p = src + c.first[xx];
      double ss = 0.0;
      for (int x = 0, cnt = c.count[xx]; x < cnt; ++x) ss += p[x] * k[x];
      out[static_cast<size_t>(y) * n + xx] = round_up(ss);
    }
  }
}

void vertical_i32(Plane<int32_t> in, int row0, int width, const Coeffs& c, int ya, int yb, int32_t* out) {
  for (int yy = ya; yy < yb; ++yy) {
    const double* k = &c.kd[static_cast<size_t>(yy) * c.ksize];
    const int32_t* src = in.base + static_cast<size_t>(c.first[yy] - row0) * in.stride;
    for (int xx = 0; xx < width; ++xx) {
      double ss = 0.0;
      for (int y = 0, cnt = c.count[yy]; y < cnt; ++y) ss += src[y * in.stride + xx] * k[y];
      out[static_cast<size_t>(yy) * width + xx] = round_up(ss);
    }
  }
}

// Runs fn(a, b) over [0, rows) in contiguous parts on up to hardware_concurrency() threads (the calling thread
// takes the first part) when a pass has enough work to pay for starting threads: a 12 MP photo's horizontal pass
// is tens of millions of multiply-adds, a 224-pixel window's a fraction of one. Every output row depends only on
// its own inputs and coefficients, so any split gives the same bytes: the passes stay Pillow-exact. Lets one large
// image use every core (a single classify); in batch paths that already decode one image per core the parts
// just share the cores.
template <typename Fn>
void split_rows(int rows, size_t work, const Fn& fn) {
  constexpr size_t kMinWorkPerThread = size_t{8} << 20;  // ~2-4 ms of the scalar passes
  const size_t hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t parts = std::min({hw, work / kMinWorkPerThread, static_cast<size_t>(std::max(rows / 16, 1))});
  if (parts <= 1) {
    fn(0, rows);
    return;
  }
  std::vector<std::thread> pool;
  const auto bound = [&](size_t i) { return static_cast<int>(static_cast<size_t>(rows) * i / parts); };
  try {
    for (size_t i = 1; i < parts; ++i) pool.emplace_back([&fn, a = bound(i), b = bound(i + 1)] { fn(a, b); });
  } catch (const std::system_error&) {
    // No thread to be had: the parts not started run here.
    for (size_t i = pool.size() + 1; i < parts; ++i) fn(bound(i), bound(i + 1));
  }
  fn(0, bound(1));
  for (auto& t : pool) t.join();
}

template <typename T, typename H, typename V>
void resample_window(const T* src, int src_w, int src_h, int channels, int width, int height, const Filter& f, int x0,
                     int y0, int ww, int wh, T* out, bool doubles, H horizontal, V vertical) {
  const Plane<T> whole{src, static_cast<size_t>(src_w) * channels};
  const bool need_h = width != src_w, need_v = height != src_h;

  // Source rows the vertical pass reads.
  Coeffs vc;
  int r0 = y0, r1 = y0 + wh;
  if (need_v) {
    vc = precompute(src_h, height, y0, y0 + wh, f, doubles);
    r0 = vc.first.front();
    r1 = vc.first.back() + vc.count.back();
  }
  std::vector<T> tmp;
  Plane<T> rows{whole.base + static_cast<size_t>(r0) * whole.stride + static_cast<size_t>(x0) * channels, whole.stride};
  const size_t row_elems = static_cast<size_t>(ww) * channels;
  if (need_h) {
    const Coeffs hc = precompute(src_w, width, x0, x0 + ww, f, doubles);
    tmp.resize(static_cast<size_t>(r1 - r0) * row_elems);
    const size_t work = static_cast<size_t>(r1 - r0) * row_elems * hc.ksize;
    split_rows(r1 - r0, work, [&](int a, int b) {
      horizontal({whole.base + static_cast<size_t>(r0 + a) * whole.stride, whole.stride}, b - a, hc,
                 tmp.data() + static_cast<size_t>(a) * row_elems);
    });
    rows = {tmp.data(), row_elems};
  }
  if (need_v) {
    const size_t work = static_cast<size_t>(wh) * row_elems * vc.ksize;
    split_rows(wh, work, [&](int a, int b) { vertical(rows, r0, row_elems, vc, a, b, out); });
  } else {
    for (int y = 0; y < wh; ++y) std::memcpy(out + y * row_elems, rows.base + y * rows.stride, row_elems * sizeof(T));
  }
}

// A pass that Pillow skips (the size does not change on that axis) as one tap of weight 1.0: (p << 22) + half,
// shifted back, is p, so the bytes are those of no pass at all.
Coeffs identity(int o0, int o1) {
  Coeffs c;
  c.ksize = 1;
  for (int o = o0; o < o1; ++o) {
    c.first.push_back(o);
    c.count.push_back(1);
    c.k.push_back(int32_t{1} << kPrecisionBits);
  }
  return c;
}

// The same coefficients for an axis of length n read backwards (display index d at stored index n - 1 - d): taps
// [first, first + count) become [n - first - count, n - first) with the weights reversed, so a pass reads the
// stored pixels forwards and sums the same products.
void mirror(Coeffs& c, int n) {
  for (size_t o = 0; o < c.first.size(); ++o) {
    c.first[o] = n - c.first[o] - c.count[o];
    std::reverse(c.k.begin() + static_cast<ptrdiff_t>(o * c.ksize),
                 c.k.begin() + static_cast<ptrdiff_t>(o * c.ksize + c.count[o]));
  }
}

// [lowest first, highest first + count) of a set of coefficients: the source range a pass reads.
std::pair<int, int> source_range(const Coeffs& c) {
  int lo = c.first.front(), hi = c.first.front() + c.count.front();
  for (size_t o = 0; o < c.first.size(); ++o) {
    lo = std::min(lo, c.first[o]);
    hi = std::max(hi, c.first[o] + c.count[o]);
  }
  return {lo, hi};
}

}  // namespace

LaneWeights lane_weights(int channels, int lanes, int n, const int* first, const int* count, const int32_t* k,
                         int ksize) {
  LaneWeights lw;
  lw.chunk = lanes - lanes % channels;
  lw.nvec = (channels * ksize + lw.chunk - 1) / lw.chunk;
  lw.w.assign(static_cast<size_t>(n) * lw.nvec * lanes, 0);
  lw.vecs.resize(n);
  for (int xx = 0; xx < n; ++xx) {
    const int bytes = channels * count[xx];
    lw.vecs[xx] = (bytes + lw.chunk - 1) / lw.chunk;
    int32_t* wx = &lw.w[static_cast<size_t>(xx) * lw.nvec * lanes];
    for (int b = 0; b < bytes; ++b)
      wx[(b / lw.chunk) * lanes + b % lw.chunk] = k[static_cast<size_t>(xx) * ksize + b / channels];
    lw.row_end = std::max(lw.row_end, static_cast<size_t>(first[xx] + count[xx]) * channels);
  }
  return lw;
}

void resample_window_u8_oriented(const uint8_t* src, int src_w, int src_h, int channels, int orientation, int width,
                                 int height, int resample, int x0, int y0, int ww, int wh, uint8_t* out) {
  if (orientation < 2 || orientation > 8) {
    resample_window_u8(src, src_w, src_h, channels, width, height, resample, x0, y0, ww, wh, out);
    return;
  }
  const Filter& f = *filter_for(resample);
  const bool transposed = orientation >= 5;
  // Displayed axes: x runs along stored rows (or, transposed, down stored columns); each may be reversed.
  const bool flip_x = orientation == 2 || orientation == 3 || orientation == 6 || orientation == 7;
  const bool flip_y = orientation == 3 || orientation == 4 || orientation == 7 || orientation == 8;
  const int dw = transposed ? src_h : src_w, dh = transposed ? src_w : src_h;
  Coeffs xc = width != dw ? precompute(dw, width, x0, x0 + ww, f, false) : identity(x0, x0 + ww);
  Coeffs yc = height != dh ? precompute(dh, height, y0, y0 + wh, f, false) : identity(y0, y0 + wh);
  if (flip_x) mirror(xc, dw);
  if (flip_y) mirror(yc, dh);
  const std::pair<int, int> range = source_range(yc);  // stored rows (transposed: columns) the vertical pass needs
  const int r0 = range.first, r1 = range.second;       // (not a structured binding: lambdas capture them)
  const int C = channels;
  void (*h)(Plane<uint8_t>, int, const Coeffs&, uint8_t*) = nullptr;
  switch (C) {
    case 1: h = horizontal_u8<1>; break;
    case 2: h = horizontal_u8<2>; break;
    case 3: h = horizontal_u8<3>; break;
    default: h = horizontal_u8<4>; break;
  }
  const size_t stride = static_cast<size_t>(src_w) * C;
  if (!transposed) {
    // Pillow's order as it is: horizontal pass over the stored rows r0..r1, then the vertical pass.
    const size_t row = static_cast<size_t>(ww) * C;
    std::vector<uint8_t> tmp(static_cast<size_t>(r1 - r0) * row);
    split_rows(r1 - r0, static_cast<size_t>(r1 - r0) * row * xc.ksize, [&](int a, int b) {
      h({src + static_cast<size_t>(r0 + a) * stride, stride}, b - a, xc, tmp.data() + static_cast<size_t>(a) * row);
    });
    split_rows(wh, static_cast<size_t>(wh) * row * yc.ksize, [&](int a, int b) {
      vertical_u8({tmp.data(), row}, r0, row, yc, a, b, out);
    });
    return;
  }
  // Transposed: the displayed rows are stored columns. Pillow's horizontal pass (along displayed x = down the
  // stored columns) is a vertical pass over the stored rows, producing for each output x the stored columns
  // r0..r1 (tmp: ww rows); its vertical pass (along displayed y = across stored columns) is then a horizontal pass
  // over those rows (out_t: ww rows of wh pixels), transposed into the window at the end. The same passes in the
  // same order with the same coefficients, so the same bytes, without rotating the full-size image first.
  const size_t span = static_cast<size_t>(r1 - r0) * C;
  std::vector<uint8_t> tmp(static_cast<size_t>(ww) * span);
  split_rows(ww, static_cast<size_t>(ww) * span * xc.ksize, [&](int a, int b) {
    vertical_u8({src + static_cast<size_t>(r0) * C, stride}, 0, span, xc, a, b, tmp.data());
  });
  for (int& first : yc.first) first -= r0;
  std::vector<uint8_t> out_t(static_cast<size_t>(ww) * wh * C);
  h({tmp.data(), span}, ww, yc, out_t.data());
  for (int x = 0; x < ww; ++x)
    for (int y = 0; y < wh; ++y)
      std::memcpy(out + (static_cast<size_t>(y) * ww + x) * C, &out_t[(static_cast<size_t>(x) * wh + y) * C], C);
}

struct RowStreamResampler::State {
  int channels = 0, ww = 0, wh = 0;
  bool transposed = false;
  Coeffs xc, yc;             // Pillow's horizontal / vertical pass in displayed coordinates, read in stored order
  int r0 = 0, r1 = 0;        // the range of yc's taps: stored rows (transposed: stored columns)
  std::vector<uint8_t> tmp;  // the first pass's output (not transposed: rows r0..r1 of ww pixels; else ww rows)
  // Not transposed: the horizontal pass runs on each strip as it comes.
  int level = 0;      // its SIMD level, chosen once (2 AVX-512, 1 AVX2, 0 scalar)
  LaneWeights lanes;  // its weights, laid out once for every strip
  // Transposed: the first pass is a vertical one over the stored rows q0..q1 (columns r0..r1 of them); its output
  // pixel x is computed as soon as rows xc.first[x] .. + count[x] have come. Rows [lo, lo + held) wait in `rows`.
  int q0 = 0, q1 = 0, lo = 0, held = 0, cap = 0;
  size_t span = 0;  // bytes of one held row: columns r0..r1
  std::vector<uint8_t> rows;
  std::vector<char> done;
  int pending = 0;
};

RowStreamResampler::RowStreamResampler(int src_w, int src_h, int channels, int orientation, int width, int height,
                                       int resample, int x0, int y0, int ww, int wh)
    : s_(std::make_unique<State>()) {
  // The coefficients exactly as resample_window_u8_oriented sets them up (an axis that keeps its size gets the
  // identity pass, which gives the bytes of no pass).
  State& s = *s_;
  const Filter& f = *filter_for(resample);
  s.channels = channels;
  s.ww = ww;
  s.wh = wh;
  s.transposed = orientation >= 5 && orientation <= 8;
  const bool flip_x = orientation == 2 || orientation == 3 || orientation == 6 || orientation == 7;
  const bool flip_y = orientation == 3 || orientation == 4 || orientation == 7 || orientation == 8;
  const int dw = s.transposed ? src_h : src_w, dh = s.transposed ? src_w : src_h;
  s.xc = width != dw ? precompute(dw, width, x0, x0 + ww, f, false) : identity(x0, x0 + ww);
  s.yc = height != dh ? precompute(dh, height, y0, y0 + wh, f, false) : identity(y0, y0 + wh);
  if (flip_x) mirror(s.xc, dw);
  if (flip_y) mirror(s.yc, dh);
  std::tie(s.r0, s.r1) = source_range(s.yc);
  if (s.transposed) {
    std::tie(s.q0, s.q1) = source_range(s.xc);
    s.lo = s.q0;
    s.span = static_cast<size_t>(s.r1 - s.r0) * channels;
    // Room for a window of taps and a few strips: the rows drop out as the outputs that read them are done.
    s.cap = std::min(s.q1 - s.q0, 2 * s.xc.ksize + 128);
    s.rows.resize(static_cast<size_t>(s.cap) * s.span);
    s.done.assign(ww, 0);
    s.pending = ww;
    s.tmp.resize(static_cast<size_t>(ww) * s.span);
    for (int& first : s.yc.first) first -= s.r0;  // the second pass reads tmp, whose column 0 is stored column r0
    return;
  }
  const int n = static_cast<int>(s.xc.first.size());
  if (use_avx512()) {
    s.level = 2;
    s.lanes = lane_weights(channels, 16, n, s.xc.first.data(), s.xc.count.data(), s.xc.k.data(), s.xc.ksize);
  } else if (use_avx2()) {
    s.level = 1;
    s.lanes = lane_weights(channels, 8, n, s.xc.first.data(), s.xc.count.data(), s.xc.k.data(), s.xc.ksize);
  }
  s.tmp.resize(static_cast<size_t>(s.r1 - s.r0) * ww * channels);
}

RowStreamResampler::~RowStreamResampler() = default;

namespace {

// The horizontal pass over the C-band rows of one strip.
void horizontal_any(int channels, Plane<uint8_t> in, int rows, const Coeffs& c, uint8_t* out) {
  switch (channels) {
    case 1: horizontal_u8<1>(in, rows, c, out); break;
    case 2: horizontal_u8<2>(in, rows, c, out); break;
    case 3: horizontal_u8<3>(in, rows, c, out); break;
    default: horizontal_u8<4>(in, rows, c, out); break;
  }
}

}  // namespace

void RowStreamResampler::push(const uint8_t* rows, size_t stride, int y, int n) {
  State& s = *s_;
  if (s.transposed) {
    const int a = std::max(y, s.q0), b = std::min(y + n, s.q1);
    if (a >= b) return;
    if (s.held + (b - a) > s.cap) {
      // Drop the rows no pending output reads (below the lowest first tap of those not done).
      int need = s.lo + s.held;
      for (int x = 0; x < s.ww; ++x)
        if (!s.done[x]) need = std::min(need, s.xc.first[x]);
      const int drop = need - s.lo;
      if (drop > 0) {
        std::memmove(s.rows.data(), s.rows.data() + static_cast<size_t>(drop) * s.span,
                     static_cast<size_t>(s.held - drop) * s.span);
        s.lo = need;
        s.held -= drop;
      }
      if (s.held + (b - a) > s.cap) {  // taps wider than expected (cannot happen with the cap above): grow
        s.cap = s.held + (b - a);
        s.rows.resize(static_cast<size_t>(s.cap) * s.span);
      }
    }
    for (int r = a; r < b; ++r, ++s.held)
      std::memcpy(s.rows.data() + static_cast<size_t>(s.held) * s.span,
                  rows + static_cast<size_t>(r - y) * stride + static_cast<size_t>(s.r0) * s.channels, s.span);
    const int end = s.lo + s.held;
    for (int x = 0; x < s.ww && s.pending > 0; ++x) {
      if (s.done[x] || s.xc.first[x] + s.xc.count[x] > end) continue;
      vertical_u8({s.rows.data(), s.span}, s.lo, s.span, s.xc, x, x + 1, s.tmp.data());
      s.done[x] = 1;
      --s.pending;
    }
    return;
  }
  const int a = std::max(y, s.r0), b = std::min(y + n, s.r1);
  if (a >= b) return;  // rows outside the vertical pass's reach (cropped away)
  const uint8_t* src = rows + static_cast<size_t>(a - y) * stride;
  const size_t row = static_cast<size_t>(s.ww) * s.channels;
  uint8_t* out = s.tmp.data() + static_cast<size_t>(a - s.r0) * row;
  const Coeffs& c = s.xc;
  const int nx = static_cast<int>(c.first.size());
  if (s.level == 2) {
    horizontal_u8_avx512_lanes(src, stride, b - a, s.channels, nx, c.first.data(), c.count.data(), s.lanes, out);
  } else if (s.level == 1) {
    horizontal_u8_avx2_lanes(src, stride, b - a, s.channels, nx, c.first.data(), c.count.data(), s.lanes, out);
  } else {
    horizontal_any(s.channels, {src, stride}, b - a, c, out);
  }
}

void RowStreamResampler::finish(uint8_t* out) {
  State& s = *s_;
  const int C = s.channels;
  if (s.transposed) {
    // As resample_window_u8_oriented: Pillow's vertical pass is a horizontal one over tmp's ww rows, then the
    // result is transposed into the window.
    std::vector<uint8_t> out_t(static_cast<size_t>(s.ww) * s.wh * C);
    horizontal_any(C, {s.tmp.data(), s.span}, s.ww, s.yc, out_t.data());
    for (int x = 0; x < s.ww; ++x)
      for (int y = 0; y < s.wh; ++y)
        std::memcpy(out + (static_cast<size_t>(y) * s.ww + x) * C, &out_t[(static_cast<size_t>(x) * s.wh + y) * C], C);
    return;
  }
  const size_t row = static_cast<size_t>(s.ww) * C;
  split_rows(s.wh, static_cast<size_t>(s.wh) * row * s.yc.ksize, [&](int a, int b) {
    vertical_u8({s.tmp.data(), row}, s.r0, row, s.yc, a, b, out);
  });
}

bool valid_filter(int resample) { return filter_for(resample) != nullptr; }

void limit_resample_simd(int level) { simd_limit.store(level); }

void resample_window_u8(const uint8_t* src, int src_w, int src_h, int channels, int width, int height, int resample,
                        int x0, int y0, int ww, int wh, uint8_t* out) {
  const Filter& f = *filter_for(resample);
  void (*h)(Plane<uint8_t>, int, const Coeffs&, uint8_t*) = nullptr;
  switch (channels) {
    case 1: h = horizontal_u8<1>; break;
    case 2: h = horizontal_u8<2>; break;
    case 3: h = horizontal_u8<3>; break;
    default: h = horizontal_u8<4>; break;
  }
  resample_window<uint8_t>(src, src_w, src_h, channels, width, height, f, x0, y0, ww, wh, out, false, h, vertical_u8);
}

void resample_window_i32(const int32_t* src, int src_w, int src_h, int width, int height, int resample, int x0, int y0,
                         int ww, int wh, int32_t* out) {
  const Filter& f = *filter_for(resample);
  resample_window<int32_t>(src, src_w, src_h, 1, width, height, f, x0, y0, ww, wh, out, true, horizontal_i32,
                           [](Plane<int32_t> in, int row0, size_t row_elems, const Coeffs& c, int ya, int yb,
                              int32_t* o) { vertical_i32(in, row0, static_cast<int>(row_elems), c, ya, yb, o); });
}

}  // namespace zeroshot::image::detail
