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

// The lanes in registers: kLanes / kLaneWidth vectors of kLaneWidth doubles (GCC/Clang vector extensions; each ISA
// build maps one to two xmm or a ymm, and on AVX-512 to a zmm of 8). A vector add is the lane adds it holds, so
// every loop below makes the scalar lane loop's additions in the scalar loop's order whatever the width: lane j gets
// element j of each chunk, and combine_lanes the same tree: the same bits on every ISA. Written as arrays in memory,
// the lanes were stored and reloaded around every run (and zeroed with rep stos): 3x the instructions on 64-element
// runs. On AVX-512 the lanes were half a zmm until 2026-12-02: twice the conversions and adds the ISA needs. A zmm
// of 8, same process, the build before -> this one, kernels alone (BatchNorm, 1 thread, training forward / backward):
// [8,16,8,8] float32 0.85x / 0.91x the time, float64 0.92x / 0.94x, [4,256,7,7] 0.78x / 0.93x, [128,32,16,16] 0.83x /
// 0.89x; through the functional API: GroupNorm(32) [16,256,56,56] 0.78x / 0.90x, LayerNorm [1024,512] 0.89x / 0.83x.
#if defined(__AVX512F__)
constexpr int kLaneWidth = 8;
#else
constexpr int kLaneWidth = 4;
#endif
typedef double LaneVec __attribute__((vector_size(8 * kLaneWidth)));
typedef double LaneVecU __attribute__((vector_size(8 * kLaneWidth), aligned(8), may_alias));
constexpr int kLaneVecs = kLanes / kLaneWidth;
static_assert(kLanes == 32 && kLanes % kLaneWidth == 0, "combine_lanes' tree is written for 32 lanes");

// acc += a * b, in one rounding where the ISA has a fused multiply-add (AVX2, AVX-512, NEON), two on x86-64 baseline.
// The kernels are built with -ffp-contract=off, so a multiply-add fuses only where written (here, and core/simd.h
// fmadd): the same in every loop that must agree (a run's chunks and its tail), instead of wherever GCC's
// contraction happened to fuse one. The lane reductions' centered products use it: there the add chain, not
// memory, bounds the speed (the NCHW forward on L2-resident channels ran 15 % slower with a multiply and an add).
// By reference: see below. (simd.h's fmadd has no overload for these lanes: 4 doubles, half a vector, below AVX-512.)
inline void add_product(LaneVec& acc, const LaneVec& a, const LaneVec& b) {
#if defined(__AVX512F__)
  acc = reinterpret_cast<LaneVec>(_mm512_fmadd_pd(reinterpret_cast<__m512d>(a), reinterpret_cast<__m512d>(b),
                                                  reinterpret_cast<__m512d>(acc)));
#elif defined(__FMA__)
  acc = reinterpret_cast<LaneVec>(_mm256_fmadd_pd(reinterpret_cast<__m256d>(a), reinterpret_cast<__m256d>(b),
                                                  reinterpret_cast<__m256d>(acc)));
#elif defined(__aarch64__)
  float64x2_t* pc = reinterpret_cast<float64x2_t*>(&acc);
  const float64x2_t* pa = reinterpret_cast<const float64x2_t*>(&a);
  const float64x2_t* pb = reinterpret_cast<const float64x2_t*>(&b);
  pc[0] = vfmaq_f64(pc[0], pa[0], pb[0]);
  pc[1] = vfmaq_f64(pc[1], pa[1], pb[1]);
#else
  acc += a * b;
#endif
}

// Loads and stores go through references: a 32-byte vector passed by value has no fixed ABI below AVX (GCC's
// -Wpsabi), and everything here is inlined anyway.
inline void load_lanes(LaneVec& v, const double* p) { v = *reinterpret_cast<const LaneVecU*>(p); }
inline void store_lanes(double* p, const LaneVec& v) { *reinterpret_cast<LaneVecU*>(p) = v; }
// kLaneWidth floats widened (exactly) to doubles. The ISA's instruction where there is one: GCC 12 splits
// __builtin_convertvector(float x4 -> double x4) into halves through the stack.
inline void load_lanes(LaneVec& v, const float* p) {
#if defined(__AVX512F__)  // maskz, every lane: _mm512_cvtps_pd's undefined source trips GCC 12's -Wuninitialized
  v = reinterpret_cast<LaneVec>(_mm512_maskz_cvtps_pd(0xff, _mm256_loadu_ps(p)));
#elif defined(__AVX__)
  v = reinterpret_cast<LaneVec>(_mm256_cvtps_pd(_mm_loadu_ps(p)));
#elif defined(__SSE2__)
  const __m128 f = _mm_loadu_ps(p);
  const __m128d lo = _mm_cvtps_pd(f), hi = _mm_cvtps_pd(_mm_movehl_ps(f, f));
  v = LaneVec{lo[0], lo[1], hi[0], hi[1]};
#else
  v = LaneVec{static_cast<double>(p[0]), static_cast<double>(p[1]), static_cast<double>(p[2]), static_cast<double>(p[3])};
#endif
}

// The lanes of one reduction, held as vectors so that they stay in registers across the runs of a tile (as an
// array in memory they were zeroed with rep stos, and stored and reloaded around every run: 3x the instructions
// of the additions themselves on 64-element runs). Value-initialize: `Lanes acc{};` is all zeros.
struct Lanes {
  LaneVec v[kLaneVecs];
  // All zeros, one vector at a time: value-initializing the array (`Lanes acc{}` without this) became a memset, which
  // GCC emits as rep stos (a ~35-cycle start) followed by loads of what it stored, twice per tile.
  NK_ALWAYS_INLINE Lanes() {
#pragma GCC unroll 8
    for (int q = 0; q < kLaneVecs; ++q) v[q] = LaneVec{};
  }
};

// acc[j] += acc[j + w] for w = 16, 8, 4, 2, 1: the pairwise tree, lane for lane.
inline double combine_lanes(Lanes& acc) {
  LaneVec* v = acc.v;
  for (int h = kLaneVecs / 2; h >= 1; h /= 2)  // w = 16, 8 (and 4 where a vector holds 4 lanes)
    for (int q = 0; q < h; ++q) v[q] += v[q + h];
#if defined(__AVX512F__)
  typedef double Half __attribute__((vector_size(32), aligned(8), may_alias));
  const Half* half = reinterpret_cast<const Half*>(&v[0]);
  const Half four = half[0] + half[1];                           // w = 4
  const double l0 = four[0] + four[2], l1 = four[1] + four[3];  // w = 2
#else
  const double l0 = v[0][0] + v[0][2], l1 = v[0][1] + v[0][3];  // w = 2
#endif
  return l0 + l1;                                                // w = 1
}

// The last n < kLanes terms of a run go to the first n lanes, acc[j] += term(j). They are added as whole vectors
// (vector q of the tail: term(Wq + k) in lane k, W = kLaneWidth, and +0.0 past n), which changes no bit: a lane
// starts at +0.0, and a round-to-nearest sum is -0.0 only when every term is. So the lanes keep constant indices and
// stay in registers.
// Callers loop over q < kLaneVecs (a constant bound, unrolled) and stop at Wq >= n.
template <typename F>
inline void tail_lanes(LaneVec& t, int64_t n, int q, F&& term) {
  t = LaneVec{};
  for (int k = 0; k < kLaneWidth; ++k)
    if (kLaneWidth * q + k < n) t[k] = term(kLaneWidth * q + k);
}

// tail_lanes for the tail's vectors q with all their lanes in the tail (Wq + W <= n) through full(t, Wq), the
// vector form of the same term: the same lane values. Building them lane by lane cost 3.5x the chunks' time per
// element on 49-element runs (a 7x7 feature map), where most of a run is tail.
template <typename Full, typename Term>
NK_ALWAYS_INLINE inline void tail_vector(LaneVec& t, int64_t n, int q, Full&& full, Term&& term) {
  if (kLaneWidth * q + kLaneWidth <= n) full(t, kLaneWidth * q);
  else tail_lanes(t, n, q, term);
}

// The tail's vector q of the n values p[0..n) (tail_vector), and of p[j] - mean (m: mean in every lane).
template <typename T>
NK_ALWAYS_INLINE inline void tail_values(LaneVec& t, const T* p, int64_t n, int q) {
  tail_vector(t, n, q, [&](LaneVec& v, int64_t j) NK_ALWAYS_INLINE { load_lanes(v, p + j); },
              [&](int64_t j) { return static_cast<double>(p[j]); });
}
template <typename T>
NK_ALWAYS_INLINE inline void tail_centered(LaneVec& t, const T* p, int64_t n, int q, const LaneVec& m, double mean) {
  tail_vector(t, n, q, [&](LaneVec& v, int64_t j) NK_ALWAYS_INLINE { load_lanes(v, p + j); v -= m; },
              [&](int64_t j) { return static_cast<double>(p[j]) - mean; });
}

// One whole chunk of kLanes elements of each reduction below (add_dot_centered_chunk: after NoColumns): lane j gets
// element j. The runs' loops and the chunk walks of whole-chunk tiles (norm.h for_each_chunk) share them, so both
// make the same operations: the same bits.
template <typename T>
NK_ALWAYS_INLINE inline void add_chunk(Lanes& acc, const T* x) {
  for (int q = 0; q < kLaneVecs; ++q) {
    LaneVec xv;
    load_lanes(xv, x + kLaneWidth * q);
    acc.v[q] += xv;
  }
}
template <typename T>
NK_ALWAYS_INLINE inline void add_centered_squares_chunk(Lanes& acc, const T* x, const LaneVec& m) {
  for (int q = 0; q < kLaneVecs; ++q) {
    LaneVec d;
    load_lanes(d, x + kLaneWidth * q);
    d -= m;
    add_product(acc.v[q], d, d);
  }
}

// acc[j] += x[i + j] chunk by chunk; the tail goes to the first lanes.
template <typename T>
inline void add_run(Lanes& acc, const T* x, int64_t len) {
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes) add_chunk(acc, x + i);
  for (int q = 0; q < kLaneVecs && i < len; ++q) {  // constant bound: unrolled, so the lane indices are constants
    if (kLaneWidth * q >= len - i) break;
    LaneVec t;
    tail_values(t, x + i, len - i, q);
    acc.v[q] += t;
  }
}

// acc[j] += (x[i + j] - mean)^2 likewise (the tail's unused lanes hold 0, and 0 * 0 adds +0.0).
template <typename T>
inline void add_centered_squares(Lanes& acc, const T* x, int64_t len, double mean) {
  int64_t i = 0;
  const LaneVec m = LaneVec{} + mean;
  for (; i + kLanes <= len; i += kLanes) add_centered_squares_chunk(acc, x + i, m);
  for (int q = 0; q < kLaneVecs && i < len; ++q) {  // constant bound: unrolled, so the lane indices are constants
    if (kLaneWidth * q >= len - i) break;
    LaneVec d;
    tail_centered(d, x + i, len - i, q, m, mean);
    add_product(acc.v[q], d, d);
  }
}

// One chunk of add_dot_centered: a[q] += dy * w, b[q] += dy * w * (x - mean) for each vector q.
template <typename T>
NK_ALWAYS_INLINE inline void add_dot_centered_chunk(Lanes& a, Lanes& b, const T* dy, const T* x, const T* w,
                                                    const LaneVec& m) {
  for (int q = 0; q < kLaneVecs; ++q) {
    LaneVec d, c;
    load_lanes(d, dy + kLaneWidth * q);
    load_lanes(c, x + kLaneWidth * q);
    c -= m;
    if (w) {
      LaneVec wv;
      load_lanes(wv, w + kLaneWidth * q);
      d *= wv;
    }
    a.v[q] += d;
    add_product(b.v[q], d, c);
  }
}

// a[j] += dy * w and b[j] += dy * w * (x - mean) over a run, in kLanes lanes (as moments.h); w may be null.
template <typename T>
inline void add_dot_centered(Lanes& a, Lanes& b, const T* dy, const T* x, const T* w, int64_t len, double mean) {
  int64_t i = 0;
  const LaneVec m = LaneVec{} + mean;
  for (; i + kLanes <= len; i += kLanes) add_dot_centered_chunk(a, b, dy + i, x + i, w ? w + i : nullptr, m);
  // The tail with 0 in the unused lanes, as moments.h tail_lanes (0 * 0 adds +0.0 to b).
  for (int q = 0; q < kLaneVecs && i < len; ++q) {  // constant bound: unrolled, so the lane indices are constants
    if (kLaneWidth * q >= len - i) break;
    LaneVec d, c;
    // With w the lanes are built one by one (dy * w rounded once, as in the chunks).
    if (w) tail_lanes(d, len - i, q, [&](int64_t j) { return static_cast<double>(dy[i + j]) * static_cast<double>(w[i + j]); });
    else tail_values(d, dy + i, len - i, q);
    tail_centered(c, x + i, len - i, q, m, mean);
    a.v[q] += d;
    add_product(b.v[q], d, c);
  }
}

template <typename T>
inline double sum_run(const T* x, int64_t len) {
  Lanes acc{};
  add_run(acc, x, len);
  return combine_lanes(acc);
}

template <typename T>
inline double centered_squares_run(const T* x, int64_t len, double mean) {
  Lanes acc{};
  add_centered_squares(acc, x, len, mean);
  return combine_lanes(acc);
}
