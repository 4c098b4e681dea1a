#!/usr/bin/env bash
# Makes the release build root: a minimal Debian 11 (bullseye: glibc 2.31, gcc 10, cmake 3.18) with the native and
# the aarch64 cross toolchains, OpenMP included, and Open MPI's headers (x64's normkit_mpi.node links its
# libmpi.so.40, the soname of Open MPI 4.x and 5.x). Building here, not on the host's newer Debian, is what keeps the
# shipped binaries' glibc floor low (scripts/prebuild.mjs checks it). Needs root and debootstrap; takes a few
# minutes and about 500 MB. Usage: bash scripts/bullseye-root.sh DIR   (scripts/prebuild.mjs calls it)
set -euo pipefail
dir="$1"
if [ ! -x "$dir/usr/bin/g++-10" ]; then
  tmp="$dir.partial"
  rm -rf "$tmp"
  debootstrap --variant=minbase \
    --include=g++,cmake,make,g++-aarch64-linux-gnu,libgomp1-arm64-cross,libc6-dev-arm64-cross,libstdc++-10-dev-arm64-cross \
    bullseye "$tmp" http://deb.debian.org/debian
  rm -rf "$tmp/var/cache/apt/archives"/*.deb
  rm -rf "$dir"       # an older, broken root
  mv "$tmp" "$dir"  # whole or not at all: an interrupted run leaves no half root behind
fi
# Open MPI's headers for x64's normkit_mpi.node, installed with apt inside the root: debootstrap's own configure
# step fails on one of its dependencies (libltdl-dev) in a minbase root.
if [ ! -x "$dir/usr/bin/mpicc" ]; then
  chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive \
    bash -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends libopenmpi-dev && apt-get clean'
fi
