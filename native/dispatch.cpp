// Picks the kernel table once: the best build this machine can run (native/cpu/<arch>.cpp lists them, best last).
// NORMKIT_ISA=<name> (baseline|avx2|avx512 on x86-64, neon on AArch64) forces one, if this machine can run it.
#include <cstdlib>
#include <cstring>

#include "kernels.h"

namespace normkit {
namespace {

struct Runnable {
  const Kernels* tables[kMaxIsas];
  const char* names[kMaxIsas];
  int n;
};

// Computed once (thread-safe static init): workers may ask concurrently.
const Runnable& runnable() {
  static const Runnable r = [] {
    Runnable l{};
    l.n = runnable_isas(l.tables);
    for (int i = 0; i < l.n; ++i) l.names[i] = l.tables[i]->isa;
    return l;
  }();
  return r;
}

const Kernels& pick() {
  const Runnable& r = runnable();
  const char* forced = std::getenv("NORMKIT_ISA");
  if (forced && *forced) {
    for (int i = 0; i < r.n; ++i) if (!std::strcmp(forced, r.names[i])) return *r.tables[i];
    // An unknown or unsupported value falls back to the best path; buildInfo() shows which one runs.
  }
  return *r.tables[r.n - 1];
}

}  // namespace

const Kernels& kernels() {
  static const Kernels& k = pick();
  return k;
}

const char* const* supported_isas(int* count) {
  *count = runnable().n;
  return runnable().names;
}

}  // namespace normkit
