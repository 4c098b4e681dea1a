// The one thread that owns MPI in this process: it calls MPI_Init_thread(MPI_THREAD_FUNNELED) and then every MPI
// function, in the order the tasks were posted (the order JavaScript called the collectives, which is what MPI
// requires of every rank). A std::thread of its own, never libuv's pool: a collective waiting for a slow rank would
// otherwise hold one of the four threads fs, dns and zlib share.
#pragma once

#include <functional>
#include <string>

namespace normkit::mpi {

struct WorldInfo {
  int rank = 0;
  int size = 0;
  std::string library;  // MPI_Get_library_version, first line
  std::string error;    // non-empty: MPI could not be initialized (or was finalized)
};

// Starts the thread and initializes MPI on it, once per process; later calls return the same answer.
const WorldInfo& start_world();

// Runs `task` on the MPI thread, after every task posted before it. Returns false (and drops the task) once MPI
// has been finalized or aborted.
bool post(std::function<void()> task);

// Called by a task on the MPI thread once it has made its last MPI call and only hands back its result: from then
// on an exit may finalize (an async task's promise settles after this, and a clean exit can follow at once).
void mpi_calls_done();

// Runs `task` on the MPI thread and waits for it. False as for post().
bool run_and_wait(const std::function<void()>& task);

// MPI_Finalize on the MPI thread, then joins it. Every rank must call it (it is collective).
void finalize_world();

// Ends the whole job: MPI_Abort(MPI_COMM_WORLD, code). Posted to the MPI thread when it is idle; when it is stuck
// in a collective, called from this thread (the process is dying; Open MPI's abort only signals the runtime).
// Does not return while MPI is initialized.
void abort_world(int code);

bool world_active();

// MPI is running and no collective is queued or making MPI calls.
bool world_idle();

}  // namespace normkit::mpi
