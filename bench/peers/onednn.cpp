// oneDNN's batch normalization timed on the same shapes as normkit (npm run bench builds this on demand when
// libdnnl-dev is installed). Reads cases from stdin, one per line:  key layout N C H W threads reps
// (layout: nchw | nhwc | blocked; a 2-D [N, C] batch is (N, C, 1, 1) nhwc), and prints one JSON line per case
// with the median milliseconds of the training forward, the inference forward and the training backward, the
// layout it ran and oneDNN's implementation name.
// blocked: see onednn-blocked.h.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "onednn-blocked.h"

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

template <typename F>
static double median_ms(F&& f, int reps) {
  f();  // warm: page faults, JIT, caches
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

static void fill(memory& m, float v0, float step) {
  auto* p = static_cast<float*>(m.get_data_handle());
  const size_t n = m.get_desc().get_size() / sizeof(float);
  for (size_t i = 0; i < n; ++i) p[i] = v0 + step * static_cast<float>(i % 97);
}

int main() {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  std::string key, layout;
  long N, C, H, W;
  int threads, reps;
  const auto v = version();
  while (std::cin >> key >> layout >> N >> C >> H >> W >> threads >> reps) {
    omp_set_num_threads(threads);
    tag t = tag::nchw;
    std::string ran = "nchw";
    if (layout == "nhwc") t = tag::nhwc, ran = "nhwc";
    if (layout == "blocked") {
      t = onednn_blocked_tag(eng, N, C, H, W);
      ran = t == tag::nChw16c ? "nChw16c" : "nChw8c";
    }
    const memory::desc data_md({N, C, H, W}, dt::f32, t);
    const memory::desc stat_md({C}, dt::f32, tag::a);
    memory src(data_md, eng), dst(data_md, eng), dsrc(data_md, eng), ddst(data_md, eng);
    memory mean(stat_md, eng), var(stat_md, eng), scale(stat_md, eng), shift(stat_md, eng), dscale(stat_md, eng),
        dshift(stat_md, eng);
    fill(src, -2.f, 0.05f); fill(ddst, -1.f, 0.02f); fill(scale, 1.f, 0.f); fill(shift, 0.f, 0.f);
    const auto ss = normalization_flags::use_scale | normalization_flags::use_shift;

    const batch_normalization_forward::primitive_desc train_pd(
        {prop_kind::forward_training, data_md, 1e-5f, ss}, eng);
    batch_normalization_forward train(train_pd);
    const std::unordered_map<int, memory> train_args{{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_MEAN, mean},
        {DNNL_ARG_VARIANCE, var}, {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift}};
    const double fwd = median_ms([&] { train.execute(s, train_args); s.wait(); }, reps);

    const batch_normalization_forward::primitive_desc eval_pd(
        {prop_kind::forward_inference, data_md, 1e-5f, ss | normalization_flags::use_global_stats}, eng);
    batch_normalization_forward evalp(eval_pd);
    const double ev = median_ms([&] { evalp.execute(s, train_args); s.wait(); }, reps);

    const batch_normalization_backward::primitive_desc bwd_pd(
        {prop_kind::backward, data_md, data_md, 1e-5f, ss}, eng, train_pd);
    batch_normalization_backward bwdp(bwd_pd);
    const std::unordered_map<int, memory> bwd_args{{DNNL_ARG_SRC, src}, {DNNL_ARG_MEAN, mean},
        {DNNL_ARG_VARIANCE, var}, {DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift}, {DNNL_ARG_DIFF_SRC, dsrc},
        {DNNL_ARG_DIFF_SCALE, dscale}, {DNNL_ARG_DIFF_SHIFT, dshift}};
    const double bwd = median_ms([&] { bwdp.execute(s, bwd_args); s.wait(); }, reps);

    std::printf("{\"key\":\"%s\",\"version\":\"%d.%d.%d\",\"layout\":\"%s\",\"impl\":\"%s\",\"fwd\":%.6f,\"eval\":%.6f,"
                "\"bwd\":%.6f}\n", key.c_str(), v->major, v->minor, v->patch, ran.c_str(), train_pd.impl_info_str(), fwd, ev, bwd);
    std::fflush(stdout);
  }
  return 0;
}
