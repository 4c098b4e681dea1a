// The kernel core, compiled once per ISA. CMakeLists.txt / binding.gyp build this file three times on x86-64 with
// NK_ISA = baseline (-march=x86-64), avx2 (-march=x86-64-v3) or avx512 (-march=x86-64-v4), and once on AArch64
// with NK_ISA = neon (-march=armv8-a).
//
// core/*.h is included INSIDE namespace normkit::NK_ISA: an inline function or template left outside would be
// emitted by all three objects and the linker would keep one of them, maybe the AVX-512 one on a CPU without it.
// For the same reason the core uses no std:: templates (their out-of-line copies are shared the same way); the
// standard headers it relies on are included here, before the namespace opens.
#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#else
#error "normkit's kernels are written for x86-64 and AArch64"
#endif

#include <cmath>
#include <cstdint>

#include "../kernels.h"

#ifndef NK_ISA
#error "NK_ISA must name the ISA this object is built for"
#endif
#define NK_STR2(x) #x
#define NK_STR(x) NK_STR2(x)

namespace normkit {
namespace NK_ISA {

#include "../core/geometry.h"
#include "../core/parallel.h"
#include "../core/moments.h"
#include "../core/simd.h"
#include "../core/relu.h"
#include "../core/norm.h"
#include "../core/fused.h"

namespace {

Geometry geo(Shape4 s) { return Geometry{s.P, s.A, s.B, s.K}; }

template <typename T>
void moments_entry(const T* x, Shape4 g, double* mean, double* m2, double* scratch, int threads) {
  moments<T>(x, geo(g), mean, m2, scratch, threads);
}
// The forward's ReLU: only the residual.
template <typename T>
Relu<T> forward_relu(const ReluArgs<T>& a) {
  return Relu<T>{a.r, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, PositionParams<T>{nullptr, nullptr}};
}
template <typename T>
void normalize_entry(const T* x, T* y, Shape4 g, const double* mean, const double* scale, const double* shift,
                     const T* w, const T* b, double* scratch, int threads, const ReluArgs<T>* relu) {
  const Relu<T> act = relu ? forward_relu(*relu) : Relu<T>{};
  normalize<T>(x, y, geo(g), mean, scale, shift, PositionParams<T>{w, b}, scratch, threads, relu ? &act : nullptr);
}
// The backward's ReLU of a normalize(mean, relu->scale, relu->shift) forward; its coefficients after the scratch.
template <typename T>
Relu<T> normalize_backward_relu(Shape4 g, const double* mean, const T* x, const ReluArgs<T>& a, double* scratch) {
  return normalize_relu<T>(geo(g), mean, a.scale, a.shift, x, a.r, a.dr, scratch + scratch_doubles(geo(g), false));
}
template <typename T>
void backward_reduce_entry(const T* dy, const T* x, Shape4 g, const double* mean, const T* w, double* sum_dy,
                           double* sum_dy_xmu, double* scratch, int threads, const ReluArgs<T>* relu) {
  const Relu<T> act = relu ? normalize_backward_relu(g, mean, x, *relu, scratch) : Relu<T>{};
  backward_reduce<T>(dy, x, geo(g), mean, w, sum_dy, sum_dy_xmu, scratch, threads, relu ? &act : nullptr);
}
template <typename T>
void backward_apply_entry(const T* dy, const T* x, T* dx, Shape4 g, const double* mean, const double* a,
                          const double* b, const double* c, const T* w, double* scratch, int threads,
                          const ReluArgs<T>* relu) {
  const Relu<T> act = relu ? normalize_backward_relu(g, mean, x, *relu, scratch) : Relu<T>{};
  backward_apply<T>(dy, x, dx, geo(g), mean, a, b, c, w, scratch, threads, false, relu ? &act : nullptr);
}
template <typename T>
void param_grad_entry(const T* dy, const T* x, Shape4 g, const double* mean, const double* invstd, double* dw,
                      double* db, double* scratch, int threads) {
  param_grad<T>(dy, x, geo(g), mean, invstd, dw, db, scratch, threads);
}
template <typename T>
Affine<T> affine(const AffineArgs<T>& a) {
  return Affine<T>{a.segments, a.gamma, a.beta, PositionParams<T>{a.w, a.b}, a.rms};
}
template <typename T>
void forward_train_entry(const T* x, T* y, Shape4 g, const AffineArgs<T>& af, double eps, double* mean, double* m2,
                         double* invstd, double* scratch, int threads, const ReluArgs<T>* relu) {
  const Relu<T> act = relu ? forward_relu(*relu) : Relu<T>{};
  forward_train<T>(x, y, geo(g), affine(af), eps, mean, m2, invstd, scratch, threads, relu ? &act : nullptr);
}
// With relu, af holds the forward's beta and b too (the backward's coefficients do not use them otherwise).
template <typename T>
void backward_train_entry(const T* dy, const T* x, T* dx, Shape4 g, const AffineArgs<T>& af, const double* mean,
                          const double* invstd, double* sum_dy, double* sum_dyx, double* dw, double* db,
                          double* scratch, int threads, const ReluArgs<T>* relu) {
  const Affine<T> a = affine(af);
  Relu<T> act{};
  if (relu) {
    double* storage = scratch + fused_scratch_doubles(geo(g), af.segments, dw || db);
    act = training_relu<T>(geo(g), a, mean, invstd, x, relu->r, relu->dr, storage);
  }
  backward_train<T>(dy, x, dx, geo(g), a, mean, invstd, sum_dy, sum_dyx, dw, db, scratch, threads,
                    relu ? &act : nullptr);
}
int64_t scratch_entry(Shape4 g, bool param_grad) { return scratch_doubles(geo(g), param_grad); }
int64_t fused_scratch_entry(Shape4 g, int64_t segments, bool columns) {
  return fused_scratch_doubles(geo(g), segments, columns);
}

template <typename T>
KernelsOf<T> table_of() {
  return {moments_entry<T>, normalize_entry<T>, backward_reduce_entry<T>, backward_apply_entry<T>, param_grad_entry<T>,
          forward_train_entry<T>, backward_train_entry<T>};
}

}  // namespace

const Kernels& kernels() {
  static const Kernels k{NK_STR(NK_ISA), scratch_entry, fused_scratch_entry, table_of<float>(), table_of<double>()};
  return k;
}

}  // namespace NK_ISA
}  // namespace normkit
