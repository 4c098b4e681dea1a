# From-source fallback for node-gyp (`npm run build:gyp`). The same sources and flags as CMakeLists.txt:
# native/isa/kernels.cpp built once per ISA (a static library each), linked into one normkit.node (x86-64 only: on
# AArch64 build with cmake-js, whose CMakeLists.txt has the NEON build); and, where Open MPI's compiler wrapper
# mpicc is on PATH (libopenmpi-dev), normkit_mpi.node (native/mpi/CMakeLists.txt).
{
  "variables": {
    "normkit_mpi%": "<!(node -p \"require('child_process').spawnSync('mpicc', ['--showme:version']).status === 0 ? 1 : 0\")"
  },
  "target_defaults": {
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
    "cflags_cc": ["-std=c++17", "-O3", "-fvisibility=hidden", "-fno-math-errno", "-ffp-contract=off", "-fopenmp", "-fexceptions", "-fPIC"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=9", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"]
  },
  "targets": [
    { "target_name": "kernels_baseline", "type": "static_library", "sources": ["native/isa/kernels.cpp"],
      "defines": ["NK_ISA=baseline"], "cflags_cc": ["-march=x86-64", "-mtune=generic"] },
    { "target_name": "kernels_avx2", "type": "static_library", "sources": ["native/isa/kernels.cpp"],
      "defines": ["NK_ISA=avx2"], "cflags_cc": ["-march=x86-64-v3", "-mtune=generic"] },
    { "target_name": "kernels_avx512", "type": "static_library", "sources": ["native/isa/kernels.cpp"],
      "defines": ["NK_ISA=avx512"], "cflags_cc": ["-march=x86-64-v4", "-mtune=generic"] },
    {
      "target_name": "normkit",
      "sources": ["native/addon.cpp", "native/dispatch.cpp", "native/cpu/x86.cpp"],
      "cflags_cc": ["-march=x86-64"],
      "dependencies": ["kernels_baseline", "kernels_avx2", "kernels_avx512"],
      "ldflags": ["-fopenmp", "-Wl,--exclude-libs,ALL", "-Wl,-z,nodelete", "-Wl,-rpath,'$$ORIGIN'"]
    }
  ],
  "conditions": [
    ["normkit_mpi==1", {
      "targets": [{
        "target_name": "normkit_mpi",
        "sources": ["native/mpi/addon.cpp", "native/mpi/collectives.cpp", "native/mpi/mpi_thread.cpp"],
        "cflags!": ["-fopenmp"],
        "cflags_cc!": ["-fopenmp"],
        "cflags_cc": ["-march=x86-64", "<!@(mpicc --showme:compile)"],
        "defines": ["OMPI_SKIP_MPICXX", "MPICH_SKIP_MPICXX"],
        "ldflags": ["-Wl,--exclude-libs,ALL", "-Wl,--as-needed"],
        "libraries": ["<!@(mpicc --showme:link)"]
      }]
    }]
  ]
}
