#!/usr/bin/env bash
# npm run test:asan — the whole test suite against an AddressSanitizer + UBSan build of the addon.
# The sanitized addon goes to build-asan/ (the normal build/ stays as it is) and is picked with NORMKIT_ADDON;
# node itself is not instrumented, so libasan is preloaded. Leak detection is left to test/leak.test.ts (node's
# own allocations at exit would drown LeakSanitizer's report). Any sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
npx cmake-js rebuild --out build-asan --CDNORMKIT_SANITIZE=ON --log-level warn
log=$(mktemp)
export NORMKIT_ADDON="$PWD/build-asan/Release/normkit.node"
# The MPI addon too, when MPI's headers were there to build it. test/mpi.test.ts's ranks inherit both and get libasan
# (mpirun itself does not: it is Open MPI's code, with a use-after-free of its own on the abort path); a sanitizer
# report in a rank fails its scenario.
[ -e build-asan/Release/normkit_mpi.node ] && export NORMKIT_MPI_ADDON="$PWD/build-asan/Release/normkit_mpi.node"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
# package.test.ts and platforms.test.ts pack and install the shipped (unsanitized) binaries and run them (other
# Node binaries, qemu), floor.test.ts only reads the shipped binaries (readelf, objdump), and isa.test.ts loads
# build/ directly: they test something other than this build. leak.test.ts measures RSS, which ASan's quarantine of freed memory inflates
# by design. All five are left out here.
npx vitest run --exclude test/package.test.ts --exclude test/platforms.test.ts --exclude test/floor.test.ts --exclude test/isa.test.ts --exclude test/leak.test.ts "$@" 2>&1 | tee "$log" || status=$?
if grep -qE "ERROR: AddressSanitizer|runtime error:" "$log"; then
  echo "sanitizer reports found"; status=1
fi
echo "ASan+UBSan run: exit $status"
exit $status
