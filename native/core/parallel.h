// The one place kernels go parallel. Tasks are numbered from the shape; a task writes only its own slots, so
// which thread runs it does not matter (OpenMP's static schedule is only a load balance here, not a result).
#pragma once

template <typename F>
inline void parallel_for(int64_t tasks, int threads, F&& f) {
  if (threads <= 1 || tasks <= 1) {
    for (int64_t i = 0; i < tasks; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < tasks; ++i) f(i);
}
