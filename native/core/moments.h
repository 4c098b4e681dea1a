// Moments: count, mean and M2 = sum((x - mean)^2), never a sum and a sum of squares (E[x^2] - E[x]^2 cancels to
// garbage, even negative variances, when |mean| >> std: pytorch#54293).
//
// Inside a tile the moments come from two passes over cache-resident data (sum, then centered squares);
// tiles are combined with Chan's parallel formula in double:
//   n = na + nb,  d = mb - ma,  mean = ma + d * nb / n,  M2 = M2a + M2b + d^2 * na * nb / n.
// Merges follow a fixed pairwise tree over the tile index, so the result does not depend on who computed what.
#pragma once

// Chan's merge of (nb, mb, m2b) into (na, ma, m2a).
inline void chan_merge(double& na, double& ma, double& m2a, double nb, double mb, double m2b) {
  if (nb == 0) return;
  if (na == 0) { na = nb; ma = mb; m2a = m2b; return; }
  const double n = na + nb, d = mb - ma;
  ma += d * (nb / n);
  m2a += m2b + d * d * (na * nb / n);
  na = n;
}

// Pairwise tree ((0,1),(2,3)),((0,2)),... over `count` consecutive entries; the result lands in entry 0.
inline void merge_moments_pairwise(double* n, double* mean, double* m2, int64_t count) {
  for (int64_t step = 1; step < count; step *= 2)
    for (int64_t a = 0; a + step < count; a += 2 * step) chan_merge(n[a], mean[a], m2[a], n[a + step], mean[a + step], m2[a + step]);
}

// The same tree for `width` independent columns stored row by row (partial t of column b at t * width + b), as the
// row walk leaves them. Each column gets the merges of merge_moments_pairwise, in the same order, but the loops
// walk memory row by row (column by column, every access was a page apart: 2x slower statistics for 1024 columns).
inline void merge_moments_rows(double* n, double* mean, double* m2, int64_t count, int64_t width) {
  for (int64_t step = 1; step < count; step *= 2)
    for (int64_t i = 0; i + step < count; i += 2 * step) {
      const int64_t a = i * width, b = (i + step) * width;
      for (int64_t j = 0; j < width; ++j) chan_merge(n[a + j], mean[a + j], m2[a + j], n[b + j], mean[b + j], m2[b + j]);
    }
}

inline void merge_sums_rows(double* s, int64_t count, int64_t width) {
  for (int64_t step = 1; step < count; step *= 2)
    for (int64_t i = 0; i + step < count; i += 2 * step) {
      double* a = s + i * width; const double* b = s + (i + step) * width;
      for (int64_t j = 0; j < width; ++j) a[j] += b[j];
    }
}

// The same tree for plain sums (gradient reductions).
inline void merge_sums_pairwise(double* s, int64_t count) {
  for (int64_t step = 1; step < count; step *= 2)
    for (int64_t a = 0; a + step < count; a += 2 * step) s[a] += s[a + step];
}

// Reductions keep kLanes independent double accumulators: one vector accumulator would wait on the add latency
// (4 cycles per 8 doubles); 32 lanes are four AVX-512 chains. A tile's runs all add into the same lanes, combined
// once per tile (combining per run made short runs, e.g. 64-element spatial planes, cost more than their data).
// The lane structure is the same for every ISA, so the association order does not depend on the vector width.
constexpr int kLanes = 32;

inline double combine_lanes(double* acc) {
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

// acc[j] += x[i + j] chunk by chunk; the tail goes to the first lanes.
template <typename T>
inline void add_run(double* acc, const T* x, int64_t len) {
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += static_cast<double>(x[i + j]);
  for (int j = 0; i + j < len; ++j) acc[j] += static_cast<double>(x[i + j]);
}

// acc[j] += (x[i + j] - mean)^2 likewise.
template <typename T>
inline void add_centered_squares(double* acc, const T* x, int64_t len, double mean) {
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      const double d = static_cast<double>(x[i + j]) - mean;
      acc[j] += d * d;
    }
  for (int j = 0; i + j < len; ++j) {
    const double d = static_cast<double>(x[i + j]) - mean;
    acc[j] += d * d;
  }
}

// a[j] += dy * w and b[j] += dy * w * (x - mean) over a run, in kLanes lanes (as moments.h); w may be null.
template <typename T>
inline void add_dot_centered(double* a, double* b, const T* dy, const T* x, const T* w, int64_t len, double mean) {
  int64_t i = 0;
  if (w) {
    for (; i + kLanes <= len; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const double d = static_cast<double>(dy[i + j]) * static_cast<double>(w[i + j]);
        a[j] += d;
        b[j] += d * (static_cast<double>(x[i + j]) - mean);
      }
  } else {
    for (; i + kLanes <= len; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const double d = static_cast<double>(dy[i + j]);
        a[j] += d;
        b[j] += d * (static_cast<double>(x[i + j]) - mean);
      }
  }
  for (int j = 0; i + j < len; ++j) {
    const double d = static_cast<double>(dy[i + j]) * (w ? static_cast<double>(w[i + j]) : 1.0);
    a[j] += d;
    b[j] += d * (static_cast<double>(x[i + j]) - mean);
  }
}

template <typename T>
inline double sum_run(const T* x, int64_t len) {
  double acc[kLanes] = {};
  add_run(acc, x, len);
  return combine_lanes(acc);
}

template <typename T>
inline double centered_squares_run(const T* x, int64_t len, double mean) {
  double acc[kLanes] = {};
  add_centered_squares(acc, x, len, mean);
  return combine_lanes(acc);
}
