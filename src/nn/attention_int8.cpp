#include "nn/attention_int8.h"

#include <cmath>
#include <cstdint>

namespace zeroshot::nn {

namespace {

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Carves 64-byte multiples off a work buffer (so every segment keeps the buffer's alignment).
struct Carve {
  unsigned char* at;
  template <typename T>
  T* take(size_t n) {
    T* p = reinterpret_cast<T*>(at);
    at += round_up(n * sizeof(T), 64);
    return p;
  }
};

// The int8 step of the header's arithmetic: the scale s of values whose max |x| is m, and the factor 127 / m.
void scales(float m, float* s, float* inv) {
  const bool ok = m > 0.0f && m < 3.0e38f;  // false for NaN too
  *s = ok ? m / 127.0f : 0.0f;
  *inv = ok ? 127.0f / m : 0.0f;
}

int8_t quantize(float x, float inv) {
  // fmax / fmin drop a NaN the way the kernel's max_ps / min_ps do (the constant wins).
  const float t = std::fmin(std::fmax(x * inv, -127.0f), 127.0f);
  return static_cast<int8_t>(static_cast<int>(std::nearbyint(t)));
}

}  // namespace

float exp_softmax(float x) {
  x = std::fmin(std::fmax(x, -104.0f), 88.0f);
  const float t = x * 1.44269504088896341f;
  const float n = std::nearbyint(t);
  const float f = t - n;
  float p = kExp2C5;
  p = std::fma(p, f, kExp2C4);
  p = std::fma(p, f, kExp2C3);
  p = std::fma(p, f, kExp2C2);
  p = std::fma(p, f, kExp2C1);
  p = std::fma(p, f, 1.0f);
  return std::scalbn(p, static_cast<int>(n));
}

size_t attention_int8_work_bytes(int len, int hd) {
  // Bounds both layouts: the kernel's K^T and V panels pad keys to 16 and channels to 16 (3 int8 copies), its
  // per-key / per-row / per-channel vectors and 8 rows of scores and weights.
  const size_t l16 = round_up(static_cast<size_t>(len > 0 ? len : 0), 16);
  const size_t h16 = round_up(static_cast<size_t>(hd > 0 ? hd : 0), 16);
  return 3 * l16 * h16 + 64 * l16 + 16 * h16 + 1024;
}

void attention_head_int8(const float* q, const float* k, const float* v, long ld, int len, int hd, float scale,
                         bool causal, float* out, long ldo, unsigned char* work) {
  if (len <= 0 || hd <= 0) return;
  const size_t n = static_cast<size_t>(len) * static_cast<size_t>(hd);
  Carve c{work};
  auto* q8 = c.take<int8_t>(n);
  auto* k8 = c.take<int8_t>(n);
  auto* v8 = c.take<int8_t>(n);
  auto* rs = c.take<float>(static_cast<size_t>(len));  // s_q * scale
  auto* sk = c.take<float>(static_cast<size_t>(len));
  auto* sv = c.take<float>(static_cast<size_t>(hd));
  auto* s = c.take<float>(static_cast<size_t>(len));
  auto* p = c.take<int32_t>(static_cast<size_t>(len));
  for (int i = 0; i < len; ++i) {
    const float* rows[2] = {q + i * ld, k + i * ld};
    int8_t* dst[2] = {q8 + static_cast<size_t>(i) * hd, k8 + static_cast<size_t>(i) * hd};
    float sc[2];
    for (int t = 0; t < 2; ++t) {
      float m = 0.0f, inv = 0.0f;
      for (int d = 0; d < hd; ++d) m = std::fmax(m, std::fabs(rows[t][d]));
      scales(m, &sc[t], &inv);
      for (int d = 0; d < hd; ++d) dst[t][d] = quantize(rows[t][d], inv);
    }
    rs[i] = sc[0] * scale;
    sk[i] = sc[1];
  }
  for (int d = 0; d < hd; ++d) {
    float m = 0.0f, inv = 0.0f;
    for (int j = 0; j < len; ++j) m = std::fmax(m, std::fabs(v[j * ld + d]));
    scales(m, &sv[d], &inv);
    for (int j = 0; j < len; ++j) v8[static_cast<size_t>(j) * hd + d] = quantize(v[j * ld + d], inv);
  }
  for (int i = 0; i < len; ++i) {
    const int valid = causal ? i + 1 : len;
    const int8_t* qi = q8 + static_cast<size_t>(i) * hd;
    float mx = -INFINITY;
    for (int j = 0; j < valid; ++j) {
      const int8_t* kj = k8 + static_cast<size_t>(j) * hd;
      int32_t acc = 0;
      for (int d = 0; d < hd; ++d) acc += static_cast<int32_t>(qi[d]) * kj[d];
      s[j] = static_cast<float>(acc) * rs[i] * sk[j];
      mx = std::fmax(mx, s[j]);
    }
    int32_t sum = 0;
    for (int j = 0; j < valid; ++j) {
      p[j] = static_cast<int32_t>(std::nearbyint(exp_softmax(s[j] - mx) * 255.0f));
      sum += p[j];
    }
    const float inv = 1.0f / static_cast<float>(sum > 0 ? sum : 1);
    float* o = out + i * ldo;
    for (int d = 0; d < hd; ++d) {
      int32_t acc = 0;
      for (int j = 0; j < valid; ++j) acc += p[j] * v8[static_cast<size_t>(j) * hd + d];
      o[d] = static_cast<float>(acc) * inv * sv[d];
    }
  }
}

}  // namespace zeroshot::nn
