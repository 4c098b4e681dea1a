// normkit_mpi.node: the N-API face of the MPI thread. Loaded only by mpiWorld() (lib/distributed/mpi-binding.ts),
// so normkit.node never links libmpi. Arguments were checked in lib/distributed/mpi.ts; what could corrupt memory
// (typed-array kinds and lengths) is checked again here and reported as "normkit internal: ...".
//
// Sync forms post the collective to the MPI thread and block the JavaScript thread until it is done. Async forms
// pin the typed arrays (references, not copies), post it, and settle their promise through a thread-safe function.
#include <napi.h>

#include <string>
#include <utility>
#include <vector>

#include "collectives.h"
#include "mpi_thread.h"

namespace normkit::mpi {
namespace {

[[noreturn]] void internal(Napi::Env env, const std::string& what) {
  throw Napi::Error::New(env, "normkit internal: " + what);
}

struct Array {
  DType dtype = DType::none;
  void* data = nullptr;
  int64_t length = 0;
};

Array float_array(Napi::Env env, Napi::Value v, const char* name) {
  if (v.IsNull() || v.IsUndefined()) return {};
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok)
    internal(env, std::string(name) + " is not a typed array");
  if (type != napi_float32_array && type != napi_float64_array) internal(env, std::string(name) + " is not float32/float64");
  if (length > 0 && data == nullptr) internal(env, std::string(name) + " has no backing store");
  return {type == napi_float32_array ? DType::f32 : DType::f64, data, static_cast<int64_t>(length)};
}

Kind kind_arg(Napi::Env env, Napi::Value v) {
  const std::string k = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (k == "barrier") return Kind::barrier;
  if (k == "allGather") return Kind::all_gather;
  if (k == "allReduce") return Kind::all_reduce;
  if (k == "broadcast") return Kind::broadcast;
  internal(env, "unknown collective " + k);
}

// (kind, data, out, extra, valid) → a Call whose pointers and lengths agree with each other.
Call parse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const WorldInfo& world = start_world();
  if (!world.error.empty()) throw Napi::Error::New(env, "mpiWorld: " + world.error);
  Call c;
  c.kind = kind_arg(env, info[0]);
  c.valid = info[4].ToBoolean();
  c.extra = info[3].IsNumber() ? info[3].As<Napi::Number>().Int64Value() : 0;
  if (!c.valid) return c;  // only the header travels
  const Array data = float_array(env, info[1], "data"), out = float_array(env, info[2], "out");
  c.dtype = data.dtype;
  c.data = data.data;
  c.length = data.length;
  switch (c.kind) {
    case Kind::barrier:
    case Kind::close:
      c.dtype = DType::none;
      c.length = 0;
      break;
    case Kind::all_gather:
      if (data.dtype != DType::f64 || out.dtype != DType::f64 || out.length != data.length * world.size)
        internal(env, "allGather needs Float64Arrays of length n and size × n");
      if (data.length > 0x7fffffff) internal(env, "allGather length above 2^31 - 1");
      c.out = static_cast<double*>(out.data);
      break;
    case Kind::all_reduce:
      if (data.dtype == DType::none || (c.extra != 0 && c.extra != 1)) internal(env, "bad allReduce arguments");
      break;
    case Kind::broadcast:
      if (data.dtype == DType::none || c.extra < 0 || c.extra >= world.size) internal(env, "bad broadcast arguments");
      break;
  }
  return c;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const WorldInfo& world = start_world();
  if (!world.error.empty()) throw Napi::Error::New(env, "mpiWorld: " + world.error);
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", world.rank);
  o.Set("size", world.size);
  o.Set("library", world.library);
  return o;
}

Napi::Value Collective(const Napi::CallbackInfo& info) {
  const Call c = parse(info);
  const int rank = start_world().rank, size = start_world().size;
  std::string error;
  if (!run_and_wait([&] { error = run_collective(c, rank, size); }))
    throw Napi::Error::New(info.Env(), "mpiWorld: " + start_world().error);
  if (!error.empty()) throw Napi::Error::New(info.Env(), error);
  return info.Env().Undefined();
}

// One async collective: its promise and the arrays it must keep alive until it settles.
struct Pending {
  Napi::Promise::Deferred deferred;
  std::vector<Napi::ObjectReference> pinned;
  std::string error;
};

void settle(Napi::Env env, Napi::Function, std::nullptr_t*, Pending* p) {
  if (env == nullptr) return;  // the environment is gone: nothing left to settle (or to release the references in)
  if (p->error.empty()) p->deferred.Resolve(env.Undefined());
  else p->deferred.Reject(Napi::Error::New(env, p->error).Value());
  delete p;
}

using Settler = Napi::TypedThreadSafeFunction<std::nullptr_t, Pending, settle>;

Napi::Value CollectiveAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Call c = parse(info);
  const int rank = start_world().rank, size = start_world().size;
  auto* p = new Pending{Napi::Promise::Deferred::New(env), {}, {}};
  Napi::Promise promise = p->deferred.Promise();
  for (size_t i = 1; i <= 2; ++i)
    if (info[i].IsObject()) p->pinned.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
  // The thread-safe function also keeps the event loop alive until the collective is done.
  Settler settler = Settler::New(env, "normkit-mpi", 0, 1);
  if (!post([c, p, settler, rank, size]() mutable {
        p->error = run_collective(c, rank, size);
        mpi_calls_done();
        settler.BlockingCall(p);
        settler.Release();
      })) {
    settler.Release();
    delete p;
    throw Napi::Error::New(env, "mpiWorld: " + start_world().error);
  }
  return promise;
}

// The close header exchange: "" when every rank is closing (or exiting cleanly), else why not.
std::string exchange_close() {
  const int rank = start_world().rank, size = start_world().size;
  Call c;
  c.kind = Kind::close;
  std::string error = "mpiWorld: MPI is no longer running";
  run_and_wait([&] { error = run_collective(c, rank, size); });
  return error;
}

// Every rank calls close(): the header exchange checks that, then MPI_Finalize (collective too).
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!world_active()) return env.Undefined();
  const std::string error = exchange_close();
  if (!error.empty()) throw Napi::Error::New(env, error);
  finalize_world();
  return env.Undefined();
}

// The 'exit' listener lib/ installs. A clean exit (code 0, nothing in flight) is an implicit close(): when every
// other rank closes or exits too, MPI is finalized; when another rank is waiting in a collective instead, the close
// header does not match its call, it throws, and this rank aborts the job (MPI_Finalize would wait forever).
// Any other exit — a non-zero code, a collective left in flight — aborts the job at once.
Napi::Value Exit(const Napi::CallbackInfo& info) {
  const int code = info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  if (!world_active()) return info.Env().Undefined();
  if (code != 0 || !world_idle()) {
    abort_world(code != 0 ? code : 1);
    return info.Env().Undefined();
  }
  if (exchange_close().empty()) finalize_world();
  else abort_world(1);
  return info.Env().Undefined();
}

Napi::Object Module(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("collective", Napi::Function::New(env, Collective, "collective"));
  exports.Set("collectiveAsync", Napi::Function::New(env, CollectiveAsync, "collectiveAsync"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("exit", Napi::Function::New(env, Exit, "exit"));
  return exports;
}

}  // namespace
}  // namespace normkit::mpi

static Napi::Object InitNormkitMpi(Napi::Env env, Napi::Object exports) { return normkit::mpi::Module(env, exports); }
NODE_API_MODULE(normkit_mpi, InitNormkitMpi)
