// Geometry: which elements form one reduction group. Every layer of the family is one such view.
//
// The tensor is seen as a dense row-major array [P][A][B][K]. A reduction group is one (p, b); its elements are
// x[p][a][b][k] for every a and k, so a group holds A*K elements in A runs of K contiguous elements, B*K apart.
//
//   BatchNorm, channels first (N, C, S)      P=1    A=N    B=C   K=S
//   BatchNorm, channels last (N, S, C), 2-D  P=1    A=N*S  B=C   K=1
//   InstanceNorm, channels first             P=N    A=1    B=C   K=S
//   InstanceNorm, channels last              P=N    A=S    B=C   K=1
//   GroupNorm, channels first                P=N    A=1    B=G   K=(C/G)*S
//   LayerNorm / RMSNorm over D trailing      P=rows A=1    B=1   K=D
//
// Groups are numbered p*B + b; per-group arrays (mean, coefficients) use that index.
// This header is included inside an ISA namespace (see isa/kernels.cpp): it must not include anything itself.
#pragma once

// For the small element and run functions that must inline into their loops: GCC's size limits otherwise leave a
// call per run or per row in the big instantiating functions (measured: channels-last eval 2x slower, the fused
// ReLU's loops not vectorized at all, 8x slower).
#ifndef NK_ALWAYS_INLINE
#define NK_ALWAYS_INLINE __attribute__((always_inline))
#endif

struct Geometry {
  int64_t P, A, B, K;
  int64_t groups() const { return P * B; }
  int64_t group_size() const { return A * K; }
  int64_t numel() const { return P * A * B * K; }
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

// Elements one tile holds: small enough that the second pass over it (centered sums, or normalize right after
// the statistics) finds it in L1/L2. Tiles depend on the shape only, never on the thread count, so the partial
// results and their merge order — and therefore every bit of the output — are the same for any thread count.
constexpr int64_t kTileElems = 4096;
// The row walk's cache-resident sub-tile (rows x all columns): large enough that the per-column merge after it
// (a few flops per column) is spread over many rows, small enough for L2 (256 KB of float).
constexpr int64_t kRowSubTileElems = 65536;
// Runs shorter than this make a group-by-group walk stride through memory; walk whole rows instead.
constexpr int64_t kMinRunForGroupWalk = 16;
// The row walk keeps one partial per (task, group); capping the tasks per p bounds that scratch.
constexpr int64_t kMaxRowTilesPerP = 64;

// How a kernel cuts the work. Two walks:
//  - group walk (long runs, e.g. NCHW): a task is one tile of one group's A*K elements.
//  - row walk (short runs, e.g. channels last, 2-D): a task is a block of rows a of one p, covering all B groups;
//    it is processed in sub-tiles of `sub_rows` rows, each two-passed while cache-resident.
struct Plan {
  bool row_walk;
  int64_t tiles;          // group walk: tiles per group; row walk: row blocks per p
  int64_t tile_elems;     // group walk: elements per tile
  int64_t rows_per_tile;  // row walk: rows per block
  int64_t sub_rows;       // row walk: rows per cache-resident sub-tile
  int64_t tasks;          // independent work units
  int64_t partials;       // partial results, indexed by task (and by group inside a row task)
};

inline Plan make_plan(const Geometry& g) {
  Plan pl{};
  pl.row_walk = g.K < kMinRunForGroupWalk && g.A > 1;
  if (!pl.row_walk) {
    pl.tile_elems = kTileElems;
    pl.tiles = max_i64(1, ceil_div(g.group_size(), kTileElems));
    pl.tasks = g.groups() * pl.tiles;
    pl.partials = pl.tasks;
  } else {
    const int64_t row = g.B * g.K;
    pl.sub_rows = max_i64(1, kRowSubTileElems / row);
    pl.rows_per_tile = max_i64(pl.sub_rows, ceil_div(ceil_div(g.A, kMaxRowTilesPerP), pl.sub_rows) * pl.sub_rows);
    pl.tiles = ceil_div(g.A, pl.rows_per_tile);
    pl.tasks = g.P * pl.tiles;
    pl.partials = pl.tasks * g.B;
  }
  return pl;
}

// The threads a kernel uses for g: kernels.h kGrainElems elements each at least.
inline int threads_for(const Geometry& g, int requested) {
  const int64_t most = g.numel() / kGrainElems;
  return requested <= 1 || most <= 1 ? 1 : most < requested ? static_cast<int>(most) : requested;
}

// Calls f(offset, length, k0) for each contiguous run of group `group` within its flattened element range
// [begin, end) (element j of a group is (a, k) = (j / K, j % K)); k0 is the run's first k.
template <typename F>
inline void for_each_run(const Geometry& g, int64_t group, int64_t begin, int64_t end, F&& f) {
  const int64_t p = group / g.B, b = group % g.B;
  const int64_t base = (p * g.A * g.B + b) * g.K, run_stride = g.B * g.K;
  int64_t a = begin / g.K, k = begin % g.K;
  for (int64_t j = begin; j < end; ++a, k = 0) {
    const int64_t len = min_i64(g.K - k, end - j);
    f(base + a * run_stride + k, len, k);
    j += len;
  }
}

// LayerNorm-style parameters indexed by the position k inside a run (length K), rather than by group.
// Only views with A == 1 use them (every run is a whole group), which the glue checks.
template <typename T>
struct PositionParams {
  const T* w;  // multiplies the normalized value (forward) or dy (backward); null: none
  const T* b;  // added in the forward; null: the per-group shift is added instead
};

// Groups per block in the position-parameter gradient (a column reduction over groups), from the shape only.
inline int64_t param_grad_blocks(const Geometry& g) {
  return min_i64(g.groups(), max_i64(1, min_i64(kMaxRowTilesPerP, ceil_div(g.numel(), kTileElems))));
}
