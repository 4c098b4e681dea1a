// node-addon-api glue: convert, re-check what could corrupt memory, call the kernel table, map errors.
// Argument checks that users see live in lib/ (TypeScript); a failure here means lib/ let something through,
// so it throws "normkit internal: ..." — it never crashes and never writes out of bounds.
//
// Every op is parsed on the main thread into a Job (raw pointers + sizes). A sync call runs it at once; an async
// call pins the typed arrays it points into (references, not copies, as classic-level does) and runs it on the
// libuv pool. A process-wide mutex lets one kernel run at a time: each already uses every thread it was given, so
// concurrent calls would only oversubscribe the cores.
#include <napi.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <new>
#include <cstring>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace normkit {
namespace {

std::mutex& kernel_mutex() {
  static std::mutex m;
  return m;
}

// Scratch for the kernels (partials, per-group coefficients): one arena per calling thread (the main thread, or a
// libuv pool thread), grown when needed and never freed or cleared, so a call allocates nothing and takes no page
// faults once warm (pytorch#52011: fresh large buffers cost more in page faults than the kernel itself).
double* scratch_arena(int64_t doubles) {  // doubles < 0: release the arena
  thread_local std::unique_ptr<double[]> arena;
  thread_local int64_t capacity = 0;
  if (doubles < 0) {
    arena.reset();
    capacity = 0;
    return nullptr;
  }
  if (doubles > capacity) {
    arena.reset();
    capacity = 0;
    arena.reset(new double[static_cast<size_t>(doubles)]);
    capacity = doubles;
  }
  return arena.get();
}

// Arenas above this size are released after the call, so one huge call does not pin its scratch for good.
constexpr int64_t kKeepScratchDoubles = int64_t(8) << 20;  // 64 MB

// The kernel call a Job makes: a lambda of trivially copyable captures (pointers, sizes), kept inline. A
// std::function allocates for captures this large, and a small call must not pay a malloc and a free.
class JobFn {
 public:
  template <typename F>
  JobFn& operator=(F f) {
    static_assert(sizeof(F) <= sizeof(storage_) && alignof(F) <= alignof(std::max_align_t), "captures too large");
    static_assert(std::is_trivially_copyable<F>::value && std::is_trivially_destructible<F>::value,
                  "JobFn keeps trivially copyable captures only");
    new (storage_) F(f);
    call_ = [](const void* self, double* scratch) { (*static_cast<const F*>(self))(scratch); };
    return *this;
  }
  void operator()(double* scratch) const { call_(storage_, scratch); }

 private:
  alignas(std::max_align_t) unsigned char storage_[224];
  void (*call_)(const void*, double*) = [](const void*, double*) {};
};

// The typed arrays a job reads or writes (pinned while it runs async): at most one per argument, no allocation.
class JobArrays {
 public:
  bool push_back(const Napi::Value& v) {  // false: full (never for the ops' argument lists)
    if (count_ == kMax) return false;
    values_[count_++] = v;
    return true;
  }
  void clear() { count_ = 0; }
  const napi_value* begin() const { return values_; }
  const napi_value* end() const { return values_ + count_; }

 private:
  static constexpr int kMax = 24;  // more than any op's arguments
  napi_value values_[kMax];
  int count_ = 0;
};

enum class DType { f32, f64 };

struct View {
  DType dtype;
  void* data;
  int64_t length;
};

struct Job {
  JobFn run;
  int64_t scratch_doubles = 0;
  bool param_grad = false;
  int64_t segments = 0;  // > 0: a fused training op (its scratch is fused_scratch_doubles)
  int64_t relu_scratch = 0;  // the fused ReLU's backward: relu_scratch_doubles after the kernel's own scratch
  JobArrays arrays;      // typed arrays the job reads or writes: pinned while it runs async
  // The op's first tensor (info[5]) as parse read it to pick the dtype: read once (napi_get_typedarray_info finds
  // the type by asking V8 "is it an Int8Array? a Uint8Array? ..." in turn, 35-40 ns for a float array).
  int64_t first_index = -1;
  View first{};
  void operator()() {  // may throw std::bad_alloc (scratch): run_sync maps it, AsyncWorker rejects with it
    double* scratch = scratch_arena(scratch_doubles);
    {
      std::lock_guard<std::mutex> lock(kernel_mutex());
      run(scratch);
    }
    if (scratch_doubles > kKeepScratchDoubles) scratch_arena(-1);
  }
};

[[noreturn]] void internal(Napi::Env env, const std::string& what) {
  throw Napi::Error::New(env, "normkit internal: " + what);
}

// The arguments of a call, read into a fixed array with one napi_get_cb_info. node-addon-api's CallbackInfo keeps six
// on the stack and, past six, asks V8 a second time and allocates the rest on the heap (a malloc and a free per
// call: every op has 8 to 23 arguments). Beyond the arguments given, [] reads undefined, as CallbackInfo's does.
class Args {
 public:
  Args(napi_env env, napi_callback_info cb) : env_(env) {
    size_t count = kMax;
    if (napi_get_cb_info(env, cb, &count, argv_, nullptr, nullptr) != napi_ok) internal(Env(), "cannot read the arguments");
    count_ = count < kMax ? count : kMax;  // napi_get_cb_info fills argv_ past the given arguments with undefined
  }
  Napi::Env Env() const { return Napi::Env(env_); }
  size_t Length() const { return count_; }
  Napi::Value operator[](size_t i) const { return i < kMax ? Napi::Value(env_, argv_[i]) : Env().Undefined(); }

 private:
  static constexpr size_t kMax = 24;  // more than any op's arguments
  napi_env env_;
  size_t count_ = 0;
  napi_value argv_[kMax];
};

View typed_view(const Args& info, size_t i, const char* name, Job& job) {
  Napi::Env env = info.Env();
  if (static_cast<int64_t>(i) == job.first_index) {
    if (!job.arrays.push_back(info[i])) internal(env, "too many arrays to pin");
    return job.first;
  }
  napi_value v = info[i];
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  // napi_get_typedarray_info fails with napi_invalid_arg for anything but a typed array: no separate is-check.
  if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok)
    internal(env, std::string(name) + " is not a typed array");
  if (type != napi_float32_array && type != napi_float64_array) internal(env, std::string(name) + " is not float32/float64");
  if (length > 0 && data == nullptr) internal(env, std::string(name) + " has no backing store");
  if (!job.arrays.push_back(info[i])) internal(env, "too many arrays to pin");
  return View{type == napi_float32_array ? DType::f32 : DType::f64, data, static_cast<int64_t>(length)};
}

// A typed array of the given dtype with at least `need` elements.
void* typed(const Args& info, size_t i, const char* name, DType dtype, int64_t need, Job& job) {
  const View v = typed_view(info, i, name, job);
  if (v.dtype != dtype) internal(info.Env(), std::string(name) + " has the wrong dtype");
  if (v.length < need) internal(info.Env(), std::string(name) + " is too short");
  return v.data;
}

// null or undefined (one napi_typeof instead of IsNull() and IsUndefined()).
bool is_nullish(const Args& info, size_t i) {
  napi_valuetype t = napi_undefined;
  if (i < info.Length() && napi_typeof(info.Env(), info[i], &t) != napi_ok) internal(info.Env(), "cannot read an argument");
  return t == napi_null || t == napi_undefined;
}

const double* optional_f64(const Args& info, size_t i, const char* name, int64_t need, Job& job) {
  if (is_nullish(info, i)) return nullptr;
  return static_cast<const double*>(typed(info, i, name, DType::f64, need, job));
}

bool flag_arg(const Args& info, size_t i) {
  return info[i].IsBoolean() && info[i].As<Napi::Boolean>().Value();
}

// More threads than a few per core only adds idle OpenMP threads (libgomp keeps a team per calling thread).
// omp_get_num_procs() asks the kernel for the affinity mask (a system call): read it once.
int clamp_threads(double requested) {
  static const double cap = std::max(16, 4 * omp_get_num_procs());
  return requested < 1 || requested != requested ? 1 : static_cast<int>(std::min(requested, cap));
}

// (P, A, B, K, threads) at info[0..4]: non-negative integers whose product is exact in a double.
Shape4 shape_arg(const Args& info, int* threads) {
  Napi::Env env = info.Env();
  double d[5];
  for (size_t i = 0; i < 5; ++i) {
    // napi_get_value_double fails (napi_number_expected) for anything but a number: no separate type check.
    if (napi_get_value_double(env, info[i], &d[i]) != napi_ok) internal(env, "geometry is not numeric");
    if (!(d[i] >= 0) || d[i] != std::floor(d[i]) || d[i] > 9007199254740991.0) internal(env, "bad geometry");
  }
  // Every product the glue and the kernels form (P*B, A*K, P*A*B*K, ...) must be exact, also when another
  // dimension is 0: bound the product of the non-zero dimensions.
  double product = 1;
  for (int i = 0; i < 4; ++i) product *= d[i] > 0 ? d[i] : 1;
  if (product > 9007199254740991.0) internal(env, "geometry too large");
  *threads = clamp_threads(d[4]);
  return Shape4{static_cast<int64_t>(d[0]), static_cast<int64_t>(d[1]), static_cast<int64_t>(d[2]),
                static_cast<int64_t>(d[3])};
}

int64_t numel(Shape4 g) { return g.P * g.A * g.B * g.K; }
int64_t groups(Shape4 g) { return g.P * g.B; }

template <typename T>
const KernelsOf<T>& table();
template <>
const KernelsOf<float>& table<float>() { return kernels().f32; }
template <>
const KernelsOf<double>& table<double>() { return kernels().f64; }

// moments(P, A, B, K, threads, x, mean, m2)
template <typename T>
void moments_job(const Args& info, Shape4 g, int nt, DType dt, Job& job) {
  auto* x = static_cast<const T*>(typed(info, 5, "x", dt, numel(g), job));
  auto* mean = static_cast<double*>(typed(info, 6, "mean", DType::f64, groups(g), job));
  auto* m2 = static_cast<double*>(typed(info, 7, "m2", DType::f64, groups(g), job));
  job.run = [=](double* s) { table<T>().moments(x, g, mean, m2, s, nt); };
}

// Optional per-position parameters (length K) at info[i]: only for views whose runs are whole groups (A == 1).
template <typename T>
const T* position_param(const Args& info, size_t i, const char* name, Shape4 g, DType dt, Job& job) {
  if (is_nullish(info, i)) return nullptr;
  if (g.A != 1) internal(info.Env(), std::string(name) + ": position parameters need A == 1");
  return static_cast<const T*>(typed(info, i, name, dt, g.K, job));
}

// An optional tensor-sized array of the op's dtype at info[i].
template <typename T>
T* optional_tensor(const Args& info, size_t i, const char* name, Shape4 g, DType dt, Job& job) {
  if (info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return static_cast<T*>(typed(info, i, name, dt, numel(g), job));
}

// The fused ReLU at info[i..i+2]: (relu: boolean, r | null, dr | null); false or absent: none (returns false).
// r is the residual added before the ReLU; dr, backward only, receives the residual's gradient.
template <typename T>
bool relu_arg(const Args& info, size_t i, Shape4 g, DType dt, Job& job, ReluArgs<T>& out) {
  if (!flag_arg(info, i)) return false;
  out = ReluArgs<T>{optional_tensor<T>(info, i + 1, "r", g, dt, job), optional_tensor<T>(info, i + 2, "dr", g, dt, job),
                    nullptr, nullptr};
  return true;
}

// The backward's ReLU of a normalize(mean, scale, shift) forward at info[i..i+4]: (relu, r, dr, scale, shift).
template <typename T>
bool normalize_relu_arg(const Args& info, size_t i, Shape4 g, DType dt, Job& job, ReluArgs<T>& out) {
  if (!relu_arg(info, i, g, dt, job, out)) return false;
  out.scale = static_cast<const double*>(typed(info, i + 3, "scale", DType::f64, groups(g), job));
  out.shift = static_cast<const double*>(typed(info, i + 4, "shift", DType::f64, groups(g), job));
  job.relu_scratch = relu_scratch_doubles(g, 1);
  return true;
}

// normalize(P, A, B, K, threads, x, y, mean, scale, shift, w | null, b | null[, relu, r | null])
template <typename T>
void normalize_job(const Args& info, Shape4 g, int nt, DType dt, Job& job) {
  auto* x = static_cast<const T*>(typed(info, 5, "x", dt, numel(g), job));
  auto* y = static_cast<T*>(typed(info, 6, "y", dt, numel(g), job));
  auto* mean = static_cast<const double*>(typed(info, 7, "mean", DType::f64, groups(g), job));
  auto* scale = static_cast<const double*>(typed(info, 8, "scale", DType::f64, groups(g), job));
  auto* shift = static_cast<const double*>(typed(info, 9, "shift", DType::f64, groups(g), job));
  const T* w = position_param<T>(info, 10, "w", g, dt, job);
  const T* b = position_param<T>(info, 11, "b", g, dt, job);
  ReluArgs<T> relu{};
  const bool fused = relu_arg(info, 12, g, dt, job, relu);
  job.run = [=](double* s) { table<T>().normalize(x, y, g, mean, scale, shift, w, b, s, nt, fused ? &relu : nullptr); };
}

// backwardReduce(P, A, B, K, threads, dy, x, mean, sumDy, sumDyXmu, w | null[, relu, r | null, null, scale, shift])
template <typename T>
void backward_reduce_job(const Args& info, Shape4 g, int nt, DType dt, Job& job) {
  auto* dy = static_cast<const T*>(typed(info, 5, "dy", dt, numel(g), job));
  auto* x = static_cast<const T*>(typed(info, 6, "x", dt, numel(g), job));
  auto* mean = static_cast<const double*>(typed(info, 7, "mean", DType::f64, groups(g), job));
  auto* sum_dy = static_cast<double*>(typed(info, 8, "sumDy", DType::f64, groups(g), job));
  auto* sum_dyx = static_cast<double*>(typed(info, 9, "sumDyXmu", DType::f64, groups(g), job));
  const T* w = position_param<T>(info, 10, "w", g, dt, job);
  ReluArgs<T> relu{};
  const bool fused = normalize_relu_arg(info, 11, g, dt, job, relu);
  job.run = [=](double* s) {
    table<T>().backward_reduce(dy, x, g, mean, w, sum_dy, sum_dyx, s, nt, fused ? &relu : nullptr);
  };
}

// backwardApply(P, A, B, K, threads, dy, x, dx, mean, a, b | null, c | null, w | null[, relu, r | null, dr | null,
// scale, shift])
template <typename T>
void backward_apply_job(const Args& info, Shape4 g, int nt, DType dt, Job& job) {
  auto* dy = static_cast<const T*>(typed(info, 5, "dy", dt, numel(g), job));
  auto* x = static_cast<const T*>(typed(info, 6, "x", dt, numel(g), job));
  auto* dx = static_cast<T*>(typed(info, 7, "dx", dt, numel(g), job));
  auto* mean = static_cast<const double*>(typed(info, 8, "mean", DType::f64, groups(g), job));
  auto* a = static_cast<const double*>(typed(info, 9, "a", DType::f64, groups(g), job));
  const double* b = optional_f64(info, 10, "b", groups(g), job);
  const double* c = optional_f64(info, 11, "c", groups(g), job);
  if ((b == nullptr) != (c == nullptr)) internal(info.Env(), "b and c go together");
  const T* w = position_param<T>(info, 12, "w", g, dt, job);
  ReluArgs<T> relu{};
  const bool fused = normalize_relu_arg(info, 13, g, dt, job, relu);
  job.run = [=](double* s) { table<T>().backward_apply(dy, x, dx, g, mean, a, b, c, w, s, nt, fused ? &relu : nullptr); };
}

// paramGrad(P, A, B, K, threads, dy, x, mean | null, invstd, dw, db): A == 1 views only.
template <typename T>
void param_grad_job(const Args& info, Shape4 g, int nt, DType dt, Job& job) {
  if (g.A != 1) internal(info.Env(), "paramGrad needs A == 1");
  job.param_grad = true;
  auto* dy = static_cast<const T*>(typed(info, 5, "dy", dt, numel(g), job));
  auto* x = static_cast<const T*>(typed(info, 6, "x", dt, numel(g), job));
  const double* mean = optional_f64(info, 7, "mean", groups(g), job);
  auto* invstd = static_cast<const double*>(typed(info, 8, "invstd", DType::f64, groups(g), job));
  auto* dw = static_cast<double*>(typed(info, 9, "dw", DType::f64, g.K, job));
  auto* db = static_cast<double*>(typed(info, 10, "db", DType::f64, g.K, job));
  job.run = [=](double* s) { table<T>().param_grad(dy, x, g, mean, invstd, dw, db, s, nt); };
}

// Segments per group at info[i] (undefined: 1): a positive integer dividing K.
int64_t segments_arg(const Args& info, size_t i, Shape4 g) {
  if (info[i].IsUndefined()) return 1;
  if (!info[i].IsNumber()) internal(info.Env(), "segments is not a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 1) || d != std::floor(d) || d > 9007199254740991.0 || g.K % static_cast<int64_t>(d) != 0)
    internal(info.Env(), "segments must be a positive integer dividing K");
  return static_cast<int64_t>(d);
}

// forwardTrain(P, A, B, K, threads, x, y, eps, gamma | null, beta | null, mean, m2, invstd[, segments, w | null,
// b | null, rms, relu, r | null]): gamma and beta have groups * segments entries; w, b length K (A == 1).
template <typename T>
void forward_train_job(const Args& info, Shape4 g, int nt, DType dt, Job& job) {
  auto* x = static_cast<const T*>(typed(info, 5, "x", dt, numel(g), job));
  auto* y = static_cast<T*>(typed(info, 6, "y", dt, numel(g), job));
  if (!info[7].IsNumber()) internal(info.Env(), "eps is not a number");
  const double eps = info[7].As<Napi::Number>().DoubleValue();
  job.segments = segments_arg(info, 13, g);
  const double* gamma = optional_f64(info, 8, "gamma", groups(g) * job.segments, job);
  const double* beta = optional_f64(info, 9, "beta", groups(g) * job.segments, job);
  auto* mean = static_cast<double*>(typed(info, 10, "mean", DType::f64, groups(g), job));
  auto* m2 = static_cast<double*>(typed(info, 11, "m2", DType::f64, groups(g), job));
  auto* invstd = static_cast<double*>(typed(info, 12, "invstd", DType::f64, groups(g), job));
  const AffineArgs<T> af{job.segments, gamma, beta, position_param<T>(info, 14, "w", g, dt, job),
                         position_param<T>(info, 15, "b", g, dt, job), flag_arg(info, 16)};
  if (job.segments > 1 && (af.w || af.b)) internal(info.Env(), "segments and position parameters exclude each other");
  ReluArgs<T> relu{};
  const bool fused = relu_arg(info, 17, g, dt, job, relu);
  job.run = [=](double* s) { table<T>().forward_train(x, y, g, af, eps, mean, m2, invstd, s, nt, fused ? &relu : nullptr); };
}

// backwardTrain(P, A, B, K, threads, dy, x, dx, mean, invstd, gamma | null, sumDy, sumDyXmu[, segments, w | null,
// dw | null, db | null, rms, relu, r | null, dr | null, beta | null, b | null]): gamma, sumDy, sumDyXmu, beta have
// groups * segments entries; w, dw, db, b length K (A == 1). beta and b (the forward's) are read only with relu.
template <typename T>
void backward_train_job(const Args& info, Shape4 g, int nt, DType dt, Job& job) {
  auto* dy = static_cast<const T*>(typed(info, 5, "dy", dt, numel(g), job));
  auto* x = static_cast<const T*>(typed(info, 6, "x", dt, numel(g), job));
  auto* dx = static_cast<T*>(typed(info, 7, "dx", dt, numel(g), job));
  job.segments = segments_arg(info, 13, g);
  const int64_t per_segment = groups(g) * job.segments;
  auto* mean = static_cast<const double*>(typed(info, 8, "mean", DType::f64, groups(g), job));
  auto* invstd = static_cast<const double*>(typed(info, 9, "invstd", DType::f64, groups(g), job));
  const double* gamma = optional_f64(info, 10, "gamma", per_segment, job);
  auto* sum_dy = static_cast<double*>(typed(info, 11, "sumDy", DType::f64, per_segment, job));
  auto* sum_dyx = static_cast<double*>(typed(info, 12, "sumDyXmu", DType::f64, per_segment, job));
  const T* w = position_param<T>(info, 14, "w", g, dt, job);
  double* dw = nullptr; double* db = nullptr;
  for (size_t i : {size_t(15), size_t(16)}) {
    if (info[i].IsNull() || info[i].IsUndefined()) continue;
    if (g.A != 1) internal(info.Env(), "position gradients need A == 1");
    (i == 15 ? dw : db) = static_cast<double*>(typed(info, i, i == 15 ? "dw" : "db", DType::f64, g.K, job));
  }
  job.param_grad = dw || db;
  if (job.segments > 1 && (w || job.param_grad)) internal(info.Env(), "segments and position parameters exclude each other");
  ReluArgs<T> relu{};
  const bool fused = relu_arg(info, 18, g, dt, job, relu);
  const double* beta = fused ? optional_f64(info, 21, "beta", per_segment, job) : nullptr;
  const T* b = fused ? position_param<T>(info, 22, "b", g, dt, job) : nullptr;
  if (fused) job.relu_scratch = relu_scratch_doubles(g, job.segments);
  const AffineArgs<T> af{job.segments, gamma, beta, w, b, flag_arg(info, 17)};
  job.run = [=](double* s) {
    table<T>().backward_train(dy, x, dx, g, af, mean, invstd, sum_dy, sum_dyx, dw, db, s, nt, fused ? &relu : nullptr);
  };
}

using JobBuilder = void (*)(const Args&, Shape4, int, DType, Job&);

// The dtype of the op is the dtype of its first tensor argument (info[5]); one switch, here.
template <JobBuilder F32, JobBuilder F64>
Job parse(const Args& info) {
  int nt = 1;
  const Shape4 g = shape_arg(info, &nt);
  Job job;
  job.first = typed_view(info, 5, "tensor", job);
  job.first_index = 5;
  job.arrays.clear();
  const DType dt = job.first.dtype;
  (dt == DType::f32 ? F32 : F64)(info, g, nt, dt, job);
  if (numel(g) == 0) job.run = [](double*) {};  // nothing to do; lib/ handles empty batches
  else if (job.segments > 0) job.scratch_doubles = kernels().fused_scratch_doubles(g, job.segments, job.param_grad);
  else job.scratch_doubles = kernels().scratch_doubles(g, job.param_grad);
  if (numel(g) != 0) job.scratch_doubles += job.relu_scratch;
  return job;
}

class JobWorker final : public Napi::AsyncWorker {
 public:
  JobWorker(Napi::Env env, Job job)
      : Napi::AsyncWorker(env, "normkit"), job_(std::move(job)), deferred_(Napi::Promise::Deferred::New(env)) {
    // Instead of copying the memory, hold references so it stays valid until the promise settles.
    for (napi_value v : job_.arrays) pinned_.push_back(Napi::Persistent(Napi::Value(env, v).As<Napi::Object>()));
    job_.arrays.clear();
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { job_(); }  // libuv pool: no Napi calls here
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Job job_;
  Napi::Promise::Deferred deferred_;
  std::vector<Napi::ObjectReference> pinned_;
};

// A raw N-API callback around Body (Args instead of CallbackInfo): a Napi::Error thrown inside becomes the
// JavaScript exception, as node-addon-api's own wrapper makes it.
template <Napi::Value (*Body)(const Args&)>
napi_value entry(napi_env env, napi_callback_info cb) {
  try {
    return Body(Args(env, cb));
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
}

void export_function(Napi::Env env, Napi::Object exports, const std::string& name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name.c_str(), name.size(), cb, nullptr, &fn) != napi_ok) internal(env, "cannot export " + name);
  exports.Set(name, Napi::Value(env, fn));
}

template <Job (*Parse)(const Args&)>
Napi::Value run_sync(const Args& info) {
  Job job = Parse(info);
  try {
    job();
  } catch (const std::bad_alloc&) {  // node-addon-api would otherwise let it reach std::terminate
    throw Napi::RangeError::New(info.Env(), "normkit: out of memory for " + std::to_string(job.scratch_doubles * 8) +
                                                " bytes of kernel scratch");
  }
  return info.Env().Undefined();
}

template <Job (*Parse)(const Args&)>
Napi::Value run_async(const Args& info) {
  auto* worker = new JobWorker(info.Env(), Parse(info));  // deletes itself after OnOK/OnError
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// A copy with non-temporal (streaming) stores: the bytes a kernel that streams its output moves — one read and one
// write, no read-for-ownership of the destination. glibc's memcpy streams only past a size threshold it picks
// itself, so both are measured. SSE2 is in the x86-64 baseline; elsewhere this is memcpy.
static void copy_streaming(char* d, const char* s, size_t n) {
#if defined(__SSE2__)
  size_t head = (16 - reinterpret_cast<uintptr_t>(d) % 16) % 16;
  if (head > n) head = n;
  std::memcpy(d, s, head);
  d += head; s += head; n -= head;
  const size_t body = n / 64 * 64;
  for (size_t i = 0; i < body; i += 64) {
    for (size_t j = 0; j < 64; j += 16) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + i + j), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i + j)));
    }
  }
  std::memcpy(d + body, s + body, n - body);
  _mm_sfence();
#else
  std::memcpy(d, s, n);
#endif
}

// copy(src, dst, threads, streaming = false): a copy split over threads — the memory roofline the benchmarks
// compare against; streaming: with non-temporal stores (copy_streaming).
Napi::Value Copy(const Args& info) {
  Job job;
  const View src = typed_view(info, 0, "src", job), dst = typed_view(info, 1, "dst", job);
  const size_t width = src.dtype == DType::f32 ? 4 : 8;
  if (src.dtype != dst.dtype || src.length != dst.length) internal(info.Env(), "copy: arrays differ");
  const int nt = info[2].IsNumber() ? clamp_threads(info[2].As<Napi::Number>().DoubleValue()) : 1;
  const bool streaming = info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  std::lock_guard<std::mutex> lock(kernel_mutex());
  const size_t bytes = static_cast<size_t>(src.length) * width;
  const auto* s = static_cast<const char*>(src.data);
  auto* d = static_cast<char*>(dst.data);
  // On as many threads as a kernel over as many elements would use (kernels.h kGrainElems).
  const int64_t most = src.length / kGrainElems;
  const int threads = nt <= 1 || most <= 1 ? 1 : most < nt ? static_cast<int>(most) : nt;
  if (threads == 1) {  // no parallel region: entering one costs about a microsecond even for one thread
    if (bytes > 0 && streaming) copy_streaming(d, s, bytes);
    else if (bytes > 0) std::memcpy(d, s, bytes);
    return info.Env().Undefined();
  }
  const size_t chunk = ((bytes + threads - 1) / threads + 63) / 64 * 64;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int t = 0; t < threads; ++t) {
    const size_t begin = static_cast<size_t>(t) * chunk;
    const size_t len = begin < bytes ? (bytes - begin < chunk ? bytes - begin : chunk) : 0;
    if (len && streaming) copy_streaming(d + begin, s + begin, len);
    else if (len) std::memcpy(d + begin, s + begin, len);
  }
  return info.Env().Undefined();
}

Napi::Value Info(const Args& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", kernels().isa);
  int count = 0;
  const char* const* names = supported_isas(&count);
  Napi::Array isas = Napi::Array::New(env, count);
  for (int i = 0; i < count; ++i) isas.Set(i, names[i]);
  o.Set("supportedIsas", isas);
  o.Set("openmp", true);
  o.Set("maxThreads", omp_get_max_threads());
  o.Set("processors", omp_get_num_procs());
  o.Set("grainElems", static_cast<double>(kGrainElems));
  return o;
}

// Exports an op as `name` (runs now) and `nameAsync` (a promise, on the libuv pool).
template <JobBuilder F32, JobBuilder F64>
void export_op(Napi::Env env, Napi::Object exports, const std::string& name) {
  export_function(env, exports, name, entry<run_sync<parse<F32, F64>>>);
  export_function(env, exports, name + "Async", entry<run_async<parse<F32, F64>>>);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  export_op<moments_job<float>, moments_job<double>>(env, exports, "moments");
  export_op<normalize_job<float>, normalize_job<double>>(env, exports, "normalize");
  export_op<backward_reduce_job<float>, backward_reduce_job<double>>(env, exports, "backwardReduce");
  export_op<backward_apply_job<float>, backward_apply_job<double>>(env, exports, "backwardApply");
  export_op<param_grad_job<float>, param_grad_job<double>>(env, exports, "paramGrad");
  export_op<forward_train_job<float>, forward_train_job<double>>(env, exports, "forwardTrain");
  export_op<backward_train_job<float>, backward_train_job<double>>(env, exports, "backwardTrain");
  export_function(env, exports, "copy", entry<Copy>);
  export_function(env, exports, "info", entry<Info>);
  return exports;
}

}  // namespace
}  // namespace normkit

static Napi::Object InitNormkit(Napi::Env env, Napi::Object exports) { return normkit::Init(env, exports); }
NODE_API_MODULE(normkit, InitNormkit)
