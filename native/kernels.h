// The table of kernels one ISA build provides. Plain function pointers: the only thing the ISA-specific objects
// and the rest of the addon share (see isa/kernels.cpp for why nothing else may be shared).
#pragma once
#include <cstdint>

namespace normkit {

struct Shape4 { int64_t P, A, B, K; };  // the [P][A][B][K] view of core/geometry.h

// w, b: optional per-position parameters (length K, views with A == 1 only; see core/geometry.h).
template <typename T>
struct KernelsOf {
  void (*moments)(const T* x, Shape4 g, double* mean, double* m2, double* scratch, int threads);
  void (*normalize)(const T* x, T* y, Shape4 g, const double* mean, const double* scale, const double* shift,
                    const T* w, const T* b, double* scratch, int threads);
  void (*backward_reduce)(const T* dy, const T* x, Shape4 g, const double* mean, const T* w, double* sum_dy,
                          double* sum_dy_xmu, double* scratch, int threads);
  void (*backward_apply)(const T* dy, const T* x, T* dx, Shape4 g, const double* mean, const double* a,
                         const double* b, const double* c, const T* w, double* scratch, int threads);
  void (*param_grad)(const T* dy, const T* x, Shape4 g, const double* mean, const double* invstd, double* dw,
                     double* db, double* scratch, int threads);
  // Whole training forward / backward for one-scale-per-group layers (BatchNorm, InstanceNorm): see core/fused.h.
  void (*forward_train)(const T* x, T* y, Shape4 g, double eps, const double* gamma, const double* beta,
                        double* mean, double* m2, double* invstd, double* scratch, int threads);
  void (*backward_train)(const T* dy, const T* x, T* dx, Shape4 g, const double* mean, const double* invstd,
                         const double* gamma, double* sum_dy, double* sum_dyx, double* scratch, int threads);
};

struct Kernels {
  const char* isa;
  int64_t (*scratch_doubles)(Shape4 g, bool param_grad);
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
