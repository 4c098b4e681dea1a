// Whole operations for the layers whose groups carry one scale each (BatchNorm, InstanceNorm): the training
// forward (statistics, then normalize) and the training backward (sums, then dx).
//
// Where a group fits in cache (the group walk, e.g. NCHW with a channel of a few hundred KB), one task does the
// whole group: its statistics, then its normalize (or dx) while the group is still in L2/L3, so the input comes
// from DRAM once (1 read + 1 write forward, 2 reads + 1 write backward, instead of 2+1 and 4+1). Otherwise the
// same tile functions run in two phases over all groups. Both orders compute every tile and merge them in the
// same fixed order, so the choice — which may depend on the thread count — never changes a bit of the result.
#pragma once

// A group this small stays cache-resident between the two passes of its task.
constexpr int64_t kFuseBytes = int64_t(2) << 20;

inline bool fuses(const Geometry& g, const Plan& pl, int64_t elem_bytes, int threads) {
  if (pl.row_walk || g.group_size() * elem_bytes > kFuseBytes) return false;
  // One task per group: only when the groups spread evenly over the threads.
  return threads <= 1 || g.groups() % threads == 0 || g.groups() >= 8 * threads;
}

// mean, M2 and invstd = 1 / sqrt(M2 / n + eps) of group `grp` from its merged tiles (group walk).
inline void finalize_group(const Plan& pl, int64_t grp, double n, double eps, double* pn, double* pmean, double* pm2,
                           double* mean, double* m2, double* invstd) {
  const int64_t o = grp * pl.tiles;
  merge_moments_pairwise(pn + o, pmean + o, pm2 + o, pl.tiles);
  mean[grp] = pmean[o]; m2[grp] = pm2[o];
  invstd[grp] = 1.0 / std::sqrt(m2[grp] / n + eps);
}

// Training forward: mean, M2, invstd of each group (biased variance), and
//   y = (x - mean) * (invstd * gamma) + beta   (gamma, beta per group; null: 1, 0).
template <typename T>
void forward_train(const T* x, T* y, const Geometry& g, double eps, const double* gamma, const double* beta,
                   double* mean, double* m2, double* invstd, double* scratch, int threads) noexcept {
  const Plan pl = make_plan(g);
  threads = threads_for(g, threads);
  const double n = static_cast<double>(g.group_size());
  const bool stream = streams<T>(g);
  const auto coefs_of = [&](int64_t grp, T& hi, T& lo, T& s, T& t) {
    split_mean(mean[grp], hi, lo);
    s = static_cast<T>(invstd[grp] * (gamma ? gamma[grp] : 1.0));
    t = static_cast<T>(beta ? beta[grp] : 0.0);
  };
  if (fuses(g, pl, sizeof(T), threads)) {
    double* pn = scratch; double* pmean = pn + pl.partials; double* pm2 = pmean + pl.partials;
    parallel_for(g.groups(), threads, [&](int64_t grp) {
      for (int64_t t = 0; t < pl.tiles; ++t) {
        const int64_t i = grp * pl.tiles + t;
        tile_moments(x, g, pl, grp, t, pn[i], pmean[i], pm2[i]);
      }
      finalize_group(pl, grp, n, eps, pn, pmean, pm2, mean, m2, invstd);
      T hi, lo, s, sh;
      coefs_of(grp, hi, lo, s, sh);
      for (int64_t t = 0; t < pl.tiles; ++t)
        elementwise_tile<T>(x, nullptr, y, g, pl, grp, t, hi, lo, s, sh, T(0), PositionParams<T>{}, stream);
      if (stream) stream_fence();
    });
    return;
  }
  moments<T>(x, g, mean, m2, scratch, threads);
  for (int64_t grp = 0; grp < g.groups(); ++grp) invstd[grp] = 1.0 / std::sqrt(m2[grp] / n + eps);
  const int64_t G = g.groups();
  T* base = reinterpret_cast<T*>(scratch);
  const GroupCoefs<T> c{base, base + G, base + 2 * G, base + 3 * G};
  for (int64_t grp = 0; grp < G; ++grp) coefs_of(grp, c.hi[grp], c.lo[grp], c.s[grp], c.t[grp]);
  elementwise<T>(x, nullptr, y, g, c, nullptr, PositionParams<T>{}, threads, /*reverse=*/true);
}

// dx coefficients through the batch statistics of a group of n elements (the same formula as lib/functional/
// core.ts trainingCoefs, which serves the layers whose scale varies inside a group):
//   a = gamma * invstd,  b = -a * invstd^2 * sum(dy (x - mean)) / n,  c = -a * sum(dy) / n.
inline void training_coefs(double gamma, double invstd, double n, double s_dy, double s_dyx, double& a, double& b,
                           double& c) {
  a = gamma * invstd;
  b = -a * invstd * invstd * s_dyx / n;
  c = -a * s_dy / n;
}

// Training backward: per group sum(dy) and sum(dy (x - mean)) (for dweight, dbias), and
//   dx = a * dy + b * (x - mean) + c.
template <typename T>
void backward_train(const T* dy, const T* x, T* dx, const Geometry& g, const double* mean, const double* invstd,
                    const double* gamma, double* sum_dy, double* sum_dyx, double* scratch, int threads) noexcept {
  const Plan pl = make_plan(g);
  threads = threads_for(g, threads);
  const double n = static_cast<double>(g.group_size());
  const bool stream = streams<T>(g);
  if (fuses(g, pl, sizeof(T), threads)) {
    double* p_dy = scratch; double* p_dyx = scratch + pl.partials;
    parallel_for(g.groups(), threads, [&](int64_t grp) {
      const int64_t o = grp * pl.tiles;
      for (int64_t t = 0; t < pl.tiles; ++t) tile_grad_sums<T>(dy, x, nullptr, g, pl, grp, t, mean, p_dy[o + t], p_dyx[o + t]);
      merge_sums_pairwise(p_dy + o, pl.tiles);
      merge_sums_pairwise(p_dyx + o, pl.tiles);
      sum_dy[grp] = p_dy[o]; sum_dyx[grp] = p_dyx[o];
      double a, b, c;
      training_coefs(gamma ? gamma[grp] : 1.0, invstd[grp], n, sum_dy[grp], sum_dyx[grp], a, b, c);
      T hi, lo;
      split_mean(mean[grp], hi, lo);
      for (int64_t t = 0; t < pl.tiles; ++t)
        elementwise_tile<T>(x, dy, dx, g, pl, grp, t, hi, lo, static_cast<T>(b), static_cast<T>(c), static_cast<T>(a),
                            PositionParams<T>{}, stream);
      if (stream) stream_fence();
    });
    return;
  }
  backward_reduce<T>(dy, x, g, mean, nullptr, sum_dy, sum_dyx, scratch, threads);
  const int64_t G = g.groups();
  double* a = scratch; double* b = a + G; double* c = b + G;  // the reduce's partials are spent
  for (int64_t grp = 0; grp < G; ++grp)
    training_coefs(gamma ? gamma[grp] : 1.0, invstd[grp], n, sum_dy[grp], sum_dyx[grp], a[grp], b[grp], c[grp]);
  backward_apply<T>(dy, x, dx, g, mean, a, b, c, nullptr, c + G, threads, /*reverse=*/true);
}
