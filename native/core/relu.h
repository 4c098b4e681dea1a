// The fused activation (activation 'relu', with an optional residual r) inside the kernels' elementwise passes, so
// normalize → (add) → ReLU moves the bytes of the normalize alone, plus r (and the residual's gradient):
//   forward:   y = relu(norm(x) + r)             norm(x) of a chunk into a stack buffer, relu(v + r) stored to y
//   backward:  dz = (norm(x) + r > 0) ? dy : 0   recomputed from the saved input wherever a kernel reads dy (the
//                                                sums, dx, the position gradients): no mask kept, no pass of its own
// The pre-activation is computed by the same run function in both directions (affine_run, affine_run_positional or
// affine_row; never their streaming twins, whose bodies are written with vector operators), with the same
// coefficients, so the backward's mask agrees bit for bit with the forward's output. relu(NaN) is NaN and NaN > 0 is
// false, as PyTorch's relu and threshold_backward (whose gradient at exactly 0 is 0).
#pragma once

// Elements per chunk: the buffer is on the stack (1 KB of float) and stays in L1 with the chunk's inputs. A multiple
// of kLanes, so a reduction fed chunk by chunk adds every element into the lane an unchunked run would.
constexpr int64_t kReluChunk = 256;

template <typename T>
struct Relu {
  const T* r;  // the residual, or null
  // The backward's (x == null: the forward's epilogue, which needs only r):
  const T* x;  // the forward's input
  T* dr;       // receives dz, the residual's gradient, in the dx pass; or null
  const T* hi; const T* lo; const T* s; const T* t;  // the forward's coefficients, per group of the walk
  PositionParams<T> pos;                             // the forward's per-position w, b (LayerNorm)
  bool backward() const { return x != nullptr; }
};

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

// dz = (pre + r > 0) ? dy : 0, in place over pre. dy is loaded unconditionally so that the select is branch-free
// (a branch on the sign of normalized data mispredicts half the time: 4x slower measured).
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

// out = v over n elements, streaming the aligned body when asked (v is an L1 buffer).
template <typename T>
inline void store_run(const T* v, T* out, int64_t n, bool stream) {
  int64_t i = 0;
  if (stream) {
    constexpr int64_t W = kVecBytes / sizeof(T);
    const int64_t head = head_to_align(out, n);
    for (; i < head; ++i) out[i] = v[i];
    for (; i + W <= n; i += W) vstream(out + i, vload(v + i));
  }
  for (; i < n; ++i) out[i] = v[i];
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

// The same for n columns of a row walk's row, starting at group (column) grp.
template <typename T>
inline void relu_pre_row(const Relu<T>& a, int64_t grp, const T* x, T* buf, int64_t n) {
  affine_row(x, static_cast<const T*>(nullptr), buf, n, a.hi + grp, a.lo + grp, a.s + grp, a.t + grp,
             static_cast<const T*>(nullptr));
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

// dz of a row walk's row at off, whose column b belongs to group g0 + b.
template <typename T, typename Use>
inline void relu_grad_row(const Relu<T>& a, int64_t g0, int64_t off, int64_t B, const T* dy, bool write_dr,
                          Use&& use) {
  relu_grad_chunks(a, off, B, dy, write_dr,
                   [&](int64_t i, int64_t n, T* buf) { relu_pre_row(a, g0 + i, a.x + off + i, buf, n); }, use);
}
