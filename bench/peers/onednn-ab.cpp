// oneDNN and normkit's own kernels in ONE process, alternating call by call on the same buffers: the comparison
// that survives a noisy host. (onednn.cpp times oneDNN in its own process before normkit's rows are timed; on a
// shared machine the two can be minutes and 1.5x of memory bandwidth apart.) npm run bench -- --onednn-ab builds
// this on demand with g++, compiling native/isa/kernels.cpp for the ISA the addon picked (NK_ISA, -march), so
// normkit's side is the addon's kernel table without N-API and JavaScript around it (microseconds on these sizes).
//
// Reads cases from stdin, one per line:  key layout N C H W threads reps   (layout: nchw | nhwc; a 2-D [N, C]
// batch is (N, C, 1, 1) nhwc). Each round times, back to back: a non-temporal copy of the input bytes (the floor
// of a pass that reads x and writes y), then normkit and oneDNN for the training forward, eval and training
// backward in the same layout, and for nchw oneDNN again in its blocked layout (on its own buffers: nChw16c where
// it has a kernel other than its reference one for that, else nChw8c: onednn-blocked.h). Prints one JSON line per
// case: medians in milliseconds.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "../../native/kernels.h"
#include "onednn-blocked.h"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

// Allocated as V8 allocates a large ArrayBuffer (calloc: 16 bytes into a fresh mapping), so both sides see the
// addresses a Node user's Float32Arrays have. Where arrays sit modulo 4 KB matters: a store that is a little ahead
// of a later load modulo 4096 stalls the load (4K aliasing), 1.5x on a streaming pass; page-aligned buffers would
// hide that for one side or the other.
struct Buffer {
  float* p;
  explicit Buffer(size_t n) : p(static_cast<float*>(std::calloc(n, sizeof(float)))) {}
  ~Buffer() { std::free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

void fill(float* p, size_t n, int seed) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<float>((i * (seed ? 31 : 7919)) % 997) / 500.f - 1.f;
}

// x -> y over `threads`, each thread a contiguous half, with streaming stores (what normkit's and oneDNN's eval
// move: a read and a write without the read-for-ownership).
void nt_copy(const float* x, float* y, size_t n, int threads) {
#pragma omp parallel num_threads(threads)
  {
    const size_t t = omp_get_thread_num(), T = omp_get_num_threads();
    const size_t b = n / T * t, e = t + 1 == T ? n : n / T * (t + 1);
    size_t i = b;
#if defined(__AVX__)
    for (; i < e && (reinterpret_cast<uintptr_t>(y + i) & 31); ++i) y[i] = x[i];
    for (; i + 8 <= e; i += 8) _mm256_stream_ps(y + i, _mm256_loadu_ps(x + i));
    _mm_sfence();
#elif defined(__SSE2__)
    for (; i < e && (reinterpret_cast<uintptr_t>(y + i) & 15); ++i) y[i] = x[i];
    for (; i + 4 <= e; i += 4) _mm_stream_ps(y + i, _mm_loadu_ps(x + i));
    _mm_sfence();
#endif
    for (; i < e; ++i) y[i] = x[i];
  }
}

// oneDNN's three primitives on one memory layout, with their argument maps.
struct OnednnOps {
  batch_normalization_forward train, eval;
  batch_normalization_backward bwd;
  std::string impl;
  std::unordered_map<int, memory> fwd_args, bwd_args;

  OnednnOps(engine& eng, const memory::desc& md, memory src, memory dst, memory ddst, memory dsrc,
            const std::vector<memory>& stats /* mean var scale shift dscale dshift */) {
    const auto ss = normalization_flags::use_scale | normalization_flags::use_shift;
    const batch_normalization_forward::primitive_desc tpd({prop_kind::forward_training, md, 1e-5f, ss}, eng);
    const batch_normalization_forward::primitive_desc epd(
        {prop_kind::forward_inference, md, 1e-5f, ss | normalization_flags::use_global_stats}, eng);
    const batch_normalization_backward::primitive_desc bpd({prop_kind::backward, md, md, 1e-5f, ss}, eng, tpd);
    train = batch_normalization_forward(tpd);
    eval = batch_normalization_forward(epd);
    bwd = batch_normalization_backward(bpd);
    impl = tpd.impl_info_str();
    fwd_args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_MEAN, stats[0]}, {DNNL_ARG_VARIANCE, stats[1]},
                {DNNL_ARG_SCALE, stats[2]}, {DNNL_ARG_SHIFT, stats[3]}};
    bwd_args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_MEAN, stats[0]}, {DNNL_ARG_VARIANCE, stats[1]},
                {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_SCALE, stats[2]}, {DNNL_ARG_SHIFT, stats[3]},
                {DNNL_ARG_DIFF_SRC, dsrc}, {DNNL_ARG_DIFF_SCALE, stats[4]}, {DNNL_ARG_DIFF_SHIFT, stats[5]}};
  }
};

}  // namespace

int main() {
  const normkit::Kernels& k = normkit::NK_ISA::kernels();
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  std::string key, layout;
  long N, C, H, W;
  int threads, reps;
  while (std::cin >> key >> layout >> N >> C >> H >> W >> threads >> reps) {
    omp_set_num_threads(threads);
    reps = std::max(reps, 1);
    const bool nhwc = layout == "nhwc";
    const size_t n = static_cast<size_t>(N) * C * H * W;
    Buffer x(n), y(n), dy(n), dx(n);
    if (!x.p || !y.p || !dy.p || !dx.p) return std::fprintf(stderr, "out of memory for %zu floats\n", n), 1;
    fill(x.p, n, 0), fill(dy.p, n, 1);  // y and dx: calloc's zeros

    // normkit: BatchNorm's [1][A][C][K] view, gamma 1.5, beta 0.1; eval with the statistics the forward found.
    const normkit::Shape4 g = nhwc ? normkit::Shape4{1, N * H * W, C, 1} : normkit::Shape4{1, N, C, H * W};
    std::vector<double> gamma(C, 1.5), beta(C, 0.1), mean(C), m2(C), invstd(C), scale(C), shift(C), sum_dy(C),
        sum_dyx(C);
    // forward_train and backward_train (no per-position gradients) take fused scratch; normalize's is smaller.
    std::vector<double> scratch(std::max(k.fused_scratch_doubles(g, 1, false), k.scratch_doubles(g, false)));
    const normkit::AffineArgs<float> af{1, gamma.data(), beta.data(), nullptr, nullptr, false};
    const auto nk_fwd = [&] {
      k.f32.forward_train(x.p, y.p, g, af, 1e-5, mean.data(), m2.data(), invstd.data(), scratch.data(), threads,
                          nullptr);
    };
    nk_fwd();
    for (long c = 0; c < C; ++c) scale[c] = invstd[c] * gamma[c], shift[c] = beta[c];
    const auto nk_eval = [&] {
      k.f32.normalize(x.p, y.p, g, mean.data(), scale.data(), shift.data(), nullptr, nullptr, scratch.data(),
                      threads, nullptr);
    };
    const auto nk_bwd = [&] {
      k.f32.backward_train(dy.p, x.p, dx.p, g, af, mean.data(), invstd.data(), sum_dy.data(), sum_dyx.data(), nullptr,
                           nullptr, scratch.data(), threads, nullptr);
    };

    // oneDNN on the same buffers, and (nchw) in its blocked layout on its own.
    const memory::desc stat_md({C}, dt::f32, tag::a);
    std::vector<memory> stats;
    for (int i = 0; i < 6; ++i) {
      stats.emplace_back(stat_md, eng);
      float* p = static_cast<float*>(stats.back().get_data_handle());
      for (long c = 0; c < C; ++c) p[c] = i == 2 ? 1.5f : i == 3 ? 0.1f : i == 1 ? 1.f : 0.f;
    }
    const memory::desc md({N, C, H, W}, dt::f32, nhwc ? tag::nhwc : tag::nchw);
    OnednnOps same(eng, md, memory(md, eng, x.p), memory(md, eng, y.p), memory(md, eng, dy.p), memory(md, eng, dx.p),
                   stats);
    const tag blocked_tag = nhwc ? tag::nchw : onednn_blocked_tag(eng, N, C, H, W);
    const memory::desc bmd({N, C, H, W}, dt::f32, blocked_tag);
    std::vector<std::unique_ptr<Buffer>> bbuf;
    std::vector<memory> bmem;
    if (!nhwc) {
      for (int i = 0; i < 4; ++i) {
        bbuf.emplace_back(new Buffer(bmd.get_size() / sizeof(float)));
        fill(bbuf.back()->p, bmd.get_size() / sizeof(float), i == 2);
        bmem.emplace_back(bmd, eng, bbuf.back()->p);
      }
    }
    std::unique_ptr<OnednnOps> blocked;
    if (!nhwc) blocked.reset(new OnednnOps(eng, bmd, bmem[0], bmem[1], bmem[2], bmem[3], stats));
    const auto run = [&](batch_normalization_forward& p, std::unordered_map<int, memory>& a) { p.execute(s, a); s.wait(); };

    struct Timed { const char* name; std::function<void()> f; std::vector<double> ms; };
    std::vector<Timed> cases{
        {"nt_copy", [&] { nt_copy(x.p, y.p, n, threads); }, {}},
        {"normkit_fwd", nk_fwd, {}},
        {"onednn_fwd", [&] { run(same.train, same.fwd_args); }, {}},
        {"normkit_eval", nk_eval, {}},
        {"onednn_eval", [&] { run(same.eval, same.fwd_args); }, {}},
        {"normkit_bwd", nk_bwd, {}},
        {"onednn_bwd", [&] { same.bwd.execute(s, same.bwd_args); s.wait(); }, {}},
    };
    if (blocked) {
      cases.push_back({"blocked_fwd", [&] { run(blocked->train, blocked->fwd_args); }, {}});
      cases.push_back({"blocked_eval", [&] { run(blocked->eval, blocked->fwd_args); }, {}});
      cases.push_back({"blocked_bwd", [&] { blocked->bwd.execute(s, blocked->bwd_args); s.wait(); }, {}});
    }
    // Each timed call follows an untimed one of the same case: the caches then hold what that implementation's own
    // last call left (its steady state in a loop), not its rival's. Without it, on [8192,1024] (32 MB, about L3)
    // whichever eval ran right after the other's regular stores paid for evicting those dirty lines: 30 % swings.
    for (int r = 0; r < reps; ++r) {
      for (auto& c : cases) {
        c.f();
        const auto t0 = std::chrono::steady_clock::now();
        c.f();
        c.ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
    }
    std::printf("{\"key\":\"%s\",\"isa\":\"%s\",\"impl\":\"%s\",\"blocked\":\"%s\"", key.c_str(), k.isa,
                same.impl.c_str(), blocked ? (blocked_tag == tag::nChw16c ? "nChw16c" : "nChw8c") : "");
    for (auto& c : cases) {
      std::sort(c.ms.begin(), c.ms.end());
      std::printf(",\"%s\":%.6f", c.name, c.ms[c.ms.size() / 2]);
    }
    std::printf("}\n");
    std::fflush(stdout);
  }
  return 0;
}
