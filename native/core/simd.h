// Streaming (non-temporal) stores for outputs too large to stay in cache. An ordinary store to a line that is not
// cached first reads it (read-for-ownership), so a large output costs 1.5x its bytes; a streaming store writes
// around the caches. Measured on the 2-core dev box: the training forward went from 1.4x to ~1.0x a memcpy of the
// same bytes (glibc's memcpy streams large copies too). Only whole 64-byte lines of a run stream (stream_span): the
// head up to the first line boundary and the tail after the last whole line are stored normally.
// AArch64 has no non-temporal store intrinsic (STNP is only a hint there): NEON "streams" with ordinary stores.
// Built per ISA like the rest of core/ (isa/kernels.cpp includes <immintrin.h> or <arm_neon.h> before opening the
// namespace).
#pragma once

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
inline __m512 vload(const float* p) { return _mm512_loadu_ps(p); }
inline __m512d vload(const double* p) { return _mm512_loadu_pd(p); }
inline __m512 vset(float v) { return _mm512_set1_ps(v); }
inline __m512d vset(double v) { return _mm512_set1_pd(v); }
inline void vstream(float* p, __m512 v) { _mm512_stream_ps(p, v); }
inline void vstream(double* p, __m512d v) { _mm512_stream_pd(p, v); }
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
inline __m256 vload(const float* p) { return _mm256_loadu_ps(p); }
inline __m256d vload(const double* p) { return _mm256_loadu_pd(p); }
inline __m256 vset(float v) { return _mm256_set1_ps(v); }
inline __m256d vset(double v) { return _mm256_set1_pd(v); }
inline void vstream(float* p, __m256 v) { _mm256_stream_ps(p, v); }
inline void vstream(double* p, __m256d v) { _mm256_stream_pd(p, v); }
#elif defined(__aarch64__)
constexpr int kVecBytes = 16;
inline float32x4_t vload(const float* p) { return vld1q_f32(p); }
inline float64x2_t vload(const double* p) { return vld1q_f64(p); }
inline float32x4_t vset(float v) { return vdupq_n_f32(v); }
inline float64x2_t vset(double v) { return vdupq_n_f64(v); }
inline void vstream(float* p, float32x4_t v) { vst1q_f32(p, v); }
inline void vstream(double* p, float64x2_t v) { vst1q_f64(p, v); }
#else
constexpr int kVecBytes = 16;
inline __m128 vload(const float* p) { return _mm_loadu_ps(p); }
inline __m128d vload(const double* p) { return _mm_loadu_pd(p); }
inline __m128 vset(float v) { return _mm_set1_ps(v); }
inline __m128d vset(double v) { return _mm_set1_pd(v); }
inline void vstream(float* p, __m128 v) { _mm_stream_ps(p, v); }
inline void vstream(double* p, __m128d v) { _mm_stream_pd(p, v); }
#endif

// a * b + c, scalar or vector, in one rounding where the ISA has a fused multiply-add (AVX2, AVX-512, NEON), in two
// on x86-64 baseline. The kernels are built with -ffp-contract=off (CMakeLists.txt), so a multiply and an add fuse
// only here: every form of an expression (a scalar head, an omp simd loop, a vector body, the ReLU's recomputed
// pre-activation) then gives the same bits, which GCC's own contraction, free to fuse each form its way, did not
// promise. (In omp simd loops GCC vectorizes the scalar builtin into the same vector instruction.)
#if defined(__FMA__) || defined(__aarch64__)
NK_ALWAYS_INLINE inline float fmadd(float a, float b, float c) { return __builtin_fmaf(a, b, c); }
NK_ALWAYS_INLINE inline double fmadd(double a, double b, double c) { return __builtin_fma(a, b, c); }
#if defined(__AVX512F__)
NK_ALWAYS_INLINE inline __m512 fmadd(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
NK_ALWAYS_INLINE inline __m512d fmadd(__m512d a, __m512d b, __m512d c) { return _mm512_fmadd_pd(a, b, c); }
#elif defined(__AVX__)
NK_ALWAYS_INLINE inline __m256 fmadd(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
NK_ALWAYS_INLINE inline __m256d fmadd(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
#else
NK_ALWAYS_INLINE inline float32x4_t fmadd(float32x4_t a, float32x4_t b, float32x4_t c) { return vfmaq_f32(c, a, b); }
NK_ALWAYS_INLINE inline float64x2_t fmadd(float64x2_t a, float64x2_t b, float64x2_t c) { return vfmaq_f64(c, a, b); }
#endif
#else
// No fused multiply-add (x86-64 baseline): two roundings, for scalars and SSE vectors alike.
template <typename V>
NK_ALWAYS_INLINE inline V fmadd(V a, V b, V c) { return a * b + c; }
#endif

// The normalized value ((x - hi) - lo) * s + t, and the backward's dx = a * dy + that, of every elementwise pass,
// scalar (V = T) or vector: written once, for all of them.
template <typename V>
NK_ALWAYS_INLINE inline V affine_value(V x, V hi, V lo, V s, V t) { return fmadd((x - hi) - lo, s, t); }
template <typename V>
NK_ALWAYS_INLINE inline V affine_grad_value(V a, V dy, V x, V hi, V lo, V s, V t) {
  return fmadd(a, dy, affine_value(x, hi, lo, s, t));
}

// The elementwise core of normalize and of the backward's dx: out = ((x - hi) - lo) * s + t (+ a * dy).
// Always inlined: GCC kept it out of line, and the call per run was 10% of a small training forward (64-element runs).
template <typename T>
NK_ALWAYS_INLINE inline void affine_run(const T* x, const T* dy, T* out, int64_t len, T hi, T lo, T s, T t, T a) {
  if (dy) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) out[i] = affine_grad_value(a, dy[i], x[i], hi, lo, s, t);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) out[i] = affine_value(x[i], hi, lo, s, t);
  }
}

// Outputs larger than this stream (about half of a 32 MiB L3: past it, the output would only evict the input).
constexpr int64_t kStreamBytes = int64_t(16) << 20;

// The part of an output range [0, len) that streams: whole 64-byte lines, [head, end). The partial lines at either
// end are stored normally. A line written partly by streaming stores and then partly by normal ones (the next
// run's or row's first elements, when runs end mid-line) costs a partial write-combining flush: with rows or runs
// ending 32 or 48 bytes into a line, the channels-last eval took 6x, LayerNorm's forward 2x, the NCHW forward 1.5x
// the time of the same call on a line-aligned output. An output not even T-aligned never streams.
struct StreamSpan { int64_t head, end; };

template <typename T>
inline StreamSpan stream_span(const T* out, int64_t len) {
  constexpr int64_t kLine = 64, L = kLine / static_cast<int64_t>(sizeof(T));
  const auto addr = reinterpret_cast<uintptr_t>(out);
  if (addr % sizeof(T) != 0) return {len, len};
  const int64_t to_line = static_cast<int64_t>((kLine - addr % kLine) % kLine) / static_cast<int64_t>(sizeof(T));
  const int64_t head = to_line < len ? to_line : len;
  return {head, head + (len - head) / L * L};
}

// out = ((x - hi) - lo) * s + t, or a * dy + ((x - hi) - lo) * s + t with dy, streaming the aligned body.
// The arithmetic is the same expression as affine_run's, written with vector operators.
template <typename T>
NK_ALWAYS_INLINE inline void affine_run_stream(const T* x, const T* dy, T* out, int64_t len, T hi, T lo, T s, T t, T a) {
  constexpr int64_t W = kVecBytes / sizeof(T);
  const StreamSpan span = stream_span(out, len);
  affine_run(x, dy, out, span.head, hi, lo, s, t, a);
  int64_t i = span.head;
  const auto vhi = vset(hi), vlo = vset(lo), vs = vset(s), vt = vset(t), va = vset(a);
  if (dy) {
    for (; i < span.end; i += W) vstream(out + i, affine_grad_value(va, vload(dy + i), vload(x + i), vhi, vlo, vs, vt));
  } else {
    for (; i < span.end; i += W) vstream(out + i, affine_value(vload(x + i), vhi, vlo, vs, vt));
  }
  affine_run(x + i, dy ? dy + i : nullptr, out + i, len - i, hi, lo, s, t, a);
}

// affine_run with per-position parameters (LayerNorm, RMSNorm; core/geometry.h PositionParams): w scales the normalized value (or dy), b is added.
template <typename T>
NK_ALWAYS_INLINE inline void affine_run_positional(const T* x, const T* dy, T* out, int64_t len, T hi, T lo, T s, T t, T a,
                                  const T* w, const T* b) {
  if (dy) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) out[i] = affine_grad_value(a, dy[i] * (w ? w[i] : T(1)), x[i], hi, lo, s, t);
  } else if (b) {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) out[i] = fmadd(((x[i] - hi) - lo) * s, w ? w[i] : T(1), b[i]);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) out[i] = fmadd(((x[i] - hi) - lo) * s, w ? w[i] : T(1), t);
  }
}

// The same, streaming the aligned body (see core/simd.h); the expressions are affine_run_positional's.
template <typename T>
NK_ALWAYS_INLINE inline void affine_run_positional_stream(const T* x, const T* dy, T* out, int64_t len, T hi, T lo, T s, T t, T a,
                                         const T* w, const T* b) {
  constexpr int64_t W = kVecBytes / sizeof(T);
  const StreamSpan span = stream_span(out, len);
  affine_run_positional(x, dy, out, span.head, hi, lo, s, t, a, w, b);
  int64_t i = span.head;
  const auto vhi = vset(hi), vlo = vset(lo), vs = vset(s), vt = vset(t), va = vset(a), one = vset(T(1));
  if (dy) {
    for (; i < span.end; i += W)
      vstream(out + i, affine_grad_value(va, vload(dy + i) * (w ? vload(w + i) : one), vload(x + i), vhi, vlo, vs, vt));
  } else if (b) {
    for (; i < span.end; i += W)
      vstream(out + i, fmadd(((vload(x + i) - vhi) - vlo) * vs, w ? vload(w + i) : one, vload(b + i)));
  } else {
    for (; i < span.end; i += W) vstream(out + i, fmadd(((vload(x + i) - vhi) - vlo) * vs, w ? vload(w + i) : one, vt));
  }
  affine_run_positional(x + i, dy ? dy + i : nullptr, out + i, len - i, hi, lo, s, t, a, w ? w + i : nullptr,
                        b ? b + i : nullptr);
}

// The row walk's form (channels last, 2-D): per-column coefficient arrays, one row of B columns.
template <typename T>
NK_ALWAYS_INLINE inline void affine_row(const T* x, const T* dy, T* out, int64_t B, const T* hi, const T* lo, const T* s,
                       const T* t, const T* a) {
  if (dy) {
#pragma omp simd
    for (int64_t b = 0; b < B; ++b) out[b] = affine_grad_value(a[b], dy[b], x[b], hi[b], lo[b], s[b], t[b]);
  } else {
#pragma omp simd
    for (int64_t b = 0; b < B; ++b) out[b] = affine_value(x[b], hi[b], lo[b], s[b], t[b]);
  }
}

// The vectors of one row's aligned body: len (a multiple of the vector width) elements from x, dy, out and the
// coefficient arrays, out aligned for streaming.
template <typename T>
NK_ALWAYS_INLINE inline void affine_row_vectors(const T* x, const T* dy, T* out, int64_t len, const T* hi, const T* lo,
                                                const T* s, const T* t, const T* a) {
  constexpr int64_t W = kVecBytes / sizeof(T);
  if (dy) {
    for (int64_t i = 0; i < len; i += W)
      vstream(out + i, affine_grad_value(vload(a + i), vload(dy + i), vload(x + i), vload(hi + i), vload(lo + i), vload(s + i), vload(t + i)));
  } else {
    for (int64_t i = 0; i < len; i += W)
      vstream(out + i, affine_value(vload(x + i), vload(hi + i), vload(lo + i), vload(s + i), vload(t + i)));
  }
}

// Rows of at most this many columns stream with wrapped coefficients (affine_rows_stream_narrow).
constexpr int64_t kNarrowRowCols = 64;

// Per-column coefficients copied into arrays wrapped around a row of B columns: entry k holds column (first + k) % B,
// so the W entries from any index are the coefficients of W consecutive elements, across a row end as within a row,
// and a vector that crosses a row end is the same vector expression as any other.
template <typename T, int64_t kCap>
struct WrappedCoefs {
  alignas(kVecBytes) T hi[kCap], lo[kCap], s[kCap], t[kCap], a[kCap];

  WrappedCoefs(int64_t B, int64_t first, int64_t count, const T* hi_, const T* lo_, const T* s_, const T* t_,
               const T* a_) {
    for (int64_t k = 0, c = first; k < count; ++k, c = c + 1 == B ? 0 : c + 1) {
      hi[k] = hi_[c], lo[k] = lo_[c], s[k] = s_[c], t[k] = t_[c], a[k] = a_ ? a_[c] : T(0);
    }
  }
  // The vector at out from x (and dy) with the coefficients from entry j: affine_row's expressions.
  NK_ALWAYS_INLINE void stream_value(const T* x, T* out, int64_t j) const {
    vstream(out, affine_value(vload(x), vload(hi + j), vload(lo + j), vload(s + j), vload(t + j)));
  }
  NK_ALWAYS_INLINE void stream_grad(const T* x, const T* dy, T* out, int64_t j) const {
    vstream(out, affine_grad_value(vload(a + j), vload(dy), vload(x), vload(hi + j), vload(lo + j), vload(s + j),
                                   vload(t + j)));
  }
};

// affine_rows_stream for rows of B <= kNarrowRowCols columns, where most vectors cross a row end (every one, for 8
// floats 16 bytes off a line): the coefficients are copied once into arrays wrapped around the row (entry k holds
// column k % B), so that the W columns from any column b are the W entries from b, and every vector of the range,
// across row ends or within a row, is the same vector expression. (Assembling each crossing vector from scalar
// parts made 8-column rows 20 % slower than not streaming at all.) The copies hold B + one line's elements: enough
// for the head and the tail, each under a line, from any column.
template <typename T>
inline void affine_rows_stream_narrow(const T* x, const T* dy, T* out, int64_t rows, int64_t B, const T* hi,
                                      const T* lo, const T* s, const T* t, const T* a) {
  constexpr int64_t W = kVecBytes / sizeof(T), L = 64 / static_cast<int64_t>(sizeof(T)), kCap = kNarrowRowCols + L;
  const WrappedCoefs<T, kCap> wc(B, 0, B + L, hi, lo, s, t, a);
  const T *whi = wc.hi, *wlo = wc.lo, *ws = wc.s, *wt = wc.t, *wap = a ? wc.a : nullptr;
  const int64_t n = rows * B, step = W % B;
  const StreamSpan span = stream_span(out, n);
  if (span.end == span.head) {  // nothing to stream (under two lines, or out not even T-aligned): row by row
    for (int64_t r = 0; r < rows; ++r)
      affine_row(x + r * B, dy ? dy + r * B : nullptr, out + r * B, B, hi, lo, s, t, a);
    return;
  }
  affine_row(x, dy, out, span.head, whi, wlo, ws, wt, wap);  // from column 0: the block starts a row
  int64_t i = span.head, b = span.head % B;  // b: the column of element i
  if (dy) {
    for (; i < span.end; i += W) {
      wc.stream_grad(x + i, dy + i, out + i, b);
      b += step;
      if (b >= B) b -= B;
    }
  } else {
    for (; i < span.end; i += W) {
      wc.stream_value(x + i, out + i, b);
      b += step;
      if (b >= B) b -= B;
    }
  }
  affine_row(x + i, dy ? dy + i : nullptr, out + i, n - i, whi + b, wlo + b, ws + b, wt + b, wap ? wap + b : nullptr);
}

// `rows` consecutive rows of B columns (contiguous: a block of the row walk), streamed as one range. Row by row,
// every row end that falls inside a 64-byte line would need normal stores on both sides of it (stream_span): a line
// read and scalar work per row. Here only the block's partial first and last lines are stored normally; a vector
// that straddles a row end is streamed whole, its coefficients taken from copies wrapped around the row end
// (WrappedCoefs).
// (Row by row with 32-byte heads, out 48 bytes into a line made the channels-last eval 6x slower.) Rows of up to
// kNarrowRowCols columns, where row ends are many, take affine_rows_stream_narrow instead. Same expressions, same
// bits (the kernels are built with -ffp-contract=off: a vector expression is its scalar form lane by lane).
template <typename T>
inline void affine_rows_stream(const T* x, const T* dy, T* out, int64_t rows, int64_t B, const T* hi, const T* lo,
                               const T* s, const T* t, const T* a) {
  constexpr int64_t W = kVecBytes / sizeof(T);
  if (B <= kNarrowRowCols) {
    affine_rows_stream_narrow(x, dy, out, rows, B, hi, lo, s, t, a);
    return;
  }
  const int64_t n = rows * B;
  // len elements from element i (column b) into dst, across as many row ends as they span.
  const auto part = [&](int64_t i, int64_t b, int64_t len, T* dst) {
    while (len > 0) {
      const int64_t m = min_i64(len, B - b);
      affine_row(x + i, dy ? dy + i : nullptr, dst, m, hi + b, lo + b, s + b, t + b, a ? a + b : nullptr);
      i += m, dst += m, len -= m, b = 0;
    }
  };
  const StreamSpan span = stream_span(out, n);
  if (span.end == span.head) {
    part(0, 0, n, out);
    return;
  }
  part(0, 0, span.head, out);
  // The vector across a row end (B >= W: one row end at most) takes its coefficients from copies wrapped around it
  // (WrappedCoefs from column B - W: the W columns from column b > B - W are the W entries from b - (B - W)), the
  // same expression as inside a row: the same bits. Assembled from the two rows' parts in a buffer (short loops,
  // then a vector load of what they stored), it was a sixth of the float32 eval where every row has one (`out` 16
  // bytes into a line, as V8's large buffers start): same process, 2 threads, channels-last [64,56,56,128] 4.91 ->
  // 4.11 ms, [65536,512] 6.36 -> 5.05 (1 thread 0.84-0.87x); float64 and the forward's and backward's passes level
  // within the noise.
  const WrappedCoefs<T, 2 * W> across(B, B - W, 2 * W, hi, lo, s, t, a);
  int64_t i = span.head, b = span.head % B;  // b: the column of element i
  while (i < span.end) {
    const int64_t whole = min_i64(B - b, span.end - i) / W * W;
    affine_row_vectors(x + i, dy ? dy + i : nullptr, out + i, whole, hi + b, lo + b, s + b, t + b, a ? a + b : nullptr);
    i += whole, b += whole;
    if (b == B) b = 0;
    if (b == 0 || i == span.end) continue;
    if (dy) across.stream_grad(x + i, dy + i, out + i, b - (B - W));
    else across.stream_value(x + i, out + i, b - (B - W));
    i += W, b += W - B;
  }
  part(i, b, n - i, out + i);
}

// Streaming stores are weakly ordered: fence them before the data is handed to anyone else. (NEON's are ordinary
// stores, ordered for other threads by the OpenMP barrier that ends the region.)
#if defined(__aarch64__)
inline void stream_fence() {}
#else
inline void stream_fence() { _mm_sfence(); }
#endif

// The `done` of a parallel_for whose tasks may stream (core/parallel.h): each thread fences its own stores once.
inline auto fence_streams(bool stream) {
  return [stream] { if (stream) stream_fence(); };
}
