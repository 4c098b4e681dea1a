// allReduce of a large buffer is reduce-scatter + all-gather with the reduction done by hand: each rank owns a
// contiguous chunk of every segment; MPI_Alltoallv brings every rank's copy of a chunk to its owner, the owner sums the copies in rank
// order in double and rounds once (exactly reduceInRankOrder in lib/distributed/communicator.ts), and
// MPI_Allgatherv hands the reduced chunks to everyone. Each rank sends and receives 2·(size−1)/size of the buffer,
// as a ring all-reduce does, and every rank ends with the same bits. MPI_Allreduce is not used: its summation
// order is the library's choice, so its bits could differ from a thread group's.
#include "collectives.h"

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <vector>

namespace normkit::mpi {
namespace {

constexpr int kHeader = 5;  // kind, dtype, length, extra, status
enum Status : int64_t { rejected = 0, ready = 1, no_memory = 2 };
// Elements per allReduce segment: bounds the owner's receive scratch (size × chunk ≈ one segment) and keeps every
// MPI count far below INT_MAX whatever the buffer's length.
constexpr int64_t kSegment = int64_t(1) << 22;
constexpr int64_t kBroadcastSegment = int64_t(1) << 28;
// Below this many bytes of all ranks' copies together, allReduce all-gathers the copies and every rank reduces all
// of them itself: one collective instead of two, for the small per-layer sums of SyncBatchNorm, where latency, not
// bandwidth, is the cost. The same rank-order expression either way, so the same bits.
constexpr int64_t kAllGatherBytes = int64_t(256) << 10;

struct MpiError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  throw MpiError(std::string(what) + " failed: " + std::string(text, static_cast<size_t>(len)));
}

const char* kind_name(int64_t k) {
  switch (static_cast<Kind>(k)) {
    case Kind::barrier: return "barrier";
    case Kind::all_gather: return "allGather";
    case Kind::all_reduce: return "allReduce";
    case Kind::broadcast: return "broadcast";
    case Kind::close: return "close";  // or an exit (an implicit close)
  }
  return "unknown";
}

// Every rank's header, in rank order; the same array on every rank.
std::vector<int64_t> exchange_headers(const Call& c, Status status, int size) {
  const int64_t mine[kHeader] = {static_cast<int64_t>(c.kind), static_cast<int64_t>(c.dtype), c.length, c.extra,
                                 status};
  std::vector<int64_t> all(static_cast<size_t>(size) * kHeader);
  check(MPI_Allgather(mine, kHeader, MPI_INT64_T, all.data(), kHeader, MPI_INT64_T, MPI_COMM_WORLD), "MPI_Allgather");
  return all;
}

// "" when every rank made the same call; otherwise one message, built from the shared headers, so every rank
// throws the same words.
std::string mismatch(const std::vector<int64_t>& all, int size) {
  std::string rejected, no_memory;
  for (int r = 0; r < size; ++r) {
    const int64_t status = all[static_cast<size_t>(r) * kHeader + 4];
    std::string& list = status == Status::rejected ? rejected : no_memory;
    if (status != Status::ready) list += (list.empty() ? "" : ", ") + std::to_string(r);
  }
  const int64_t* first = all.data();
  if (!rejected.empty())
    return std::string("mpiWorld: ") + kind_name(first[0]) + " failed: rank(s) " + rejected +
           " rejected their arguments (the TypeError or RangeError is thrown there)";
  if (!no_memory.empty())
    return std::string("mpiWorld: ") + kind_name(first[0]) + " failed: rank(s) " + no_memory +
           " could not allocate the reduction scratch";
  std::string differ;
  int listed = 0;
  for (int r = 1; r < size; ++r) {
    const int64_t* h = first + static_cast<size_t>(r) * kHeader;
    if (std::equal(h, h + kHeader - 1, first)) continue;
    if (++listed > 8) { differ += "; …"; break; }
    differ += "; rank " + std::to_string(r) + " called " + describe_call(h);
  }
  if (differ.empty()) return "";
  return "mpiWorld: ranks disagree on a collective (every rank must make the same call, with the same dtype and "
         "length): rank 0 called " + describe_call(first) + differ;
}

template <typename T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

// Segment [base, base + m): rank r owns [m·r/size, m·(r+1)/size).
bool gather_whole(int64_t n, int64_t elem_bytes, int size) { return n <= kAllGatherBytes / (elem_bytes * size); }

// Scratch for the copies: all of them (gather_whole), or the owner's chunk of every rank:
// own·size ≤ ceil(m/size)·size < m + size elements, m ≤ kSegment.
size_t scratch_bytes(const Call& c, int size) {
  if (c.kind != Kind::all_reduce || c.length == 0) return 0;
  const int64_t elem = c.dtype == DType::f32 ? sizeof(float) : sizeof(double);
  const int64_t elems = gather_whole(c.length, elem, size) ? c.length * size : std::min(kSegment, c.length) + size;
  return static_cast<size_t>(elems * elem);
}

// reduceInRankOrder over `count` elements whose size copies lie `stride` apart in `copies`:
// s = v_0; s += v_1; …; 'mean': s / size; one rounding (the store).
// Blocks of kBlock elements, ranks outer and elements inner, so the loops vectorize and the double sums stay in
// L1 (as fast as element-outer for 2–3 ranks, 1.5× faster for 8 in a standalone check); each element still sees
// exactly the additions above, in the same order.
template <typename T>
void reduce_copies(const T* copies, int64_t count, int64_t stride, int size, bool mean, T* out) {
  constexpr int64_t kBlock = 512;
  double s[kBlock];
  const double divisor = static_cast<double>(size);
  for (int64_t base = 0; base < count; base += kBlock) {
    const int64_t m = std::min(kBlock, count - base);
    const T* v = copies + base;
    for (int64_t i = 0; i < m; ++i) s[i] = v[i];
    for (int r = 1; r < size; ++r) {
      const T* vr = v + static_cast<size_t>(r) * stride;
      for (int64_t i = 0; i < m; ++i) s[i] += vr[i];
    }
    if (mean)
      for (int64_t i = 0; i < m; ++i) out[base + i] = static_cast<T>(s[i] / divisor);
    else
      for (int64_t i = 0; i < m; ++i) out[base + i] = static_cast<T>(s[i]);
  }
}

template <typename T>
void all_reduce(T* buf, int64_t n, bool mean, int rank, int size, T* scratch) {
  const MPI_Datatype type = mpi_type<T>();
  if (gather_whole(n, sizeof(T), size)) {  // n·size is small here: the int counts cannot overflow
    check(MPI_Allgather(buf, static_cast<int>(n), type, scratch, static_cast<int>(n), type, MPI_COMM_WORLD),
          "MPI_Allgather");
    reduce_copies(scratch, n, n, size, mean, buf);
    return;
  }
  std::vector<int> counts(size), displs(size), own_counts(size), own_displs(size);
  for (int64_t base = 0; base < n; base += kSegment) {
    const int64_t m = std::min(kSegment, n - base);
    for (int r = 0; r < size; ++r) {
      const int64_t lo = m * r / size, hi = m * (r + 1) / size;
      counts[r] = static_cast<int>(hi - lo);
      displs[r] = static_cast<int>(lo);
    }
    const int own = counts[rank];
    for (int r = 0; r < size; ++r) {  // rank r's copy of my chunk lands at r·own: the copies in rank order
      own_counts[r] = own;
      own_displs[r] = r * own;
    }
    T* seg = buf + base;
    check(MPI_Alltoallv(seg, counts.data(), displs.data(), type, scratch, own_counts.data(), own_displs.data(),
                        type, MPI_COMM_WORLD), "MPI_Alltoallv");
    reduce_copies(scratch, own, own, size, mean, seg + displs[rank]);
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, seg, counts.data(), displs.data(), type, MPI_COMM_WORLD),
          "MPI_Allgatherv");
  }
}

void broadcast(void* buf, DType dtype, int64_t n, int root) {
  const MPI_Datatype type = dtype == DType::f32 ? MPI_FLOAT : MPI_DOUBLE;
  const size_t bytes = dtype == DType::f32 ? sizeof(float) : sizeof(double);
  for (int64_t base = 0; base < n; base += kBroadcastSegment) {
    const int count = static_cast<int>(std::min(kBroadcastSegment, n - base));
    check(MPI_Bcast(static_cast<char*>(buf) + base * bytes, count, type, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
}

}  // namespace

std::string describe_call(const int64_t* h) {
  const auto kind = static_cast<Kind>(h[0]);
  const std::string array = std::string(h[1] == 0 ? "float32" : "float64") + "[" + std::to_string(h[2]) + "]";
  switch (kind) {
    case Kind::all_gather: return "allGather(" + array + ")";
    case Kind::all_reduce: return "allReduce(" + array + (h[3] == 1 ? ", 'mean')" : ", 'sum')");
    case Kind::broadcast: return "broadcast(" + array + ", root " + std::to_string(h[3]) + ")";
    case Kind::close: return "close() (or exited)";
    default: return std::string(kind_name(h[0])) + "()";
  }
}

std::string run_collective(const Call& c, int rank, int size) {
  try {
    // Allocated before the header exchange: a rank that cannot get it says so there, instead of leaving the
    // others waiting in MPI_Alltoallv.
    Status status = c.valid ? Status::ready : Status::rejected;
    std::unique_ptr<void, decltype(&std::free)> scratch(nullptr, &std::free);
    if (status == Status::ready && scratch_bytes(c, size) > 0) {
      scratch.reset(std::malloc(scratch_bytes(c, size)));
      if (!scratch) status = Status::no_memory;
    }
    const std::vector<int64_t> headers = exchange_headers(c, status, size);
    std::string err = mismatch(headers, size);
    if (!err.empty()) return err;
    switch (c.kind) {
      case Kind::barrier:
      case Kind::close:
        break;  // the header exchange is the barrier: no rank leaves it before every rank has entered
      case Kind::all_gather:
        check(MPI_Allgather(c.data, static_cast<int>(c.length), MPI_DOUBLE, c.out, static_cast<int>(c.length),
                            MPI_DOUBLE, MPI_COMM_WORLD), "MPI_Allgather");
        break;
      case Kind::all_reduce:
        if (c.dtype == DType::f32)
          all_reduce(static_cast<float*>(c.data), c.length, c.extra == 1, rank, size,
                     static_cast<float*>(scratch.get()));
        else
          all_reduce(static_cast<double*>(c.data), c.length, c.extra == 1, rank, size,
                     static_cast<double*>(scratch.get()));
        break;
      case Kind::broadcast:
        broadcast(c.data, c.dtype, c.length, static_cast<int>(c.extra));
        break;
    }
    return "";
  } catch (const std::bad_alloc&) {
    return "mpiWorld: out of memory";
  } catch (const std::exception& e) {
    return std::string("mpiWorld: ") + e.what();
  }
}

}  // namespace normkit::mpi
