// The MPI collectives behind mpiWorld(), run on the MPI thread only (mpi_thread.h). Each call first exchanges a
// small header (what this rank was asked to do), so ranks that disagree on the operation, dtype, length, op or
// root all get the same error and no data moves: never a hang waiting for a mismatched message, never a buffer
// written past its end.
#pragma once

#include <cstdint>
#include <string>

namespace normkit::mpi {

enum class Kind : int64_t { barrier = 1, all_gather = 2, all_reduce = 3, broadcast = 4, close = 5 };
enum class DType : int64_t { none = -1, f32 = 0, f64 = 1 };

// One rank's part of one collective. `valid` false: this rank rejected its arguments (TypeError/RangeError in
// lib/) and only takes its turn in the header exchange, so the other ranks fail instead of waiting for it.
struct Call {
  Kind kind = Kind::barrier;
  DType dtype = DType::none;
  int64_t length = 0;  // elements of `data`
  int64_t extra = 0;   // allReduce: 0 sum, 1 mean; broadcast: root
  bool valid = true;
  void* data = nullptr;   // allReduce, broadcast: the buffer (in place); allGather: the local values (double)
  double* out = nullptr;  // allGather: size × length doubles
};

// Runs `call` over MPI_COMM_WORLD. Returns "" on success, else an error message: for a header mismatch the same
// message on every rank. Never throws.
std::string run_collective(const Call& call, int rank, int size);

// "allReduce(float32[10], 'sum')": how a rank's call is named in error messages.
std::string describe_call(const int64_t* header);

}  // namespace normkit::mpi
