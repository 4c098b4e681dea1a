// Whole training operations, for every layer: the forward (statistics, then normalize) and the backward (sums,
// then dx, and the per-position weight/bias gradients in the same pass).
//
// Where a group fits in cache (the group walk: an NCHW channel, a GroupNorm group, a LayerNorm row), one task does
// whole groups (one, or in the forward a block of small ones: phase_block): a group's statistics, then its normalize
// (or dx) while the group is still in L1/L2/L3, so the input comes from DRAM once (1 read + 1 write forward, 2 reads
// + 1 write backward, instead of 2+1 and 4+1). Otherwise the same tile functions run in two phases over all groups
// (channel waves, and cache-resident strided tensors walked in memory order, core/norm.h strided_in_memory_order, are
// two-phase forms too). Every order computes every tile and merges them in the same fixed order, so the choice —
// which may depend on the thread count — never changes a bit of the result.
#pragma once

// A group this small stays cache-resident between the two passes of its task.
constexpr int64_t kFuseBytes = int64_t(2) << 20;

// What a training op applies besides the group statistics; every part is optional:
//   y = (x - mean) * invstd * gamma[c] * w[k] + (beta[c] or b[k]),  c = the group's segment, k = the position.
template <typename T>
struct Affine {
  // Each group's elements are cut into `segments` equal parts with a gamma and beta of their own (GroupNorm: the
  // C/G channels of a group); gamma and beta then hold groups * segments entries. 1: one per group.
  int64_t segments;
  const double* gamma;
  const double* beta;
  PositionParams<T> pos;  // per position k of a run (LayerNorm, RMSNorm; A == 1 and segments == 1 only)
  // RMSNorm: normalize around 0 with invstd = 1 / sqrt(mean(x^2) + eps) = 1 / sqrt(M2 / n + mean^2 + eps) (two
  // non-negative terms: no cancellation), and the backward has no sum(dy) term.
  bool rms;
};

// The segments of every group as groups of their own (GroupNorm: the channel view [N][C][S], or [N][S][C]).
inline Geometry segment_geometry(const Geometry& g, int64_t segments) {
  return Geometry{g.P, g.A, g.B * segments, g.K / segments};
}

inline bool fuses(const Geometry& g, const Plan& pl, int64_t elem_bytes, int threads, int64_t segments) {
  if (pl.row_walk || g.group_size() * elem_bytes > kFuseBytes) return false;
  // A cache-resident strided tensor walks each pass in memory order instead (core/norm.h strided_in_memory_order,
  // elementwise_in_memory_order): it stays in cache between the passes, so fusing would save no DRAM read there.
  if (strided_in_memory_order(g, pl, threads, elem_bytes)) return false;
  if (segments > 1 && g.A > 1) return false;  // segments of a strided group would be walked row by row
  // Tasks of one group (or one block of groups): only when they spread evenly enough over the threads.
  return threads <= 1 || g.groups() % threads == 0 || g.groups() >= 8 * threads;
}

// The fused forward takes small groups a block at a time, phase by phase (every group's statistics and invstd, then
// every group's normalize): a small group's statistics are a latency chain (lane sums, their tree, a division, the
// centered pass, its tree, a square root), and one group's chain with its dependent normalize behind it filled the
// out-of-order window; a phase's groups are independent chains the core overlaps. Each group's arithmetic is
// unchanged: the same bits. A block of several groups holds at most kPhaseBlockBytes of input, so that the normalize
// finds it in L1 (a group over that size is a block of its own). The backward keeps one group at a time: its chain
// is short (one pass of sums, then the coefficients), and the same blocks measured 1.03-1.09x slower there.
constexpr int64_t kPhaseBlockGroups = 8;
constexpr int64_t kPhaseBlockBytes = int64_t(16) << 10;
inline int64_t phase_block(const Geometry& g, const Plan& pl, int64_t input_bytes) {
  if (pl.tiles > 1) return 1;
  return max_i64(1, min_i64(kPhaseBlockGroups, kPhaseBlockBytes / max_i64(1, g.group_size() * input_bytes)));
}

// Inputs of one group (x, or x and dy) that L3 mostly holds between two passes when the second pass reads the last
// read first (7/8 of a 32 MiB L3; outputs stream past it).
constexpr int64_t kWaveBytes = int64_t(28) << 20;

// Groups too large for one task but within L3 (a [256,3,112,112] channel is 12.8 MB): all threads work on one
// group at a time — its tiles' statistics, the merge, then its normalize (or dx) over the same tiles, last read
// first, while L3 still holds them: about one DRAM read instead of two. Never fewer hits than the two-phase walk
// (whose second pass finds only the tensor's last L3-worth cached), at the price of two parallel regions per group,
// which the lower bound (a group's pass moves at least 2 MB) keeps small.
inline bool waves(const Geometry& g, const Plan& pl, int64_t input_bytes, int threads) {
  const int64_t bytes = g.group_size() * input_bytes;
  return !pl.row_walk && threads > 1 && bytes > kFuseBytes && bytes <= kWaveBytes && pl.tiles >= 4 * threads;
}

// Scratch (doubles) forward_train and backward_train need; `columns`: backward with per-position gradients.
inline int64_t fused_scratch_doubles(const Geometry& g, int64_t segments, bool columns) {
  const Geometry cg = segment_geometry(g, segments);
  const int64_t cols = columns ? 2 * param_grad_blocks(g) * g.K : 0;
  return cg.groups() + scratch_doubles(g, false) + scratch_doubles(cg, false) + cols;
}

// Asks for the elements of group grp (when there is one) ahead of their turn; for tensors read from DRAM (those that
// stream their output) with groups of one tile (a LayerNorm row): tile_moments prefetches the next tile of its own
// group only, and a 2 KB group is over before the hardware prefetcher has ramped up on the next one.
template <typename T>
inline void prefetch_group(const T* x, const Geometry& g, int64_t grp) {
  if (grp < g.groups()) prefetch_elements(x, g, grp, 0, g.group_size());
}

// mean and M2 of group `grp` from its merged tiles (group walk).
inline void finalize_group(const Plan& pl, int64_t grp, double* pn, double* pmean, double* pm2, double* mean,
                           double* m2) {
  const int64_t o = grp * pl.tiles;
  merge_moments_pairwise(pn + o, pmean + o, pm2 + o, pl.tiles);
  mean[grp] = pmean[o]; m2[grp] = pm2[o];
}

// The forward's coefficients of segment c as T (hi + lo = its group's centre, s, t): what the normalize pass applies,
// and what the ReLU's backward recomputes the pre-activation with (the same values, so the same bits).
template <typename T>
inline void segment_coefs(const Affine<T>& af, const double* mean, const double* invstd, int64_t c, T& hi, T& lo, T& s,
                          T& t) {
  const int64_t grp = c / af.segments;
  split_mean(af.rms ? 0.0 : mean[grp], hi, lo);
  s = static_cast<T>(invstd[grp] * (af.gamma ? af.gamma[c] : 1.0));
  t = static_cast<T>(af.beta ? af.beta[c] : 0.0);
}

// The ReLU's backward (core/relu.h) of a training forward with af (its gamma, beta and w, b): the coefficients of
// every segment into storage (relu_scratch_doubles).
template <typename T>
inline Relu<T> training_relu(const Geometry& g, const Affine<T>& af, const double* mean, const double* invstd,
                             const T* x, const T* r, T* dr, double* storage) {
  const int64_t C = g.groups() * af.segments;
  T* hi = reinterpret_cast<T*>(storage); T* lo = hi + C; T* s = lo + C; T* t = s + C;
  for (int64_t c = 0; c < C; ++c) segment_coefs(af, mean, invstd, c, hi[c], lo[c], s[c], t[c]);
  return Relu<T>{r, x, dr, hi, lo, s, t, af.pos};
}

// The same for the forward of normalize(mean, scale, shift): eval, and SyncBatchNorm's global statistics.
template <typename T>
inline Relu<T> normalize_relu(const Geometry& g, const double* mean, const double* scale, const double* shift,
                              const T* x, const T* r, T* dr, double* storage) {
  const GroupCoefs<T> c = make_coefs<T>(g, mean, scale, shift, storage, static_cast<const T*>(nullptr));  // sized exactly
  return Relu<T>{r, x, dr, c.hi, c.lo, c.s, c.t, PositionParams<T>{nullptr, nullptr}};
}

// Training forward: mean, M2 (biased) and invstd of each group, and y as above.
template <typename T>
void forward_train(const T* x, T* y, const Geometry& g, const Affine<T>& af, double eps, double* mean, double* m2,
                   double* invstd, double* scratch, int threads, const Relu<T>* act = nullptr) noexcept {
  const Plan pl = make_plan(g);
  const Geometry cg = segment_geometry(g, af.segments);
  const Plan cpl = make_plan(cg);
  threads = threads_for(g, threads);
  const double n = static_cast<double>(g.group_size());
  const bool stream = streams<T>(g);
  const auto finish = [&](int64_t grp) {
    const double var = af.rms ? m2[grp] / n + mean[grp] * mean[grp] : m2[grp] / n;
    invstd[grp] = 1.0 / std::sqrt(var + eps);
  };
  if (fuses(g, pl, sizeof(T), threads, af.segments)) {
    double* pn = scratch; double* pmean = pn + pl.partials; double* pm2 = pmean + pl.partials;
    const int64_t per = phase_block(g, pl, sizeof(T)), G = g.groups();
    parallel_for(ceil_div(G, per), threads, [&](int64_t task) {
      const int64_t g0 = task * per, g1 = min_i64(G, g0 + per);
      for (int64_t grp = g0; grp < g1; ++grp)
        for (int64_t t = 0; t < pl.tiles; ++t) {
          const int64_t i = grp * pl.tiles + t;
          tile_moments(x, g, pl, grp, t, pn[i], pmean[i], pm2[i]);
        }
      for (int64_t grp = g0; grp < g1; ++grp) {
        finalize_group(pl, grp, pn, pmean, pm2, mean, m2);
        finish(grp);
      }
      for (int64_t c = g0 * af.segments; c < g1 * af.segments; ++c) {
        T hi, lo, s, sh;
        segment_coefs(af, mean, invstd, c, hi, lo, s, sh);
        for (int64_t t = 0; t < cpl.tiles; ++t)
          elementwise_tile<T>(x, nullptr, y, cg, cpl, c, t, hi, lo, s, sh, T(0), af.pos, stream, act);
      }
    }, fence_streams(stream));
    return;
  }
  if (waves(g, pl, sizeof(T), threads) && (af.segments == 1 || g.A == 1)) {
    double* pn = scratch; double* pmean = pn + pl.partials; double* pm2 = pmean + pl.partials;
    const int64_t seg_tasks = af.segments * cpl.tiles;
    for (int64_t grp = 0; grp < g.groups(); ++grp) {
      parallel_for(pl.tiles, threads, [&](int64_t t) {
        const int64_t i = grp * pl.tiles + t;
        tile_moments(x, g, pl, grp, t, pn[i], pmean[i], pm2[i]);
      });
      finalize_group(pl, grp, pn, pmean, pm2, mean, m2);
      finish(grp);
      parallel_for(seg_tasks, threads, [&](int64_t i) {
        const int64_t task = seg_tasks - 1 - i, c = grp * af.segments + task / cpl.tiles;
        T hi, lo, s, sh;
        segment_coefs(af, mean, invstd, c, hi, lo, s, sh);
        elementwise_tile<T>(x, nullptr, y, cg, cpl, c, task % cpl.tiles, hi, lo, s, sh, T(0), af.pos, stream, act);
      }, fence_streams(stream));
    }
    return;
  }
  moments<T>(x, g, mean, m2, scratch, threads);
  for (int64_t grp = 0; grp < g.groups(); ++grp) finish(grp);
  const int64_t C = cg.groups();
  T* base = coef_storage<T>(scratch, y, cg.B);  // the partials are spent
  const GroupCoefs<T> c{base, base + C, base + 2 * C, base + 3 * C};
  for (int64_t i = 0; i < C; ++i) segment_coefs(af, mean, invstd, i, c.hi[i], c.lo[i], c.s[i], c.t[i]);
  elementwise<T>(x, nullptr, y, cg, c, nullptr, af.pos, threads, /*reverse=*/true, act);
}

// dx coefficients through the batch statistics of a group of n elements (the same formula as lib/functional/
// core.ts trainingCoefs):
//   a = gamma * invstd,  b = -a * invstd^2 * sum(dy (x - mean)) / n,  c = -a * sum(dy) / n.
inline void training_coefs(double gamma, double invstd, double n, double s_dy, double s_dyx, double& a, double& b,
                           double& c) {
  a = gamma * invstd;
  b = -a * invstd * invstd * s_dyx / n;
  c = -a * s_dy / n;
}

// The coefficients of group grp, dx = a_c * (dy * w) + b * (x - mean) + c with a_c = a * gamma_c, from its
// segments' sums. One gamma per group: training_coefs with it (a_c = a). Several (GroupNorm): the sums of
// dxhat = dy * gamma_c are the gamma-weighted segment sums, and a = invstd.
inline void group_grad_coefs(const double* gamma, int64_t segments, int64_t grp, double invstd, double n, bool rms,
                             const double* sum_dy, const double* sum_dyx, double& a, double& b, double& c) {
  if (segments == 1) {
    training_coefs(gamma ? gamma[grp] : 1.0, invstd, n, rms ? 0.0 : sum_dy[grp], sum_dyx[grp], a, b, c);
    return;
  }
  double g1 = 0, g2 = 0;
  for (int64_t i = grp * segments; i < (grp + 1) * segments; ++i) {
    const double w = gamma ? gamma[i] : 1.0;
    g1 += w * sum_dy[i];
    g2 += w * sum_dyx[i];
  }
  training_coefs(1.0, invstd, n, rms ? 0.0 : g1, g2, a, b, c);
}

inline double segment_scale(const double* gamma, int64_t segments, int64_t c, double a) {
  return segments == 1 || !gamma ? a : a * gamma[c];
}

// Training backward: per segment sum(dy * w) and sum(dy * w * (x - mean)) (sum_dy, sum_dyx: groups * segments
// entries), dx = a_c * (dy * w) + b * (x - mean) + c, and with dw or db (per-position params, A == 1) the column
// sums dw[k] = sum dy * (x - mean) * invstd, db[k] = sum dy, from the same read of the row.
template <typename T>
void backward_train(const T* dy, const T* x, T* dx, const Geometry& g, const Affine<T>& af, const double* mean,
                    const double* invstd, double* sum_dy, double* sum_dyx, double* dw, double* db, double* scratch,
                    int threads, const Relu<T>* act = nullptr) noexcept {
  const Plan pl = make_plan(g);
  const int64_t seg = af.segments, G = g.groups(), K = g.K;
  const Geometry cg = segment_geometry(g, seg);
  const Plan cpl = make_plan(cg);
  const int64_t C = cg.groups();
  threads = threads_for(g, threads);
  const double n = static_cast<double>(g.group_size());
  const bool stream = streams<T>(g), columns = dw || db;
  const auto centre = [&](int64_t grp) { return af.rms ? 0.0 : mean[grp]; };
  // Column partials: one row of K per block of groups, the blocks param_grad cuts (same bits either way).
  const int64_t blocks = columns ? param_grad_blocks(g) : 0;
  double* pw = scratch + (fused_scratch_doubles(g, seg, columns) - 2 * blocks * K); double* pb = pw + blocks * K;
  if (fuses(g, pl, sizeof(T), threads, seg)) {
    double* p_dy = scratch; double* p_dyx = p_dy + cpl.partials;
    const int64_t tasks = columns ? blocks : G, per = ceil_div(G, tasks);
    parallel_for(tasks, threads, [&](int64_t task) {
      double* cw = pw + task * K; double* cb = pb + task * K;
      if (columns)
        for (int64_t k = 0; k < K; ++k) cw[k] = 0, cb[k] = 0;
      for (int64_t grp = task * per; grp < min_i64(G, (task + 1) * per); ++grp) {
        if (stream && pl.tiles == 1) prefetch_group(x, g, grp + 1), prefetch_group(dy, g, grp + 1);
        const double mu = centre(grp);
        for (int64_t c = grp * seg; c < (grp + 1) * seg; ++c) {
          const int64_t o = c * cpl.tiles;
          // Without the ReLU the row's column partials come from this read (with it, from param_grad_row below).
          const ColumnPartials cols{cw, cb, invstd[grp]};
          for (int64_t t = 0; t < cpl.tiles; ++t)
            tile_grad_sums<T>(dy, x, af.pos.w, cg, cpl, c, t, mu, p_dy[o + t], p_dyx[o + t], act,
                              columns && !act ? &cols : nullptr);
          merge_sums_pairwise(p_dy + o, cpl.tiles);
          merge_sums_pairwise(p_dyx + o, cpl.tiles);
          sum_dy[c] = p_dy[o]; sum_dyx[c] = p_dyx[o];
        }
        double a, b, cc;
        group_grad_coefs(af.gamma, seg, grp, invstd[grp], n, af.rms, sum_dy, sum_dyx, a, b, cc);
        T hi, lo;
        split_mean(mu, hi, lo);
        for (int64_t c = grp * seg; c < (grp + 1) * seg; ++c) {
          const T ac = static_cast<T>(segment_scale(af.gamma, seg, c, a));
          for (int64_t t = 0; t < cpl.tiles; ++t)
            elementwise_tile<T>(x, dy, dx, cg, cpl, c, t, hi, lo, static_cast<T>(b), static_cast<T>(cc), ac, af.pos,
                                stream, act);
        }
        if (columns && act) param_grad_row(cw, cb, dy, x, grp, K, mu, invstd[grp], act);
      }
    }, fence_streams(stream));
    if (columns) finish_param_grad(pw, pb, blocks, K, dw, db);
    return;
  }
  if (!columns && waves(g, pl, 2 * sizeof(T), threads) && (seg == 1 || g.A == 1)) {
    double* p_dy = scratch; double* p_dyx = p_dy + cpl.partials;
    const int64_t seg_tasks = seg * cpl.tiles;
    for (int64_t grp = 0; grp < G; ++grp) {
      const double mu = centre(grp);
      const int64_t o = grp * seg_tasks;  // == (grp * seg) * cpl.tiles: the partials of the group's first segment
      parallel_for(seg_tasks, threads, [&](int64_t i) {
        tile_grad_sums<T>(dy, x, af.pos.w, cg, cpl, grp * seg + i / cpl.tiles, i % cpl.tiles, mu, p_dy[o + i],
                          p_dyx[o + i], act);
      });
      for (int64_t c = grp * seg; c < (grp + 1) * seg; ++c) {
        merge_sums_pairwise(p_dy + c * cpl.tiles, cpl.tiles);
        merge_sums_pairwise(p_dyx + c * cpl.tiles, cpl.tiles);
        sum_dy[c] = p_dy[c * cpl.tiles]; sum_dyx[c] = p_dyx[c * cpl.tiles];
      }
      double a, b, cc;
      group_grad_coefs(af.gamma, seg, grp, invstd[grp], n, af.rms, sum_dy, sum_dyx, a, b, cc);
      T hi, lo;
      split_mean(mu, hi, lo);
      parallel_for(seg_tasks, threads, [&](int64_t i) {
        const int64_t task = seg_tasks - 1 - i, c = grp * seg + task / cpl.tiles;
        elementwise_tile<T>(x, dy, dx, cg, cpl, c, task % cpl.tiles, hi, lo, static_cast<T>(b), static_cast<T>(cc),
                            static_cast<T>(segment_scale(af.gamma, seg, c, a)), af.pos, stream, act);
      }, fence_streams(stream));
    }
    return;
  }
  double* me = scratch; double* rest = scratch + C;  // the centre of every segment, then the kernels' scratch
  for (int64_t c = 0; c < C; ++c) me[c] = centre(c / seg);
  backward_reduce<T>(dy, x, cg, me, af.pos.w, sum_dy, sum_dyx, rest, threads, act);
  double* a = rest; double* b = a + C; double* cc = b + C;  // the reduce's partials are spent
  for (int64_t grp = 0; grp < G; ++grp) {
    double a0, b0, c0;
    group_grad_coefs(af.gamma, seg, grp, invstd[grp], n, af.rms, sum_dy, sum_dyx, a0, b0, c0);
    for (int64_t c = grp * seg; c < (grp + 1) * seg; ++c) a[c] = segment_scale(af.gamma, seg, c, a0), b[c] = b0, cc[c] = c0;
  }
  // The column sums before dx: without an activation dx may be written over dy (`out` sharing dy's memory), and
  // param_grad reads dy. (After it, a LayerNorm row over 2 MB gave a wrong weight gradient with out === dy.)
  if (columns) param_grad<T>(dy, x, g, me, invstd, dw, db, pw, threads, act);
  backward_apply<T>(dy, x, dx, cg, me, a, b, cc, af.pos.w, cc + C, threads, /*reverse=*/true, act);
}
