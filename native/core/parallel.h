// The one place kernels go parallel. Tasks are numbered from the shape; a task writes only its own slots, so
// which thread runs it does not matter (OpenMP's static schedule is only a load balance here, not a result).
#pragma once

// f(task) for every task; then done() once on each thread that ran tasks, before the region's closing barrier. The
// streaming kernels fence their non-temporal stores there (simd.h fence_streams): once per thread, not once per task
// (an sfence per 2 KB LayerNorm row waited for the stores in flight on every row: LayerNorm's forward took 65-70 ms
// at 1 thread with it, 50-52 ms without).
template <typename F, typename D>
inline void parallel_for(int64_t tasks, int threads, F&& f, D&& done) {
  if (threads <= 1 || tasks <= 1) {
    for (int64_t i = 0; i < tasks; ++i) f(i);
    done();
    return;
  }
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < tasks; ++i) f(i);
    done();
  }
}

template <typename F>
inline void parallel_for(int64_t tasks, int threads, F&& f) {
  parallel_for(tasks, threads, f, [] {});
}
