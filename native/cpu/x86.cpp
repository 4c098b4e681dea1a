// Which x86-64 kernel builds this machine can run: the ISA that both the CPU (CPUID) and the OS (XGETBV: it saves
// the ymm/zmm registers on a context switch) support. Built for x86-64 only (CMakeLists.txt picks the file per
// architecture); native/dispatch.cpp chooses among the builds listed here.
#include <cpuid.h>

#include "../kernels.h"

namespace normkit {
namespace {

struct Features { bool avx2; bool avx512; };

unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

Features cpu_features() {
  Features f{false, false};
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & bit_OSXSAVE, fma = c & bit_FMA, avx = c & bit_AVX, f16c = c & bit_F16C;
  const bool movbe = c & bit_MOVBE;
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = (xcr0 & 0xe6) == 0xe6;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & bit_AVX2, bmi1 = b & bit_BMI, bmi2 = b & bit_BMI2;
  unsigned ea = 0, eb = 0, ec = 0, ed = 0;
  const bool lzcnt = __get_cpuid(0x80000001, &ea, &eb, &ec, &ed) && (ec & bit_LZCNT);
  const bool avx512f = b & bit_AVX512F, avx512bw = b & bit_AVX512BW, avx512cd = b & bit_AVX512CD;
  const bool avx512dq = b & bit_AVX512DQ, avx512vl = b & bit_AVX512VL;
  // x86-64-v3 and -v4 as GCC's -march defines them (the flags the ISA objects were compiled with).
  f.avx2 = os_ymm && avx2 && fma && bmi1 && bmi2 && f16c && movbe && lzcnt;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512bw && avx512cd && avx512dq && avx512vl;
  return f;
}

}  // namespace

int runnable_isas(const Kernels* out[kMaxIsas]) {
  const Features f = cpu_features();
  int n = 0;
  out[n++] = &baseline::kernels();
  if (f.avx2) out[n++] = &avx2::kernels();
  if (f.avx512) out[n++] = &avx512::kernels();
  return n;
}

}  // namespace normkit
