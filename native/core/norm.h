// The whole kernel core: statistics, normalize, and the two halves of the backward, over any Geometry.
// Included inside an ISA namespace by isa/kernels.cpp; instantiated for float and double there.
//
// Every kernel is noexcept and trusts its arguments: lib/ (TypeScript) validated the user's input and the addon
// glue re-checked every byte length against the geometry before calling.
//
// Precision: reductions accumulate in double (acc type of float and double alike). Elementwise outputs are
// computed in T as ((x - mean_hi) - mean_lo) * scale + shift, where mean_hi + mean_lo is the double mean split
// into two T values: x - mean_hi is exact when x is near the mean (Sterbenz), so a channel with |mean| >> std
// keeps the digits that a float mean would round away. Never x * a + b: that folded form cancels in float.
#pragma once

// Where per-group coefficient arrays go in scratch, given `out`, the array the pass stores into (null: at scratch).
// The row walk with K == 1 (channels-last, 2-D) loads hi/lo/s/t[b] beside every store to out[b] (elsewhere the
// coefficients are per-run scalars and where they sit does not matter). A load whose address is a little above a store still
// in flight, modulo 4096, is taken for a read of that store's bytes and waits for it (4K aliasing): the channels-last
// and 2-D eval ran 1.5x slower with the arrays 16-32 bytes below the output modulo 4 KB (1.2x at 64, 1.1x at 128),
// where the arrays land depends on the user's buffers and the scratch arena's. Every load-store distance is the
// arrays' offset from out plus a multiple of the row's bytes, so the arrays start half a period (the largest power
// of two dividing the row's bytes, at most 4096) away from out: 256 bytes or more from aliasing for rows of 128
// floats and up. Placement only: the same values, the same bits. The pad is under one array's bytes, so the scratch
// the arrays had already held it; scratch_doubles adds kCoefPadDoubles anyway, so that no caller's layout has to.
constexpr int64_t kCoefPadDoubles = 4096 / sizeof(double);
template <typename T>
inline T* coef_storage(double* scratch, const T* out, int64_t row_elems) {
  const int64_t bytes = row_elems * static_cast<int64_t>(sizeof(T));
  const int64_t lowest = bytes & -bytes;  // the largest power of two dividing the row (0 for an empty row)
  const uintptr_t period = static_cast<uintptr_t>(lowest == 0 || lowest > 4096 ? 4096 : lowest);
  if (!out || period < 16) return reinterpret_cast<T*>(scratch);
  const uintptr_t want = (reinterpret_cast<uintptr_t>(out) + period / 2) % period;
  const uintptr_t have = reinterpret_cast<uintptr_t>(scratch) % period;
  const uintptr_t pad = (want + period - have) % period & ~uintptr_t(sizeof(double) - 1);  // < 4096 bytes
  return reinterpret_cast<T*>(reinterpret_cast<char*>(scratch) + pad);
}

// Scratch (doubles) the kernels need for this geometry; the caller provides it. param_grad's column partials
// are counted only when asked for: they can be megabytes, and the other kernels need a few doubles per tile.
inline int64_t scratch_doubles(const Geometry& g, bool param_grad) {
  const Plan pl = make_plan(g);
  const int64_t kernels = 5 * pl.partials + 5 * g.groups() + kCoefPadDoubles;
  const int64_t columns = param_grad ? 2 * param_grad_blocks(g) * g.K : 0;
  return kernels > columns ? kernels : columns;
}

// Per-group coefficients converted once to T: (mean_hi, mean_lo, s, t), for y = ((x - hi) - lo) * s + t.
template <typename T>
struct GroupCoefs {
  T* hi; T* lo; T* s; T* t;
};

// The double mean as hi + lo in T (lo = 0 for double).
template <typename T>
inline void split_mean(double m, T& hi, T& lo) {
  hi = static_cast<T>(m);
  lo = static_cast<T>(m - static_cast<double>(hi));
}

template <typename T>
inline GroupCoefs<T> make_coefs(const Geometry& g, const double* mean, const double* s, const double* t,
                                double* scratch, const T* out) {
  const int64_t G = g.groups();
  T* base = coef_storage<T>(scratch, out, g.B);  // double-aligned storage is aligned for T too
  GroupCoefs<T> c{base, base + G, base + 2 * G, base + 3 * G};
  for (int64_t i = 0; i < G; ++i) split_mean(mean ? mean[i] : 0.0, c.hi[i], c.lo[i]);
  for (int64_t i = 0; i < G; ++i) c.s[i] = s ? static_cast<T>(s[i]) : T(0), c.t[i] = t ? static_cast<T>(t[i]) : T(0);
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics: mean and M2 = sum((x - mean)^2) of every group.
// ---------------------------------------------------------------------------------------------------------------

// Whether the elements [begin, end) of a group are whole runs of whole kLanes chunks (K a multiple of kLanes, the
// range on run boundaries; NCHW with a spatial size of 32, 64, ...): the reductions then need no tail, and
// for_each_chunk walks them with their lanes kept in registers (for_each_run's general walk, with a tail per run,
// kept them in memory: loads and stores of 8 vectors around every 64-element run of a small tensor). The group walk
// uses it; the backward's sums of cache-resident strided tensors, and the statistics of small ones on one thread, walk
// memory order instead (strided_in_memory_order), where the lanes go through memory around each run but the runs are
// read as contiguous rows.
inline bool whole_chunks(const Geometry& g, int64_t begin, int64_t end) {
  return g.K % kLanes == 0 && begin % g.K == 0 && end % g.K == 0;
}

// f(offset, k) for every kLanes chunk of those runs (k: its position in its run), in for_each_run's order (run by
// run, each from its start): each chunk's elements go to the lanes for_each_run's add_run would give them.
template <typename F>
NK_ALWAYS_INLINE inline void for_each_chunk(const Geometry& g, int64_t group, int64_t begin, int64_t end, F&& f) {
  const int64_t p = group / g.B, b = group % g.B, stride = g.B * g.K;
  const int64_t base = (p * g.A * g.B + b) * g.K;
  for (int64_t a = begin / g.K; a < end / g.K; ++a)
    for (int64_t k = 0; k < g.K; k += kLanes) f(base + a * stride + k, k);
}

// Sum, then centered squares of a tile of whole chunks (see whole_chunks): tile_moments' two passes.
template <typename T>
void chunk_moments(const T* x, const Geometry& g, int64_t group, int64_t begin, int64_t end, double& mean_out,
                   double& m2_out) {
  Lanes acc{};
  for_each_chunk(g, group, begin, end, [&](int64_t off, int64_t) NK_ALWAYS_INLINE { add_chunk(acc, x + off); });
  const double mean = combine_lanes(acc) / static_cast<double>(end - begin);
  const LaneVec m = LaneVec{} + mean;
  Lanes sq{};
  for_each_chunk(g, group, begin, end, [&](int64_t off, int64_t) NK_ALWAYS_INLINE { add_centered_squares_chunk(sq, x + off, m); });
  mean_out = mean; m2_out = combine_lanes(sq);
}

// Asks for the elements [begin, end) of group `group` ahead of their turn, a cache line at a time.
template <typename T>
inline void prefetch_elements(const T* x, const Geometry& g, int64_t group, int64_t begin, int64_t end) {
  for_each_run(g, group, begin, end, [&](int64_t off, int64_t len, int64_t) {
    for (int64_t i = 0; i < len; i += 64 / static_cast<int64_t>(sizeof(T))) __builtin_prefetch(x + off + i, 0, 2);
  });
}

// Moments of one tile of one group: two passes over the (cache-resident) tile.
template <typename T>
inline void tile_moments(const T* x, const Geometry& g, const Plan& pl, int64_t group, int64_t tile, double& n_out,
                         double& mean_out, double& m2_out) {
  const int64_t begin = tile * pl.tile_elems, end = min_i64(g.group_size(), begin + pl.tile_elems);
  if (end > begin && whole_chunks(g, begin, end) && end >= g.group_size()) {  // the group's only or last tile
    n_out = static_cast<double>(end - begin);
    chunk_moments(x, g, group, begin, end, mean_out, m2_out);
    return;
  }
  Lanes acc{};
  for_each_run(g, group, begin, end, [&](int64_t off, int64_t len, int64_t) { add_run(acc, x + off, len); });
  const double n = static_cast<double>(end - begin), mean = n > 0 ? combine_lanes(acc) / n : 0.0;
  // The second pass reads the tile from L1 and leaves DRAM idle: ask for the next tile meanwhile.
  prefetch_elements(x, g, group, end, min_i64(g.group_size(), end + pl.tile_elems));
  Lanes sq{};
  for_each_run(g, group, begin, end, [&](int64_t off, int64_t len, int64_t) { add_centered_squares(sq, x + off, len, mean); });
  n_out = n; mean_out = mean; m2_out = combine_lanes(sq);
}

// Strided groups (A > 1: NCHW, whose channel is A runs of K elements, B * K apart) can be reduced in memory order: a
// block of neighbouring groups at a time, tile by tile (each group's kTileElems-element tile, as the group walk cuts
// it), the tile's rows walked one after the other, each row's runs of the block's groups read as one contiguous
// range. Each group's lanes get its runs (cut at tile boundaries) in the group walk's order from the same run
// functions, and its tiles are merged by the same tree: the same bits. The price: the lanes go through memory
// around every run (8 vectors loaded and stored per run and reduction), where the group walk keeps them in registers.
//
// The backward's sums (one pass over dy and x) walk memory order whenever the tensor stays cache-resident (at most
// kStreamBytes), and the fused walk gives way to separate passes (core/fused.h fuses): group by group, every run of
// both arrays started a new stream that the prefetchers picked up late, and the sums ran 2-5x slower (kernels alone,
// float32, L3-resident, same process, 1 and 2 threads: [32,512,7,7] 2849 -> 559 us and 657 -> 264, [32,256,14,14]
// 2872 -> 1446 and 1211 -> 603, [128,32,16,16] 1490 -> 642 and 415 -> 229; [128,64,8,8], whose 64-element runs the
// group walk reads as whole chunks, 217 -> 211 and 122 -> 120). The whole training backward: 0.4-0.7x the time, the
// forward (group-walk statistics, then normalize in memory order) 0.77-0.98x. On several threads only from
// kPassesMinBytes: below it the fused walk's single parallel region wins, the separate passes' second one costing a
// wake-up of the threads (10-15 us on the 2-vCPU dev VM): [16,32,16,16] (512 KB) on 2 threads, layer API, forward
// 60 -> 74 us, backward 69 -> 83.
constexpr int64_t kPassesMinBytes = int64_t(2) << 20;
inline bool strided_in_memory_order(const Geometry& g, const Plan& pl, int threads, int64_t elem_bytes) {
  const int64_t bytes = g.numel() * elem_bytes;
  return !pl.row_walk && g.A > 1 && g.K > 0 && bytes <= kStreamBytes && (threads == 1 || bytes >= kPassesMinBytes);
}

// The statistics' two passes re-read each tile from L1/L2 in the group walk, so there the lanes' traffic is the
// larger cost: memory order only for small tensors on one thread (at most kMemoryOrderBytes), whose many short
// runs the group walk paid per run. [8,16,8,8] float32 on the AVX2 host, kernels alone (best of 5 runs): statistics
// 2.1 -> 1.7 us, training forward 3.4-4.1 -> 2.9-3.2 us; up to 512 KB (an L2 on the dev box), against the group
// walk: [16,64,8,8] training forward 37.9 -> 36.0 us, [32,64,8,8] 64.8 -> 54.9, [16,32,16,16] 52.9 -> 48.7. Larger
// L3-resident tensors: the group walk's statistics 1.2-1.5x faster at one thread ([32,512,7,7] 495 vs 735 us), level
// at two.
constexpr int64_t kMemoryOrderBytes = int64_t(512) << 10;
inline bool moments_walk_memory_order(const Geometry& g, const Plan& pl, int threads, int64_t elem_bytes) {
  return threads == 1 && g.numel() * elem_bytes <= kMemoryOrderBytes &&
         strided_in_memory_order(g, pl, threads, elem_bytes);
}

// Lanes of this many groups at most per block: 16 KB of stack per call (the backward's two reductions share it).
constexpr int64_t kMemoryOrderGroups = 64;

// Stack room for the lanes of a block of groups, not zeroed on construction: each tile zeroes the lanes it uses
// (an array of Lanes would zero all 64 on every call).
union GroupLanes {
  Lanes of[kMemoryOrderGroups];
  GroupLanes() {}
};

// The groups per block the memory-order reductions cut p's B groups into: at most `most`, and a block per thread
// where there are groups enough. The cut never changes a bit (each group's lanes are its own).
inline int64_t memory_order_block(const Geometry& g, int threads, int64_t most) {
  const int64_t per_p = max_i64(ceil_div(g.B, most), min_i64(g.B, ceil_div(threads, g.P)));
  return ceil_div(g.B, per_p);
}

// f(off, len, k0, i) for every piece of the runs of groups [b0, b1) of p inside elements [begin, end) of each group
// (one tile): row by row, each row's groups in order; i = b - b0, k0 the piece's first k. Per group, the pieces
// come in for_each_run's order and lengths.
template <typename F>
NK_ALWAYS_INLINE inline void for_each_band_run(const Geometry& g, int64_t p, int64_t b0, int64_t b1, int64_t begin,
                                               int64_t end, F&& f) {
  for (int64_t a = begin / g.K; a * g.K < end; ++a) {
    const int64_t k0 = max_i64(begin - a * g.K, 0), k1 = min_i64(end - a * g.K, g.K);
    const int64_t row = (p * g.A + a) * g.B;
    for (int64_t b = b0; b < b1; ++b) f((row + b) * g.K + k0, k1 - k0, k0, b - b0);
  }
}

// f(grp0, p, b0, b1) for every block of groups (memory_order_block), over the threads.
template <typename F>
inline void for_each_group_block(const Geometry& g, int64_t block, int threads, F&& f) {
  const int64_t per_p = ceil_div(g.B, block);
  parallel_for(g.P * per_p, threads, [&](int64_t task) {
    const int64_t p = task / per_p, b0 = task % per_p * block, b1 = min_i64(g.B, b0 + block);
    f(p * g.B + b0, p, b0, b1);
  });
}

// tile_moments of every tile of every group into the partials (index grp * tiles + tile), in memory order.
template <typename T>
void moments_in_memory_order(const T* x, const Geometry& g, const Plan& pl, double* pn, double* pmean, double* pm2,
                             int threads) {
  const int64_t gs = g.group_size();
  for_each_group_block(g, memory_order_block(g, threads, kMemoryOrderGroups), threads,
                       [&](int64_t grp0, int64_t p, int64_t b0, int64_t b1) {
    GroupLanes block;
    Lanes* lanes = block.of;  // group grp0 + i: lanes[i]
    for (int64_t t = 0; t < pl.tiles; ++t) {
      const int64_t begin = t * pl.tile_elems, end = min_i64(gs, begin + pl.tile_elems);
      const double n = static_cast<double>(end - begin);
      for (int64_t i = 0; i < b1 - b0; ++i) lanes[i] = Lanes();
      for_each_band_run(g, p, b0, b1, begin, end, [&](int64_t off, int64_t len, int64_t, int64_t i) {
        add_run(lanes[i], x + off, len);
      });
      for (int64_t i = 0; i < b1 - b0; ++i) {
        const int64_t o = (grp0 + i) * pl.tiles + t;
        pn[o] = n; pmean[o] = combine_lanes(lanes[i]) / n; lanes[i] = Lanes();
      }
      for_each_band_run(g, p, b0, b1, begin, end, [&](int64_t off, int64_t len, int64_t, int64_t i) {
        add_centered_squares(lanes[i], x + off, len, pmean[(grp0 + i) * pl.tiles + t]);
      });
      for (int64_t i = 0; i < b1 - b0; ++i) pm2[(grp0 + i) * pl.tiles + t] = combine_lanes(lanes[i]);
    }
  });
}

template <typename T>
void moments_group_walk(const T* x, const Geometry& g, const Plan& pl, double* pn, double* pmean, double* pm2,
                        int threads) {
  parallel_for(pl.tasks, threads, [&](int64_t task) {
    tile_moments(x, g, pl, task / pl.tiles, task % pl.tiles, pn[task], pmean[task], pm2[task]);
  });
}

// Calls f(offset of row a) for the rows [a0, a1) of p. (Blocking rows to keep the per-column accumulators in
// registers was tried: it measured slower on DRAM-sized tensors here, 2.1-2.2x instead of 1.7-1.9x a copy.)
template <typename F>
inline void for_rows(const Geometry& g, int64_t p, int64_t a0, int64_t a1, F&& f) {
  const int64_t row = g.B * g.K;
  for (int64_t a = a0; a < a1; ++a) f((p * g.A + a) * row);
}

// One sub-tile of rows [a0, a1) of p: per-group sums into sum[B], then centered squares into ss[B].
template <typename T>
inline void row_subtile_moments(const T* x, const Geometry& g, int64_t p, int64_t a0, int64_t a1, double* sum,
                                double* ss) {
  const int64_t B = g.B, K = g.K;
  const double n = static_cast<double>((a1 - a0) * K);
  for (int64_t b = 0; b < B; ++b) sum[b] = 0, ss[b] = 0;
  for_rows(g, p, a0, a1, [&](int64_t off) {
    const T* r = x + off;
    if (K == 1) {
#pragma omp simd
      for (int64_t b = 0; b < B; ++b) sum[b] += static_cast<double>(r[b]);
    } else {
      for (int64_t b = 0; b < B; ++b) sum[b] += sum_run(r + b * K, K);
    }
  });
  for (int64_t b = 0; b < B; ++b) sum[b] /= n;  // now the sub-tile mean
  // The second pass reads the sub-tile from L2 and leaves DRAM idle: for a tensor read from DRAM (past the streaming
  // bound), ask for the next sub-tile's rows meanwhile, a row for each row (the rows after a1 in memory, whichever
  // task reads them). Statistics of channels-last [64,56,56,128] and 2-D [65536,512] on 2 threads, kernels alone:
  // 0.82-0.89x the time; the forward 0.90-0.93x.
  const int64_t row = B * K, ahead = g.numel() * static_cast<int64_t>(sizeof(T)) > kStreamBytes ? (a1 - a0) * row : 0;
  const int64_t end = (p * g.A + g.A) * row;
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  for_rows(g, p, a0, a1, [&](int64_t off) {
    const T* r = x + off;
    if (ahead)
      for (int64_t i = off + ahead; i < min_i64(end, off + ahead + row); i += kLine) __builtin_prefetch(x + i, 0, 2);
    if (K == 1) {
#pragma omp simd
      for (int64_t b = 0; b < B; ++b) {
        const double d = static_cast<double>(r[b]) - sum[b];
        ss[b] = fmadd(d, d, ss[b]);
      }
    } else {
      for (int64_t b = 0; b < B; ++b) ss[b] += centered_squares_run(r + b * K, K, sum[b]);
    }
  });
}

template <typename T>
void moments_row_walk(const T* x, const Geometry& g, const Plan& pl, double* pn, double* pmean, double* pm2,
                      double* temp, int threads) {
  const int64_t B = g.B;
  parallel_for(pl.tasks, threads, [&](int64_t task) {
    const int64_t p = task / pl.tiles, tile = task % pl.tiles;
    const int64_t a_begin = tile * pl.rows_per_tile, a_end = min_i64(g.A, a_begin + pl.rows_per_tile);
    double* n = pn + task * B; double* mean = pmean + task * B; double* m2 = pm2 + task * B;
    double* sub_mean = temp + task * 2 * B; double* sub_ss = sub_mean + B;
    double count = 0;
    for (int64_t b = 0; b < B; ++b) mean[b] = 0, m2[b] = 0;
    for (int64_t a0 = a_begin; a0 < a_end; a0 += pl.sub_rows) {
      const int64_t a1 = min_i64(a_end, a0 + pl.sub_rows);
      row_subtile_moments(x, g, p, a0, a1, sub_mean, sub_ss);
      // Chan's merge with the same counts for every group, so it vectorizes over b.
      const double nb = static_cast<double>((a1 - a0) * g.K), na = count, nt = na + nb;
      const double wb = nb / nt, wab = na * nb / nt;
#pragma omp simd
      for (int64_t b = 0; b < B; ++b) {
        const double d = sub_mean[b] - mean[b];
        mean[b] += d * wb;
        m2[b] += sub_ss[b] + d * d * wab;
      }
      count = nt;
    }
    for (int64_t b = 0; b < B; ++b) n[b] = count;
  });
}

template <typename T>
void moments(const T* x, const Geometry& g, double* mean, double* m2, double* scratch, int threads) noexcept {
  const Plan pl = make_plan(g);
  threads = threads_for(g, threads);
  double* pn = scratch; double* pmean = pn + pl.partials; double* pm2 = pmean + pl.partials;
  if (!pl.row_walk) {
    if (moments_walk_memory_order(g, pl, threads, sizeof(T)))
      moments_in_memory_order(x, g, pl, pn, pmean, pm2, threads);
    else
      moments_group_walk(x, g, pl, pn, pmean, pm2, threads);
    for (int64_t grp = 0; grp < g.groups(); ++grp) {
      const int64_t o = grp * pl.tiles;
      merge_moments_pairwise(pn + o, pmean + o, pm2 + o, pl.tiles);
      mean[grp] = pmean[o]; m2[grp] = pm2[o];
    }
  } else {
    moments_row_walk(x, g, pl, pn, pmean, pm2, pm2 + pl.partials, threads);
    for (int64_t p = 0; p < g.P; ++p) {
      const int64_t o = p * pl.tiles * g.B;
      merge_moments_rows(pn + o, pmean + o, pm2 + o, pl.tiles, g.B);
      for (int64_t b = 0; b < g.B; ++b) mean[p * g.B + b] = pmean[o + b], m2[p * g.B + b] = pm2[o + b];
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Elementwise passes. `affine_dy` computes out = ((x - hi) - lo) * s + t, optionally plus a * dy (backward).
// One walker serves normalize (no dy) and the backward's dx (with dy); the same task cut as the statistics.
// ---------------------------------------------------------------------------------------------------------------

template <typename T>
inline bool streams(const Geometry& g) {
  return g.numel() * static_cast<int64_t>(sizeof(T)) > kStreamBytes;
}

// One run of the elementwise pass (group walk), the positional and streaming forms picked here.
template <typename T>
NK_ALWAYS_INLINE inline void elementwise_run(const T* x, const T* dy, T* out, int64_t len, int64_t k0, T hi, T lo, T s, T t, T a,
                            PositionParams<T> pos, bool stream) {
  const T* w = pos.w ? pos.w + k0 : nullptr; const T* b = pos.b ? pos.b + k0 : nullptr;
  if ((pos.w || pos.b) && stream) affine_run_positional_stream(x, dy, out, len, hi, lo, s, t, a, w, b);
  else if (pos.w || pos.b) affine_run_positional(x, dy, out, len, hi, lo, s, t, a, w, b);
  else if (stream) affine_run_stream(x, dy, out, len, hi, lo, s, t, a);
  else affine_run(x, dy, out, len, hi, lo, s, t, a);
}

// elementwise_run of the run at off (group grp) with act (core/relu.h): the forward applies the ReLU to
// the normalized values, the backward reads dz instead of dy (or, when dy is null, instead of x: the eval dx = a * dy
// passes dy as x).
template <typename T>
inline void elementwise_run_relu(const T* x, const T* dy, T* out, int64_t off, int64_t len, int64_t k0, int64_t grp,
                                 T hi, T lo, T s, T t, T a, PositionParams<T> pos, bool stream, const Relu<T>* act) {
  const T* r = act->r ? act->r + off : nullptr;
  if (!act->backward() && !pos.w && !pos.b) {
    affine_relu(x + off, r, out + off, len, Coefs<T>{hi, lo, s, t}, stream);
  } else if (!act->backward()) {  // LayerNorm's per-position w, b: through the chunk buffer
    relu_forward_chunks(*act, off, len, out, stream, [&](int64_t i, int64_t n, T* buf) {
      elementwise_run(x + off + i, static_cast<const T*>(nullptr), buf, n, k0 + i, hi, lo, s, t, a, pos, false);
    });
  } else if (!pos.w && !act->pos.w && !act->pos.b) {
    const Coefs<T> f = act->group(grp);
    T* dr = act->dr ? act->dr + off : nullptr;
    if (dy) affine_grad_relu(x + off, dy + off, r, dr, out + off, len, Coefs<T>{hi, lo, s, t}, Scale<T>{a}, f, stream);
    else scale_grad_relu(act->x + off, x + off, r, dr, out + off, len, Scale<T>{s}, f, stream);
  } else {
    relu_grad_run(*act, grp, off, len, k0, dy ? dy : x, true, [&](int64_t i, int64_t n, const T* dz) {
      if (dy) elementwise_run(x + off + i, dz, out + off + i, n, k0 + i, hi, lo, s, t, a, pos, stream);
      else elementwise_run(dz, static_cast<const T*>(nullptr), out + off + i, n, k0 + i, hi, lo, s, t, a, pos, stream);
    });
  }
}

// One group-walk task of the elementwise pass: tile `tile` of group `grp`.
template <typename T>
inline void elementwise_tile(const T* x, const T* dy, T* out, const Geometry& g, const Plan& pl, int64_t grp,
                             int64_t tile, T hi, T lo, T s, T t, T a, PositionParams<T> pos, bool stream,
                             const Relu<T>* act = nullptr) {
  const int64_t begin = tile * pl.tile_elems, end = min_i64(g.group_size(), begin + pl.tile_elems);
  // Separate loops, so that the common ones inline their run function: a call per run costs short runs. The
  // plainest (no activation, no position parameters, no streaming: the fused walk's small calls) gets one loop per
  // form, with no branch left per run (an [8,16,8,8] forward, when it took this walk, spent more on the 128 runs'
  // dispatch than on their elements).
  if (!act && !pos.w && !pos.b && !stream) {
    if (whole_chunks(g, begin, end)) {  // runs cut in chunks of a constant length: no loop remainder per run
      if (dy) {
        for_each_chunk(g, grp, begin, end, [&](int64_t off, int64_t) NK_ALWAYS_INLINE {
          affine_run(x + off, dy + off, out + off, kLanes, hi, lo, s, t, a);
        });
      } else {
        for_each_chunk(g, grp, begin, end, [&](int64_t off, int64_t) NK_ALWAYS_INLINE {
          affine_run(x + off, static_cast<const T*>(nullptr), out + off, kLanes, hi, lo, s, t, a);
        });
      }
      return;
    }
    if (dy) {
      for_each_run(g, grp, begin, end, [&](int64_t off, int64_t len, int64_t) NK_ALWAYS_INLINE {
        affine_run(x + off, dy + off, out + off, len, hi, lo, s, t, a);
      });
    } else {
      for_each_run(g, grp, begin, end, [&](int64_t off, int64_t len, int64_t) NK_ALWAYS_INLINE {
        affine_run(x + off, static_cast<const T*>(nullptr), out + off, len, hi, lo, s, t, a);
      });
    }
    return;
  }
  if (!act) {
    for_each_run(g, grp, begin, end, [&](int64_t off, int64_t len, int64_t k0) {
      elementwise_run(x + off, dy ? dy + off : nullptr, out + off, len, k0, hi, lo, s, t, a, pos, stream);
    });
    return;
  }
  for_each_run(g, grp, begin, end, [&](int64_t off, int64_t len, int64_t k0) {
    elementwise_run_relu(x, dy, out, off, len, k0, grp, hi, lo, s, t, a, pos, stream, act);
  });
}

// One row of a row walk with K == 1 and the ReLU (column b is group g0 + b), as elementwise_run_relu. (Rows
// without it stay inline in the walk: a call per 128-element row cost 40-70% more time on channels-last.)
template <typename T>
inline void elementwise_row_relu(const T* x, const T* dy, T* out, int64_t off, int64_t B, int64_t g0, const T* hi,
                                 const T* lo, const T* s, const T* t, const T* a, bool stream, const Relu<T>* act) {
  const T* r = act->r ? act->r + off : nullptr;
  if (!act->backward()) {
    affine_relu(x + off, r, out + off, B, ColumnCoefs<T>{hi, lo, s, t}, stream);
    return;
  }
  const ColumnCoefs<T> f = act->columns(g0);
  T* dr = act->dr ? act->dr + off : nullptr;
  if (dy) affine_grad_relu(x + off, dy + off, r, dr, out + off, B, ColumnCoefs<T>{hi, lo, s, t}, ColumnScale<T>{a}, f, stream);
  else scale_grad_relu(act->x + off, x + off, r, dr, out + off, B, ColumnScale<T>{s}, f, stream);
}

// The elementwise pass of the whole run at off (K elements from k = 0) of group grp, with its coefficients and no
// position parameters or streaming: the run function elementwise_tile would call.
template <typename T>
NK_ALWAYS_INLINE inline void elementwise_group_run(const T* x, const T* dy, T* out, int64_t off, int64_t K, int64_t grp,
                                                   const GroupCoefs<T>& c, const T* a, const Relu<T>* act) {
  const T ag = a ? a[grp] : T(0);
  if (act) elementwise_run_relu(x, dy, out, off, K, 0, grp, c.hi[grp], c.lo[grp], c.s[grp], c.t[grp], ag,
                                PositionParams<T>{nullptr, nullptr}, false, act);
  else affine_run(x + off, dy ? dy + off : nullptr, out + off, K, c.hi[grp], c.lo[grp], c.s[grp], c.t[grp], ag);
}

// The elementwise pass over runs [u0, u1) of the P * A * B runs (run u: K elements from u * K, group
// u / (A * B) * B + u % B), in memory order. The group is stepped, not divided out, per run.
template <typename T>
void elementwise_runs_in_memory_order(const T* x, const T* dy, T* out, const Geometry& g, const GroupCoefs<T>& c,
                                      const T* a, const Relu<T>* act, int64_t u0, int64_t u1) {
  const int64_t per_p = g.A * g.B;
  int64_t b = u0 % g.B, grp0 = u0 / per_p * g.B, left_in_p = per_p - u0 % per_p;
  for (int64_t u = u0; u < u1; ++u) {
    elementwise_group_run(x, dy, out, u * g.K, g.K, grp0 + b, c, a, act);
    if (++b == g.B) b = 0;
    if (--left_in_p == 0) grp0 += g.B, left_in_p = per_p;
  }
}

// Whether the group walk's elementwise pass goes in memory order, each thread a contiguous share of the runs: with
// strided groups (A > 1) and no streaming stores (an output under kStreamBytes, so the tensor is cache-resident or
// about to be). Channel by channel, each thread read runs B * K elements apart, which the prefetchers follow poorly:
// L3-resident NCHW eval, same process, 2 threads, kernels alone: [128,32,16,16] 332 -> 237 us, [32,512,7,7] 288 ->
// 200, [128,64,8,8] 125 -> 98, [128,16,32,32] 826 -> 643. The shares are cut by runs, not rows: a small batch (N = 2
// on 8 threads) still spreads over every thread. A pass with no reduction gives the same bits in any order and any
// cut. (Streamed outputs keep the task order: DRAM-sized, they already run at the copy's speed.)
template <typename T>
inline bool elementwise_in_memory_order(const Geometry& g, const Plan& pl, bool stream, PositionParams<T> pos) {
  return !pl.row_walk && !stream && !pos.w && !pos.b && g.A > 1;
}

// reverse: walk the tasks last to first. Right after a pass that read the whole tensor (the statistics), the
// last-read part is still in L3; starting there turns part of the second DRAM read into cache hits. (Speed only; the
// memory-order walk, for tensors that fit in L3 anyway, ignores it.)
template <typename T>
void elementwise(const T* x, const T* dy, T* out, const Geometry& g, const GroupCoefs<T>& c, const T* a,
                 PositionParams<T> pos, int threads, bool reverse = false, const Relu<T>* act = nullptr) {
  const Plan pl = make_plan(g);
  threads = threads_for(g, threads);
  const bool stream = streams<T>(g);
  if (elementwise_in_memory_order(g, pl, stream, pos)) {
    const int64_t runs = g.P * g.A * g.B;
    parallel_for(threads, threads, [&](int64_t t) {
      elementwise_runs_in_memory_order(x, dy, out, g, c, a, act, runs * t / threads, runs * (t + 1) / threads);
    });
    return;
  }
  if (!pl.row_walk) {
    parallel_for(pl.tasks, threads, [&](int64_t i) {
      const int64_t task = reverse ? pl.tasks - 1 - i : i;
      const int64_t grp = task / pl.tiles;
      elementwise_tile(x, dy, out, g, pl, grp, task % pl.tiles, c.hi[grp], c.lo[grp], c.s[grp], c.t[grp],
                       a ? a[grp] : T(0), pos, stream, act);
    }, fence_streams(stream));
    return;
  }
  // Row walk (A > 1): no position parameters here, the glue only allows them with A == 1.
  const int64_t B = g.B, K = g.K, row = B * K;
  parallel_for(pl.tasks, threads, [&](int64_t i) {
    const int64_t task = reverse ? pl.tasks - 1 - i : i;
    const int64_t p = task / pl.tiles, a_begin = (task % pl.tiles) * pl.rows_per_tile;
    const int64_t a_end = min_i64(g.A, a_begin + pl.rows_per_tile);
    const T* hi = c.hi + p * B; const T* lo = c.lo + p * B; const T* s = c.s + p * B; const T* t = c.t + p * B;
    const T* ap = a ? a + p * B : nullptr;
    if (K == 1 && stream && !act) {  // the block's rows are contiguous: streamed as one range
      const int64_t off = (p * g.A + a_begin) * row;
      affine_rows_stream(x + off, dy ? dy + off : nullptr, out + off, a_end - a_begin, B, hi, lo, s, t, ap);
      return;
    }
    for (int64_t r = a_begin; r < a_end; ++r) {
      const int64_t off = (p * g.A + r) * row;
      const T* xr = x + off; T* yr = out + off; const T* dr = dy ? dy + off : nullptr;
      if (K == 1 && act) {
        elementwise_row_relu(x, dy, out, off, B, p * B, hi, lo, s, t, ap, stream, act);
      } else if (K == 1) {
        affine_row(xr, dr, yr, B, hi, lo, s, t, ap);
      } else {
        for (int64_t b = 0; b < B; ++b) elementwise_group_run(x, dy, out, off + b * K, K, p * B + b, c, a, act);
      }
    }
  }, fence_streams(stream));
}

// y = ((x - mean) * scale + shift), per group; with position params y = (x - mean) * scale * w[k] + b[k]. act: the
// forward's ReLU (core/relu.h), or null. Walked first task first: eval calls it alone, and walking the tasks last first
// (which would let SyncBatchNorm reuse what L3 holds of its statistics pass) made eval 5-15% slower here — the
// hardware prefetcher retrains at every 16 KB tile when the walk jumps backwards.
template <typename T>
void normalize(const T* x, T* y, const Geometry& g, const double* mean, const double* scale, const double* shift,
               PositionParams<T> pos, double* scratch, int threads, const Relu<T>* act = nullptr) noexcept {
  const GroupCoefs<T> c = make_coefs<T>(g, mean, scale, shift, scratch, y);
  elementwise<T>(x, nullptr, y, g, c, nullptr, pos, threads, /*reverse=*/false, act);
}

// dx = a * (dy * w[k]) + b * (x - mean) + c, per group (w: position params, 1 without). With b == null
// (eval: dx = a * dy) x and mean are not read, so an inf in x cannot turn into NaN through x * 0 (with act the mask
// reads x, but dx stays a * dz). act: the backward of the forward's ReLU (dz for dy), or null.
template <typename T>
void backward_apply(const T* dy, const T* x, T* dx, const Geometry& g, const double* mean, const double* a,
                    const double* b, const double* c, const T* w, double* scratch, int threads,
                    bool reverse = false, const Relu<T>* act = nullptr) noexcept {
  if (!b) {
    const GroupCoefs<T> scale_only = make_coefs<T>(g, nullptr, a, nullptr, scratch, dx);
    elementwise<T>(dy, nullptr, dx, g, scale_only, nullptr, PositionParams<T>{w, nullptr}, threads, false, act);
    return;
  }
  const GroupCoefs<T> coefs = make_coefs<T>(g, mean, b, c, scratch, dx);
  T* at = coefs.t + g.groups();
  for (int64_t i = 0; i < g.groups(); ++i) at[i] = static_cast<T>(a[i]);
  elementwise<T>(x, dy, dx, g, coefs, at, PositionParams<T>{w, nullptr}, threads, reverse, act);
}

// ---------------------------------------------------------------------------------------------------------------
// Backward reductions: per group, sum(dy) and sum(dy * (x - mean)), in double.
// ---------------------------------------------------------------------------------------------------------------

// The same over one run, combined: s_dy += sum(dy * w), s_dyx += sum(dy * w * (x - mean)).
template <typename T>
inline void dot_centered_run(const T* dy, const T* x, const T* w, int64_t len, double mean, double& s_dy,
                             double& s_dyx) {
  Lanes a{}, b{};
  add_dot_centered(a, b, dy, x, w, len, mean);
  s_dy += combine_lanes(a); s_dyx += combine_lanes(b);
}

// add_dot_centered of dz for the run at off of group grp (position k0), with the ReLU's mask.
template <typename T>
void run_grad_sums_relu(const Relu<T>& act, Lanes& a, Lanes& b, const T* dy, const T* x, const T* w, int64_t grp,
                        int64_t off, int64_t len, int64_t k0, double mean) {
  if (!w && !act.pos.w && !act.pos.b) {
    add_dot_centered_relu(a, b, dy + off, x + off, act.r ? act.r + off : nullptr, len, mean,
                          act.group(grp));
    return;
  }
  relu_grad_run(act, grp, off, len, k0, dy, false, [&](int64_t i, int64_t n, const T* dz) {
    add_dot_centered(a, b, dz, x + off + i, w ? w + k0 + i : nullptr, n, mean);
  });
}

// One group's (row's) share of a block's column partials w[K], b[K].
template <typename T>
inline void add_param_grad_row(double* w, double* b, const T* d, const T* xr, int64_t K, double m, double inv) {
#pragma omp simd
  for (int64_t k = 0; k < K; ++k) {
    const double dd = static_cast<double>(d[k]);
    b[k] += dd;
    w[k] += dd * ((static_cast<double>(xr[k]) - m) * inv);
  }
}

// One run of a row (LayerNorm, RMSNorm; A == 1) with the weight and bias gradients' column partials from the same
// read: s_dy = sum(dy * w) and s_dyx = sum(dy * w * (x - mean)) in add_dot_centered's lanes, and cw[k] += dy *
// ((x - mean) * inv), cb[k] += dy (add_param_grad_row's expression). The same operations as add_dot_centered and
// add_param_grad_row over the run, so the same bits, with the lanes as locals in registers: the partials' stores
// (doubles, like the lanes) could alias lanes held by reference, which then stayed in memory, a load and a store per
// update. kSweep vectors of the lanes at a time: kLaneVecs in one sweep over the whole chunks, or kLaneVecs / 2 in two
// sweeps (lanes 0-15, then 16-31; each lane gets the same additions in the same order), whose 8 accumulators fit
// AVX2's 16 registers beside the partials and temporaries where one sweep's 16 spill (see run_grad_sums_with_columns).
template <int kSweep, typename T>
NK_ALWAYS_INLINE inline void sweep_grad_sums_with_columns(const T* dy, const T* x, const T* w, int64_t len,
                                                          double mean, double inv, double* cw, double* cb, Lanes& a,
                                                          Lanes& b) {
  const int64_t whole = len - len % kLanes;
  const LaneVec m = LaneVec{} + mean, vinv = LaneVec{} + inv;
  for (int q0 = 0; q0 < kLaneVecs; q0 += kSweep) {
    LaneVec sa[kSweep], sb[kSweep];
    for (int v = 0; v < kSweep; ++v) sa[v] = LaneVec{}, sb[v] = sa[v];
    for (int64_t i0 = kLaneWidth * q0; i0 < whole; i0 += kLanes)
      for (int v = 0; v < kSweep; ++v) {
        const int64_t i = i0 + kLaneWidth * v;
        LaneVec d, c, pw, pb;
        load_lanes(d, dy + i);
        load_lanes(c, x + i);
        c -= m;
        load_lanes(pw, cw + i);  // both loads before either store: cw and cb are often 4 KB apart, and a load
        load_lanes(pb, cb + i);  // behind a store to the same 4 KB offset waits for it (4K aliasing)
        pw += d * (c * vinv);
        pb += d;
        store_lanes(cw + i, pw);
        store_lanes(cb + i, pb);
        if (w) {
          LaneVec wv;
          load_lanes(wv, w + i);
          d *= wv;
        }
        sa[v] += d;
        add_product(sb[v], d, c);
      }
    for (int v = 0; v < kSweep; ++v) a.v[q0 + v] = sa[v], b.v[q0 + v] = sb[v];
  }
}

// Runs of up to kTwoSweepElems take two sweeps (x and dy, 4-8 KB, are still in L1 for the second), longer ones one
// (they read faster once: rows of 4096 and 10000 measured 1.02-1.06x slower in two). From kernels-alone A/B runs
// against the build before (same process, 1-2 threads; the same bits throughout):
//  - AVX2 (16 registers of 4 doubles): float32 [65536,512] 0.80-0.89x the time (RMSNorm likewise), [128,512] 0.75x,
//    [300,64] 0.74-0.77x; float64 [65536,512] 0.89-1.02x, [128,512] 0.81-0.84x; rows of 768-4096 level.
//  - AVX-512 with lanes of 4 (half a zmm): float32 [65536,512] 0.85-0.93x, [300,64] 0.82-0.85x, [128,512] 0.92x,
//    rows of 768-1024 level; float64 level (0.96-1.04x; [4096,768] 1.02-1.09x) apart from [300,64] 0.86-0.90x. With
//    lanes of 8 (a zmm, moments.h kLaneWidth) one sweep's 8 accumulators take 8 of its 32 registers, and one sweep
//    measured 0.91-0.99x two's time for float32 rows of 512-768 (layer API, same process), 1.06x for rows of 64.
//  - x86-64 baseline (16 registers of 2 doubles: not even a sweep's lanes fit), one sweep: float64 0.76-0.85x, float32
//    1.04-1.17x in cache and 0.96x at [65536,512]; two sweeps were slower still for float32.
#if defined(__AVX512F__)
constexpr int64_t kTwoSweepElems = 0;
#elif defined(__AVX2__)
constexpr int64_t kTwoSweepElems = 1024;
#else
constexpr int64_t kTwoSweepElems = 0;
#endif
template <typename T>
inline void run_grad_sums_with_columns(const T* dy, const T* x, const T* w, int64_t len, double mean, double inv,
                                       double* cw, double* cb, double& s_dy, double& s_dyx) {
  Lanes a, b;
  if (len <= kTwoSweepElems)
    sweep_grad_sums_with_columns<kLaneVecs / 2>(dy, x, w, len, mean, inv, cw, cb, a, b);
  else
    sweep_grad_sums_with_columns<kLaneVecs>(dy, x, w, len, mean, inv, cw, cb, a, b);
  const int64_t whole = len - len % kLanes;
  add_param_grad_row(cw + whole, cb + whole, dy + whole, x + whole, len - whole, mean, inv);
  add_dot_centered(a, b, dy + whole, x + whole, w ? w + whole : nullptr, len - whole, mean);  // the tail's lanes
  s_dy = combine_lanes(a); s_dyx = combine_lanes(b);
}

// Where a backward without the ReLU adds a row's column partials while it reads the row for its sums.
struct ColumnPartials { double* w; double* b; double inv; };

// tile_grad_sums of a tile of whole chunks (see whole_chunks), without the ReLU.
template <typename T>
void chunk_grad_sums(const T* dy, const T* x, const T* w, const Geometry& g, int64_t grp, int64_t begin, int64_t end,
                     double mean, double& s_dy, double& s_dyx) {
  const LaneVec m = LaneVec{} + mean;
  Lanes a{}, b{};
  for_each_chunk(g, grp, begin, end, [&](int64_t off, int64_t k) NK_ALWAYS_INLINE {
    add_dot_centered_chunk(a, b, dy + off, x + off, w ? w + k : nullptr, m);
  });
  s_dy = combine_lanes(a); s_dyx = combine_lanes(b);
}

// sum(dy * w) and sum(dy * w * (x - mean)) of one tile of one group (dz for dy with act, core/relu.h). cols (A == 1,
// no act): also the row's share of the weight/bias column partials, from the same read.
template <typename T>
inline void tile_grad_sums(const T* dy, const T* x, const T* w, const Geometry& g, const Plan& pl, int64_t grp,
                           int64_t tile, double mean, double& s_dy, double& s_dyx, const Relu<T>* act = nullptr,
                           const ColumnPartials* cols = nullptr) {
  const int64_t begin = tile * pl.tile_elems, end = min_i64(g.group_size(), begin + pl.tile_elems);
  if (!act && !cols && end > begin && whole_chunks(g, begin, end)) {
    chunk_grad_sums(dy, x, w, g, grp, begin, end, mean, s_dy, s_dyx);
    return;
  }
  if (cols) {  // A == 1: the tile is one run of the row
    const int64_t off = grp * g.K + begin;
    run_grad_sums_with_columns(dy + off, x + off, w ? w + begin : nullptr, end - begin, mean, cols->inv,
                               cols->w + begin, cols->b + begin, s_dy, s_dyx);
    return;
  }
  Lanes a{}, b{};
  if (!act) {  // the lanes stay in registers across the runs only in a loop this small
    for_each_run(g, grp, begin, end, [&](int64_t off, int64_t len, int64_t k0) {
      add_dot_centered(a, b, dy + off, x + off, w ? w + k0 : nullptr, len, mean);
    });
  } else {
    for_each_run(g, grp, begin, end, [&](int64_t off, int64_t len, int64_t k0) {
      run_grad_sums_relu(*act, a, b, dy, x, w, grp, off, len, k0, mean);
    });
  }
  s_dy = combine_lanes(a); s_dyx = combine_lanes(b);
}

// One row of the row walk's sums with the ReLU (column b is group g0 + b): s_dy[b] += dz, s_dyx[b] += dz * (x - m[b]).
// Out of line, so that the walk's loop without the ReLU stays small enough to inline.
template <typename T>
void row_grad_sums_relu(const Relu<T>& act, const T* dy, const T* x, int64_t off, int64_t g0, int64_t B, int64_t K,
                        const double* m, double* s_dy, double* s_dyx) {
  const T* xr = x + off; const T* dr = dy + off; const T* rr = act.r ? act.r + off : nullptr;
  if (K == 1) {
    add_columns_relu(s_dy, s_dyx, dr, xr, rr, m, B, act.columns(g0));
    return;
  }
  for (int64_t b = 0; b < B; ++b) {
    const int64_t grp = g0 + b;
    Lanes la{}, lb{};
    add_dot_centered_relu(la, lb, dr + b * K, xr + b * K, rr ? rr + b * K : nullptr, K, m[b],
                          act.group(grp));
    s_dy[b] += combine_lanes(la); s_dyx[b] += combine_lanes(lb);
  }
}

// tile_grad_sums of every tile of every group into the partials (index grp * tiles + tile), in memory order (see
// strided_in_memory_order; no position weights: those come with A == 1).
template <typename T>
void grad_sums_in_memory_order(const T* dy, const T* x, const Geometry& g, const Plan& pl, const double* mean,
                               double* p_dy, double* p_dyx, int threads, const Relu<T>* act) {
  const int64_t gs = g.group_size();
  constexpr int64_t half = kMemoryOrderGroups / 2;  // two reductions share the block's stack room
  for_each_group_block(g, memory_order_block(g, threads, half), threads,
                       [&](int64_t grp0, int64_t p, int64_t b0, int64_t b1) {
    GroupLanes block;
    Lanes* la = block.of; Lanes* lb = block.of + half;  // group grp0 + i: la[i], lb[i]
    for (int64_t t = 0; t < pl.tiles; ++t) {
      const int64_t begin = t * pl.tile_elems, end = min_i64(gs, begin + pl.tile_elems);
      for (int64_t i = 0; i < b1 - b0; ++i) la[i] = Lanes(), lb[i] = Lanes();
      for_each_band_run(g, p, b0, b1, begin, end, [&](int64_t off, int64_t len, int64_t k0, int64_t i) {
        const int64_t grp = grp0 + i;
        const T* no_w = nullptr;
        if (act) run_grad_sums_relu(*act, la[i], lb[i], dy, x, no_w, grp, off, len, k0, mean[grp]);
        else add_dot_centered(la[i], lb[i], dy + off, x + off, no_w, len, mean[grp]);
      });
      for (int64_t i = 0; i < b1 - b0; ++i) {
        const int64_t o = (grp0 + i) * pl.tiles + t;
        p_dy[o] = combine_lanes(la[i]); p_dyx[o] = combine_lanes(lb[i]);
      }
    }
  });
}

template <typename T>
void backward_reduce(const T* dy, const T* x, const Geometry& g, const double* mean, const T* w, double* sum_dy,
                     double* sum_dy_xmu, double* scratch, int threads, const Relu<T>* act = nullptr) noexcept {
  const Plan pl = make_plan(g);
  threads = threads_for(g, threads);
  double* p_dy = scratch; double* p_dyx = scratch + pl.partials;
  if (!pl.row_walk) {
    // Blocks of groups are the tasks there: with fewer groups than threads ([48,3,64,64] on 8 threads) the tiles
    // of the group walk keep every thread busy.
    if (strided_in_memory_order(g, pl, threads, sizeof(T)) && !w && g.groups() >= threads) {
      grad_sums_in_memory_order(dy, x, g, pl, mean, p_dy, p_dyx, threads, act);
    } else {
      parallel_for(pl.tasks, threads, [&](int64_t task) {
        tile_grad_sums(dy, x, w, g, pl, task / pl.tiles, task % pl.tiles, mean[task / pl.tiles], p_dy[task],
                       p_dyx[task], act);
      });
    }
    for (int64_t grp = 0; grp < g.groups(); ++grp) {
      const int64_t o = grp * pl.tiles;
      merge_sums_pairwise(p_dy + o, pl.tiles);
      merge_sums_pairwise(p_dyx + o, pl.tiles);
      sum_dy[grp] = p_dy[o]; sum_dy_xmu[grp] = p_dyx[o];
    }
    return;
  }
  const int64_t B = g.B, K = g.K;
  parallel_for(pl.tasks, threads, [&](int64_t task) {
    const int64_t p = task / pl.tiles, a_begin = (task % pl.tiles) * pl.rows_per_tile;
    const int64_t a_end = min_i64(g.A, a_begin + pl.rows_per_tile);
    double* s_dy = p_dy + task * B; double* s_dyx = p_dyx + task * B;
    const double* m = mean + p * B;
    for (int64_t b = 0; b < B; ++b) s_dy[b] = 0, s_dyx[b] = 0;
    for_rows(g, p, a_begin, a_end, [&](int64_t off) {
      const T* xr = x + off; const T* dr = dy + off;
      if (act) {
        row_grad_sums_relu(*act, dy, x, off, p * B, B, K, m, s_dy, s_dyx);
      } else if (K == 1) {
#pragma omp simd
        for (int64_t b = 0; b < B; ++b) {
          const double d = static_cast<double>(dr[b]);
          s_dy[b] += d;
          s_dyx[b] = fmadd(d, static_cast<double>(xr[b]) - m[b], s_dyx[b]);
        }
      } else {
        for (int64_t b = 0; b < B; ++b)
          dot_centered_run(dr + b * K, xr + b * K, static_cast<const T*>(nullptr), K, m[b], s_dy[b], s_dyx[b]);
      }
    });
  });
  for (int64_t p = 0; p < g.P; ++p) {
    const int64_t o = p * pl.tiles * B;
    merge_sums_rows(p_dy + o, pl.tiles, B);
    merge_sums_rows(p_dyx + o, pl.tiles, B);
    for (int64_t b = 0; b < B; ++b) sum_dy[p * B + b] = p_dy[o + b], sum_dy_xmu[p * B + b] = p_dyx[o + b];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Gradients of position parameters (LayerNorm, RMSNorm; A == 1): a column reduction over the groups,
//   dw[k] = sum_g dy[g, k] * (x[g, k] - mean_g) * invstd_g,   db[k] = sum_g dy[g, k].
// Blocks of groups are cut from the shape; each block's column partials are merged in a fixed pairwise order.
// ---------------------------------------------------------------------------------------------------------------

// The same for group (row) grp of dy and x, dz for dy with act (core/relu.h).
template <typename T>
inline void param_grad_row(double* w, double* b, const T* dy, const T* x, int64_t grp, int64_t K, double m, double inv,
                           const Relu<T>* act) {
  if (!act) {
    add_param_grad_row(w, b, dy + grp * K, x + grp * K, K, m, inv);
    return;
  }
  relu_grad_run(*act, grp, grp * K, K, 0, dy, false, [&](int64_t i, int64_t n, const T* dz) {
    add_param_grad_row(w + i, b + i, dz, x + grp * K + i, n, m, inv);
  });
}

// Merges the blocks' column partials (pw, pb: blocks rows of K) in the fixed order; dw, db may be null.
inline void finish_param_grad(double* pw, double* pb, int64_t blocks, int64_t K, double* dw, double* db) {
  merge_sums_rows(pw, blocks, K);
  merge_sums_rows(pb, blocks, K);
  for (int64_t k = 0; k < K; ++k) {
    if (dw) dw[k] = pw[k];
    if (db) db[k] = pb[k];
  }
}

template <typename T>
void param_grad(const T* dy, const T* x, const Geometry& g, const double* mean, const double* invstd, double* dw,
                double* db, double* scratch, int threads, const Relu<T>* act = nullptr) noexcept {
  const int64_t K = g.K, G = g.groups(), blocks = param_grad_blocks(g), per = ceil_div(G, blocks);
  double* pw = scratch; double* pb = scratch + blocks * K;
  parallel_for(blocks, threads_for(g, threads), [&](int64_t blk) {
    double* w = pw + blk * K; double* b = pb + blk * K;
    for (int64_t k = 0; k < K; ++k) w[k] = 0, b[k] = 0;
    for (int64_t grp = blk * per; grp < min_i64(G, (blk + 1) * per); ++grp)
      param_grad_row(w, b, dy, x, grp, K, mean ? mean[grp] : 0.0, invstd[grp], act);
  });
  finish_param_grad(pw, pb, blocks, K, dw, db);
}
