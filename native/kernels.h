// The table of kernels one ISA build provides. Plain function pointers: the only thing the ISA-specific objects
// and the rest of the addon share (see isa/kernels.cpp for why nothing else may be shared).
#pragma once
#include <cstdint>

namespace normkit {

struct Shape4 { int64_t P, A, B, K; };  // the [P][A][B][K] view of core/geometry.h

// Elements each thread must get before a kernel (or the benchmarks' copy) goes parallel: a tensor of n elements runs
// on min(threads, n / kGrainElems) threads, at least one: like ATen's parallel_for (min(threads, ceil(n / 32768))),
// with twice its grain and rounded down, so one thread up to 131071 elements. With OMP_WAIT_POLICY=passive
// (lib/binding.ts) the kernel threads sleep between calls, and a parallel region pays their wake-up: 10-15 us on the
// 2-core dev box. The rule was 32768 elements in all, then every thread: a second thread lost below 131072 elements
// there (layer calls, same process: [16,64,8,8] on one thread with the memory-order walk, core/norm.h, forward
// 45 -> 30 us, eval 31 -> 13, backward 53 -> 39; kernels alone, eval 2x slower at 65536) and won from about 131072 in
// training (LayerNorm [1024,128] lost 30-45 % on one thread with a grain of 131072). Speed only: no result depends on
// the thread count.
constexpr int64_t kGrainElems = 65536;

// What the fused training ops apply besides the group statistics (core/fused.h Affine): gamma/beta per group or per
// segment of a group (GroupNorm's channels), per-position w/b (LayerNorm), RMSNorm's centring at 0.
template <typename T>
struct AffineArgs {
  int64_t segments;         // parts of a group with their own gamma/beta; 1: one per group
  const double* gamma;      // groups * segments entries, or null
  const double* beta;
  const T* w;               // length K (A == 1), or null
  const T* b;
  bool rms;
};

// The fused activation 'relu' (core/relu.h): what the kernels that take it need besides their own arguments. Passed
// as a pointer, null for no activation.
template <typename T>
struct ReluArgs {
  const T* r;  // the residual added before the ReLU, or null
  T* dr;       // backward: receives the residual's gradient (dy masked by the ReLU), or null
  // backward_reduce / backward_apply: the forward's normalize scale and shift per group (its centre is the kernel's
  // mean). backward_train recomputes them from its mean, invstd and AffineArgs (gamma, beta, w, b of the forward).
  const double* scale;
  const double* shift;
};

// Scratch (doubles) a backward with the ReLU needs beyond the kernel's own: the forward's coefficients per group
// (or per segment), placed after the scratch_doubles / fused_scratch_doubles of the same call.
inline int64_t relu_scratch_doubles(Shape4 g, int64_t segments) { return 4 * g.P * g.B * segments; }

// w, b: optional per-position parameters (length K, views with A == 1 only; see core/geometry.h).
template <typename T>
struct KernelsOf {
  void (*moments)(const T* x, Shape4 g, double* mean, double* m2, double* scratch, int threads);
  void (*normalize)(const T* x, T* y, Shape4 g, const double* mean, const double* scale, const double* shift,
                    const T* w, const T* b, double* scratch, int threads, const ReluArgs<T>* relu);
  void (*backward_reduce)(const T* dy, const T* x, Shape4 g, const double* mean, const T* w, double* sum_dy,
                          double* sum_dy_xmu, double* scratch, int threads, const ReluArgs<T>* relu);
  void (*backward_apply)(const T* dy, const T* x, T* dx, Shape4 g, const double* mean, const double* a,
                         const double* b, const double* c, const T* w, double* scratch, int threads,
                         const ReluArgs<T>* relu);
  void (*param_grad)(const T* dy, const T* x, Shape4 g, const double* mean, const double* invstd, double* dw,
                     double* db, double* scratch, int threads);
  // Whole training forward / backward of every layer: see core/fused.h. Scratch: fused_scratch_doubles.
  void (*forward_train)(const T* x, T* y, Shape4 g, const AffineArgs<T>& af, double eps, double* mean, double* m2,
                        double* invstd, double* scratch, int threads, const ReluArgs<T>* relu);
  // sum_dy, sum_dyx: groups * segments; dw, db: per-position gradients (length K, A == 1), or null.
  void (*backward_train)(const T* dy, const T* x, T* dx, Shape4 g, const AffineArgs<T>& af, const double* mean,
                         const double* invstd, double* sum_dy, double* sum_dyx, double* dw, double* db,
                         double* scratch, int threads, const ReluArgs<T>* relu);
};

struct Kernels {
  const char* isa;
  int64_t (*scratch_doubles)(Shape4 g, bool param_grad);
  int64_t (*fused_scratch_doubles)(Shape4 g, int64_t segments, bool columns);
  KernelsOf<float> f32;
  KernelsOf<double> f64;
};

// One build of isa/kernels.cpp per ISA; only those of the target architecture are compiled and linked.
namespace baseline { const Kernels& kernels(); }  // x86-64
namespace avx2 { const Kernels& kernels(); }      // x86-64-v3
namespace avx512 { const Kernels& kernels(); }    // x86-64-v4
namespace neon { const Kernels& kernels(); }      // AArch64 (armv8-a)

constexpr int kMaxIsas = 4;
// The builds this CPU and OS can run, baseline first, best last; returns how many (native/cpu/<arch>.cpp).
int runnable_isas(const Kernels* out[kMaxIsas]);

// The table for this CPU (or for NORMKIT_ISA when set and supported), picked once.
const Kernels& kernels();
// The name of every ISA this CPU and OS can run, best last.
const char* const* supported_isas(int* count);

}  // namespace normkit
