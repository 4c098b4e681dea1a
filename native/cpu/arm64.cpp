// Which AArch64 kernel builds this machine can run. Advanced SIMD (NEON) is part of the AArch64 baseline, so the
// one build, compiled for armv8-a, runs everywhere. SVE would be a second build picked with getauxval(AT_HWCAP) &
// HWCAP_SVE; it is not built (its vector length varies per CPU, and it is not yet shown right under emulation).
#include "../kernels.h"

namespace normkit {

int runnable_isas(const Kernels* out[kMaxIsas]) {
  out[0] = &neon::kernels();
  return 1;
}

}  // namespace normkit
