// Plain pthreads (and std::mutex, which is one) rather than std::thread, std::condition_variable and std::promise:
// with GCC 12 those raise the addon's libstdc++ symbol-version floor (GLIBCXX_3.4.30) above normkit.node's.
#include "mpi_thread.h"

#include <mpi.h>
#include <pthread.h>

#include <cstdlib>
#include <ctime>
#include <list>
#include <mutex>

namespace normkit::mpi {
namespace {

enum class Phase { idle, running, finalized };

// Never destroyed: the thread may still be blocked in MPI while static destructors run at exit.
struct World {
  std::mutex mutex;               // guards everything below
  pthread_cond_t wake = PTHREAD_COND_INITIALIZER;     // a task was posted, or stop was set
  pthread_cond_t settled = PTHREAD_COND_INITIALIZER;  // a waited-for task (or the start) finished
  pthread_cond_t idled = PTHREAD_COND_INITIALIZER;    // the thread finished a task and found nothing queued
  std::list<std::function<void()>> tasks;  // a list: std::deque would need GLIBCXX_3.4.29
  bool busy = false;  // the thread is running a task (perhaps blocked in a collective)
  bool stop = false;
  bool started = false;
  Phase phase = Phase::idle;
  pthread_t thread{};
  WorldInfo info;
};

World& world() {
  static World* w = new World();
  return *w;
}

// Waits on `cond` with the world's mutex, which `lock` holds.
void wait(pthread_cond_t& cond, std::unique_lock<std::mutex>& lock) { pthread_cond_wait(&cond, lock.mutex()->native_handle()); }

void loop(World& w) {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(w.mutex);
      w.busy = false;
      if (w.tasks.empty()) pthread_cond_broadcast(&w.idled);
      while (!w.stop && w.tasks.empty()) wait(w.wake, lock);
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

void* thread_main(void*) {
  World& w = world();
  std::string error = init_mpi(w.info);
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    w.info.error = error;
    w.started = true;
  }
  pthread_cond_broadcast(&w.settled);
  if (error.empty()) loop(w);
  return nullptr;
}

}  // namespace

const WorldInfo& start_world() {
  World& w = world();
  std::unique_lock<std::mutex> lock(w.mutex);
  if (w.phase != Phase::idle) return w.info;
  if (pthread_create(&w.thread, nullptr, thread_main, nullptr) != 0) {
    w.phase = Phase::finalized;
    w.info.error = "cannot start the MPI thread";
    return w.info;
  }
  while (!w.started) wait(w.settled, lock);
  if (!w.info.error.empty()) {
    pthread_join(w.thread, nullptr);
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
  pthread_cond_signal(&w.wake);
  return true;
}

void mpi_calls_done() {
  World& w = world();
  std::lock_guard<std::mutex> lock(w.mutex);
  w.busy = false;
}

bool run_and_wait(const std::function<void()>& task) {
  World& w = world();
  bool done = false;
  if (!post([&] {
        task();
        {
          std::lock_guard<std::mutex> lock(w.mutex);
          done = true;
        }
        pthread_cond_broadcast(&w.settled);
      }))
    return false;
  std::unique_lock<std::mutex> lock(w.mutex);
  while (!done) wait(w.settled, lock);
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
  if (ran) pthread_join(w.thread, nullptr);
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
  std::unique_lock<std::mutex> lock(w.mutex);
  // A task signals its caller from inside itself, so for a moment after a collective has returned to JavaScript
  // (sync) or settled its promise (async) the thread still counts as busy, until loop() takes the lock again. An
  // exit in that moment is clean and must not abort the job: wait for the thread to come back, a short while. A
  // collective really left in flight keeps it busy past the deadline (then the caller aborts).
  timespec deadline{};
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_nsec += 250'000'000;
  if (deadline.tv_nsec >= 1'000'000'000) { deadline.tv_sec += 1; deadline.tv_nsec -= 1'000'000'000; }
  while (w.phase == Phase::running && (w.busy || !w.tasks.empty())) {
    if (pthread_cond_timedwait(&w.idled, lock.mutex()->native_handle(), &deadline) != 0) break;  // ETIMEDOUT
  }
  return w.phase == Phase::running && !w.busy && w.tasks.empty();
}

}  // namespace normkit::mpi
