// The fused activation (activation 'relu', with an optional residual r) inside the kernels' elementwise passes, so
// normalize → (add) → ReLU moves the bytes of the normalize alone, plus r (and the residual's gradient):
//   forward:   y = relu(norm(x) + r)             in the normalize loop itself
//   backward:  dz = (norm(x) + r > 0) ? dy : 0   recomputed from the saved input wherever a kernel reads dy (the
//                                                sums, dx, the position gradients): no mask kept, no pass of its own
// The ReLU and the mask are computed inside the elementwise loops (the ..._relu functions below), on the same
// expression ((x - hi) - lo) * s + t with the same coefficients as the forward, so the backward's mask agrees bit for
// bit with the forward's output (test/fullsize.test.ts checks it with a residual of exactly -norm(x)). LayerNorm's
// per-position w and b go through an L1 chunk buffer instead (relu_forward_chunks, relu_grad_chunks), computed by
// the same run function in both directions. relu(NaN) is NaN and NaN > 0 is false, as PyTorch's relu and
// threshold_backward (whose gradient at exactly 0 is 0).
#pragma once

// Elements per chunk: the buffer is on the stack (1 KB of float) and stays in L1 with the chunk's inputs. A multiple
// of kLanes, so a reduction fed chunk by chunk adds every element into the lane an unchunked run would.
constexpr int64_t kReluChunk = 256;


// ---------------------------------------------------------------------------------------------------------------
// The ReLU inside the loops. An element's forward pre-activation is p = ((x - hi) - lo) * s + t [+ r]; the forward
// stores p < 0 ? 0 : p, the backward reads dz = p > 0 ? dy : 0. Each function is one loop (omp simd), or with
// `stream` an aligned body of vectors streamed past the caches between a scalar head and tail (core/simd.h). The
// residual's presence is a compile-time flag (R, from with_residual), so that no loop holds a branch on it.
// ---------------------------------------------------------------------------------------------------------------

template <bool B>
struct Flag { static constexpr bool value = B; };

// f(Flag<r != null>()): the residual's presence as a compile-time flag.
template <typename T, typename F>
inline void with_residual(const T* r, F&& f) {
  if (r) f(Flag<true>());
  else f(Flag<false>());
}

// out[i] = f(i) for i in [0, n): the whole vectors from vf(i) (W elements at a time; streamed past the caches with
// `stream`: whole 64-byte lines, see simd.h stream_span), the tail from f. The vector body is written with vector operators
// because GCC does not if-convert the ReLU's select in a scalar loop here (it branched: 8x slower measured); f and vf
// compute the same IEEE operations.
template <typename T, typename F, typename VF>
NK_ALWAYS_INLINE inline void store_each(T* out, int64_t n, bool stream, F&& f, VF&& vf) {
  constexpr int64_t W = kVecBytes / sizeof(T);
  int64_t i = 0;
  if (stream) {
    const StreamSpan span = stream_span(out, n);
    for (; i < span.head; ++i) out[i] = f(i);
    for (; i < span.end; i += W) vstream(out + i, vf(i));
  } else {
    for (; i + W <= n; i += W) {
      const auto v = vf(i);
      __builtin_memcpy(out + i, &v, sizeof v);
    }
  }
  for (; i < n; ++i) out[i] = f(i);
}

// out = v over n elements, streaming the aligned body when asked (v is an L1 buffer).
template <typename T>
inline void store_run(const T* v, T* out, int64_t n, bool stream) {
  store_each(out, n, stream, [&](int64_t i) NK_ALWAYS_INLINE { return v[i]; },
             [&](int64_t i) NK_ALWAYS_INLINE { return vload(v + i); });
}

// The forward's coefficients at element i: one group's (scalar, Coefs) or a row's columns' (ColumnCoefs), with
// their vector loads. p(x, i) is the pre-activation without the residual.
template <typename T>
struct Coefs {
  T hi, lo, s, t;
  NK_ALWAYS_INLINE T p(T x, int64_t) const { return affine_value(x, hi, lo, s, t); }
  template <typename V>
  NK_ALWAYS_INLINE V vp(V x, int64_t) const { return affine_value(x, vset(hi), vset(lo), vset(s), vset(t)); }
};
template <typename T>
struct ColumnCoefs {
  const T* hi; const T* lo; const T* s; const T* t;
  NK_ALWAYS_INLINE T p(T x, int64_t i) const { return affine_value(x, hi[i], lo[i], s[i], t[i]); }
  template <typename V>
  NK_ALWAYS_INLINE V vp(V x, int64_t i) const { return affine_value(x, vload(hi + i), vload(lo + i), vload(s + i), vload(t + i)); }
};

// What the kernels pass down for the ReLU (built by isa/kernels.cpp and core/fused.h).
template <typename T>
struct Relu {
  const T* r;  // the residual, or null
  // The backward's (x == null: the forward's epilogue, which needs only r):
  const T* x;  // the forward's input
  T* dr;       // receives dz, the residual's gradient, in the dx pass; or null
  const T* hi; const T* lo; const T* s; const T* t;  // the forward's coefficients, per group of the walk
  PositionParams<T> pos;                             // the forward's per-position w, b (LayerNorm)
  bool backward() const { return x != nullptr; }
  Coefs<T> group(int64_t g) const { return Coefs<T>{hi[g], lo[g], s[g], t[g]}; }
  ColumnCoefs<T> columns(int64_t g0) const { return ColumnCoefs<T>{hi + g0, lo + g0, s + g0, t + g0}; }
};

// The backward's dy scale at element i: one per group (Scale) or per column of a row (ColumnScale).
template <typename T>
struct Scale {
  T a;
  NK_ALWAYS_INLINE T at(int64_t) const { return a; }
  NK_ALWAYS_INLINE auto vat(int64_t) const { return vset(a); }
};
template <typename T>
struct ColumnScale {
  const T* a;
  NK_ALWAYS_INLINE T at(int64_t i) const { return a[i]; }
  NK_ALWAYS_INLINE auto vat(int64_t i) const { return vload(a + i); }
};

// Forward: out = relu(p + r) over n elements (r null: relu(p)).
template <typename T, typename C>
inline void affine_relu(const T* x, const T* r, T* out, int64_t n, C c, bool stream) {
  with_residual(r, [&](auto res) {
    constexpr bool R = decltype(res)::value;
    const auto z = vset(T(0));
    store_each(out, n, stream,
               [&](int64_t i) NK_ALWAYS_INLINE { const T v = R ? c.p(x[i], i) + r[i] : c.p(x[i], i); return v < T(0) ? T(0) : v; },
               [&](int64_t i) NK_ALWAYS_INLINE {
                 auto v = c.vp(vload(x + i), i);
                 if (R) v = v + vload(r + i);
                 return v < z ? z : v;
               });
  });
}

// Backward: dz = (p + r > 0) ? dy : 0 of element i (R: with the residual), scalar and vector.
// dy is loaded unconditionally so that the select is branch-free (a conditional load stays a branch, and a branch
// on the sign of normalized data mispredicts half the time: 4-8x slower measured).
template <bool R, typename T, typename C>
NK_ALWAYS_INLINE inline T dz_at(const T* dy, const T* x, const T* r, C c, int64_t i) {
  const T d = dy[i], v = R ? c.p(x[i], i) + r[i] : c.p(x[i], i);
  return v > T(0) ? d : T(0);
}
template <bool R, typename T, typename C>
NK_ALWAYS_INLINE inline auto vdz_at(const T* dy, const T* x, const T* r, C c, int64_t i) {
  auto v = c.vp(vload(x + i), i);
  if (R) v = v + vload(r + i);
  const auto z = vset(T(0));
  return v > z ? vload(dy + i) : z;
}

// dz of kLanes elements from i into buf (vectors; the whole blocks of a run).
template <bool R, typename T, typename C>
NK_ALWAYS_INLINE inline void dz_block(T* buf, const T* dy, const T* x, const T* r, C c, int64_t i) {
  constexpr int64_t W = kVecBytes / sizeof(T);
  for (int64_t j = 0; j < kLanes; j += W) {
    const auto v = vdz_at<R>(dy, x, r, c, i + j);
    __builtin_memcpy(buf + j, &v, sizeof v);
  }
}

// a[j] += dz and b[j] += dz * (x - mean) over a run of one group, in the lanes of add_dot_centered (dz of each block
// of kLanes computed into a stack buffer first, then added as add_dot_centered adds dy).
template <typename T>
inline void add_dot_centered_relu(Lanes& a, Lanes& b, const T* dy, const T* x, const T* r, int64_t len, double mean,
                                  Coefs<T> c) {
  with_residual(r, [&](auto res) {
    constexpr bool R = decltype(res)::value;
    alignas(64) T dz[kLanes];
    int64_t i = 0;
    for (; i + kLanes <= len; i += kLanes) {
      dz_block<R>(dz, dy, x, r, c, i);
      add_dot_centered(a, b, dz, x + i, static_cast<const T*>(nullptr), kLanes, mean);
    }
    for (int64_t j = 0; i + j < len; ++j) dz[j] = dz_at<R>(dy, x, r, c, i + j);
    add_dot_centered(a, b, dz, x + i, static_cast<const T*>(nullptr), len - i, mean);
  });
}

// Row walk: s_dy[i] += dz, s_dyx[i] += dz * (x - m[i]) for the n columns of a row.
template <typename T>
inline void add_columns_relu(double* s_dy, double* s_dyx, const T* dy, const T* x, const T* r, const double* m,
                             int64_t n, ColumnCoefs<T> c) {
  with_residual(r, [&](auto res) {
    constexpr bool R = decltype(res)::value;
    alignas(64) T dz[kLanes];
    for (int64_t i = 0; i < n; i += kLanes) {
      const int64_t len = min_i64(kLanes, n - i);
      if (len == kLanes) dz_block<R>(dz, dy, x, r, c, i);
      else for (int64_t j = 0; j < len; ++j) dz[j] = dz_at<R>(dy, x, r, c, i + j);
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) {
        const double d = static_cast<double>(dz[j]);
        s_dy[i + j] += d;
        s_dyx[i + j] = fmadd(d, static_cast<double>(x[i + j]) - m[i + j], s_dyx[i + j]);
      }
    }
  });
}

// dz of element i (scalar) or of the W elements from i (vector), also stored to dr when given: the residual's
// gradient comes from the dx loop's own mask.
template <bool R, typename T, typename C>
NK_ALWAYS_INLINE inline T dz_out(const T* dy, const T* x, const T* r, T* dr, C c, int64_t i) {
  const T d = dz_at<R>(dy, x, r, c, i);
  if (dr) dr[i] = d;
  return d;
}
template <bool R, typename T, typename C>
NK_ALWAYS_INLINE inline auto vdz_out(const T* dy, const T* x, const T* r, T* dr, C c, int64_t i) {
  const auto d = vdz_at<R>(dy, x, r, c, i);
  if (dr) __builtin_memcpy(dr + i, &d, sizeof d);
  return d;
}

// The training dx = a * dz + ((x - hi) - lo) * bb + cc (g: the backward's coefficients, a: its dy scale; f: the
// forward's, for the mask), with dz also stored to dr when given.
template <typename T, typename C, typename S>
inline void affine_grad_relu(const T* x, const T* dy, const T* r, T* dr, T* out, int64_t n, C g, S a, C f,
                             bool stream) {
  with_residual(r, [&](auto res) {
    constexpr bool R = decltype(res)::value;
    store_each(out, n, stream,
               [&](int64_t i) NK_ALWAYS_INLINE { return fmadd(a.at(i), dz_out<R>(dy, x, r, dr, f, i), g.p(x[i], i)); },
               [&](int64_t i) NK_ALWAYS_INLINE { return fmadd(a.vat(i), vdz_out<R>(dy, x, r, dr, f, i), g.vp(vload(x + i), i)); });
  });
}

// The eval dx = a * dz (no x - mean term: an inf in x must not become NaN), xf the forward's input.
template <typename T, typename C, typename S>
inline void scale_grad_relu(const T* xf, const T* dy, const T* r, T* dr, T* out, int64_t n, S a, C f, bool stream) {
  with_residual(r, [&](auto res) {
    constexpr bool R = decltype(res)::value;
    store_each(out, n, stream, [&](int64_t i) NK_ALWAYS_INLINE { return a.at(i) * dz_out<R>(dy, xf, r, dr, f, i); },
               [&](int64_t i) NK_ALWAYS_INLINE { return a.vat(i) * vdz_out<R>(dy, xf, r, dr, f, i); });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// LayerNorm's per-position form: through an L1 chunk buffer, the pre-activation computed by the run function the
// forward uses (affine_run / affine_run_positional).
// ---------------------------------------------------------------------------------------------------------------

// v = relu(v + r) in place (r null: relu(v)); v < 0 ? 0 : v keeps NaN and -0, as PyTorch's relu.
template <typename T>
inline void add_relu(T* v, const T* r, int64_t n) {
  if (r) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const T s = v[i] + r[i];
      v[i] = s < T(0) ? T(0) : s;
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) v[i] = v[i] < T(0) ? T(0) : v[i];
  }
}

// dz = (pre + r > 0) ? dy : 0, in place over pre (dy loaded unconditionally, as in dz_at).
template <typename T>
inline void relu_grad(T* z, const T* r, const T* dy, int64_t n) {
  if (r) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const T d = dy[i], v = z[i] + r[i];
      z[i] = v > T(0) ? d : T(0);
    }
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const T d = dy[i], v = z[i];
      z[i] = v > T(0) ? d : T(0);
    }
  }
}

// The forward's pre-activation of n elements of group grp's run at position k (LayerNorm's w/b index) into buf.
template <typename T>
inline void relu_pre_run(const Relu<T>& a, int64_t grp, const T* x, T* buf, int64_t n, int64_t k) {
  if (a.pos.w || a.pos.b)
    affine_run_positional(x, static_cast<const T*>(nullptr), buf, n, a.hi[grp], a.lo[grp], a.s[grp], a.t[grp], T(0),
                          a.pos.w ? a.pos.w + k : nullptr, a.pos.b ? a.pos.b + k : nullptr);
  else
    affine_run(x, static_cast<const T*>(nullptr), buf, n, a.hi[grp], a.lo[grp], a.s[grp], a.t[grp], T(0));
}

// Forward: for each chunk [i, i + n) of the len elements at off, pre(i, n, buf) writes the normalized values, then
// out[off + i ..] = relu(buf + r).
template <typename T, typename Pre>
inline void relu_forward_chunks(const Relu<T>& a, int64_t off, int64_t len, T* out, bool stream, Pre&& pre) {
  T buf[kReluChunk];
  for (int64_t i = 0; i < len; i += kReluChunk) {
    const int64_t n = min_i64(kReluChunk, len - i);
    pre(i, n, buf);
    add_relu(buf, a.r ? a.r + off + i : nullptr, n);
    store_run(buf, out + off + i, n, stream);
  }
}

// Backward: for each chunk, pre(i, n, buf) writes the forward's pre-activation, buf becomes dz from dy[off + i ..],
// and use(i, n, dz) consumes it; with write_dr, dz also goes to the residual's gradient.
template <typename T, typename Pre, typename Use>
inline void relu_grad_chunks(const Relu<T>& a, int64_t off, int64_t len, const T* dy, bool write_dr, Pre&& pre,
                             Use&& use) {
  T buf[kReluChunk];
  for (int64_t i = 0; i < len; i += kReluChunk) {
    const int64_t n = min_i64(kReluChunk, len - i);
    pre(i, n, buf);
    relu_grad(buf, a.r ? a.r + off + i : nullptr, dy + off + i, n);
    if (write_dr && a.dr) store_run(buf, a.dr + off + i, n, false);
    use(i, n, static_cast<const T*>(buf));
  }
}

// dz of the len elements of group grp's run at off (position k0), chunk by chunk, for use(i, n, dz).
template <typename T, typename Use>
inline void relu_grad_run(const Relu<T>& a, int64_t grp, int64_t off, int64_t len, int64_t k0, const T* dy,
                          bool write_dr, Use&& use) {
  relu_grad_chunks(a, off, len, dy, write_dr,
                   [&](int64_t i, int64_t n, T* buf) { relu_pre_run(a, grp, a.x + off + i, buf, n, k0 + i); }, use);
}
