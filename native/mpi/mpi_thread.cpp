#include "mpi_thread.h"

#include <mpi.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

namespace normkit::mpi {
namespace {

enum class Phase { idle, running, finalized };

// Never destroyed: the thread may still be blocked in MPI while static destructors run at exit.
struct World {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::function<void()>> tasks;
  bool busy = false;  // the thread is running a task (perhaps blocked in a collective)
  bool stop = false;
  Phase phase = Phase::idle;
  std::thread thread;
  WorldInfo info;
};

World& world() {
  static World* w = new World();
  return *w;
}

void loop(World& w) {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(w.mutex);
      w.busy = false;
      w.wake.wait(lock, [&] { return w.stop || !w.tasks.empty(); });
      if (w.tasks.empty()) return;  // stop, and nothing left
      task = std::move(w.tasks.front());
      w.tasks.pop_front();
      w.busy = true;
    }
    task();
  }
}

std::string init_mpi(WorldInfo& info) {
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return "MPI_Init_thread failed";
  if (provided < MPI_THREAD_FUNNELED) return "this MPI library does not provide MPI_THREAD_FUNNELED";
  // Errors come back as codes (turned into JavaScript errors), not as an abort of the whole job.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &info.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &info.size);
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(version, &len) == MPI_SUCCESS) {
    info.library.assign(version, static_cast<size_t>(len));
    info.library = info.library.substr(0, info.library.find_first_of("\n,"));
  }
  return "";
}

// Last resort for an exit that skipped the JavaScript 'exit' event (an uncaught exception exits without it): the
// process is going away without finalizing, so end the job rather than leave the other ranks waiting.
void at_exit() { abort_world(1); }

}  // namespace

const WorldInfo& start_world() {
  World& w = world();
  std::unique_lock<std::mutex> lock(w.mutex);
  if (w.phase != Phase::idle) return w.info;
  std::promise<void> ready;
  w.thread = std::thread([&w, &ready] {
    w.info.error = init_mpi(w.info);
    ready.set_value();
    if (w.info.error.empty()) loop(w);
  });
  ready.get_future().wait();
  if (!w.info.error.empty()) {
    w.thread.join();
    w.phase = Phase::finalized;
    return w.info;
  }
  w.phase = Phase::running;
  std::atexit(at_exit);
  return w.info;
}

bool world_active() {
  World& w = world();
  std::lock_guard<std::mutex> lock(w.mutex);
  return w.phase == Phase::running;
}

bool post(std::function<void()> task) {
  World& w = world();
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    if (w.phase != Phase::running || w.stop) return false;
    w.tasks.push_back(std::move(task));
  }
  w.wake.notify_one();
  return true;
}

void mpi_calls_done() {
  World& w = world();
  std::lock_guard<std::mutex> lock(w.mutex);
  w.busy = false;
}

bool run_and_wait(const std::function<void()>& task) {
  std::promise<void> done;
  if (!post([&] { task(); done.set_value(); })) return false;
  done.get_future().wait();
  return true;
}

void finalize_world() {
  World& w = world();
  // The task marks the world finalized under the lock, so nothing posted after it can reach MPI.
  const bool ran = run_and_wait([&w] {
    MPI_Finalize();
    std::lock_guard<std::mutex> lock(w.mutex);
    w.stop = true;
    w.phase = Phase::finalized;
    w.info.error = "MPI has been finalized (close() was called, or the process is exiting); Open MPI cannot be "
                   "initialized twice in one process";
  });
  if (ran) w.thread.join();
}

void abort_world(int code) {
  World& w = world();
  bool idle;
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    if (w.phase != Phase::running) return;
    idle = !w.busy && w.tasks.empty();
  }
  if (idle && run_and_wait([code] { MPI_Abort(MPI_COMM_WORLD, code); })) return;
  MPI_Abort(MPI_COMM_WORLD, code);
}

bool world_idle() {
  World& w = world();
  std::lock_guard<std::mutex> lock(w.mutex);
  return w.phase == Phase::running && !w.busy && w.tasks.empty();
}

}  // namespace normkit::mpi
