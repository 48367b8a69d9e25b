// The addon's `collectives` object (native_collectives.h). Each blocking collective is a CollectiveJob on
// the libuv pool. Collectives must be issued in the same order on every rank, and JS may start several
// before awaiting any, so jobs take a ticket when called (on the JS thread) and run strictly in ticket
// order: the order of the calls, whichever pool thread picks them up.
#include "native_collectives.h"

#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "collectives.h"
#include "errors.h"
#include "js_convert.h"

namespace hayate::js {

namespace {

namespace coll = hayate::collectives;

// Ticket order across every JS thread of the process (collectives are process-wide).
std::mutex g_issue_mutex;  // makes "take a ticket, queue the job" one step, so the pool's FIFO order is ticket order
std::mutex g_turn_mutex;
std::condition_variable g_turn_cv;
uint64_t g_next_ticket = 0;  // guarded by g_issue_mutex
uint64_t g_serving = 0;      // guarded by g_turn_mutex

class CollectiveJob : public Napi::AsyncWorker {
 public:
  // `keep` is held until the job ends (the typed array a collective works on in place); `result` builds the
  // resolved value on the JS thread.
  CollectiveJob(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> result, Napi::Value keep)
      : Napi::AsyncWorker(env, "hayate.collectives"),
        deferred_(Napi::Promise::Deferred::New(env)),
        run_(std::move(run)),
        result_(std::move(result)) {
    if (!keep.IsEmpty() && keep.IsObject()) keep_ = Napi::Persistent(keep.As<Napi::Object>());
  }

  static Napi::Promise start(Napi::Env env, std::function<void()> run, std::function<Napi::Value(Napi::Env)> result,
                             Napi::Value keep = Napi::Value()) {
    auto* job = new CollectiveJob(env, std::move(run), std::move(result), keep);
    Napi::Promise p = job->deferred_.Promise();
    std::lock_guard<std::mutex> lock(g_issue_mutex);
    job->ticket_ = g_next_ticket;
    job->Queue();
    ++g_next_ticket;  // only once queued: a ticket that never runs would stall every later one
    return p;
  }

 protected:
  void Execute() override {
    {
      std::unique_lock<std::mutex> lock(g_turn_mutex);
      g_turn_cv.wait(lock, [&] { return g_serving == ticket_; });
    }
    try {
      run_();
    } catch (const hayate::Error& e) {
      code_ = error_code_name(e.code());
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "ERR_OUT_OF_MEMORY";
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "ERR_INTERNAL";
      SetError(std::string("internal error: ") + e.what());
    }
    {
      std::lock_guard<std::mutex> lock(g_turn_mutex);
      ++g_serving;
    }
    g_turn_cv.notify_all();
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(make_error(Env(), code_.c_str(), e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> run_;
  std::function<Napi::Value(Napi::Env)> result_;
  Napi::ObjectReference keep_;
  uint64_t ticket_ = 0;
  std::string code_ = "ERR_INTERNAL";
};

[[noreturn]] void type_error(Napi::Env env, const std::string& message) {
  Napi::TypeError e = Napi::TypeError::New(env, message);
  e.Set("code", Napi::String::New(env, "ERR_INVALID_ARGUMENT"));
  throw e;
}

Napi::Object world_to_js(Napi::Env env, const coll::WorldInfo& w) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", w.rank);
  o.Set("size", w.size);
  o.Set("localRank", w.local_rank);
  o.Set("localSize", w.local_size);
  o.Set("mpi", w.mpi);
  return o;
}

Napi::Value BuiltWithMpi(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), coll::built_with_mpi()); }

Napi::Value LauncherWorldSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), coll::launcher_world_size());
}

// Synchronous: MPI_Init is part of start-up, and the TS side needs the world before anything else.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return world_to_js(env, guarded(env, [] { return coll::init(); }));
}

Napi::Value World(const Napi::CallbackInfo& info) { return world_to_js(info.Env(), coll::world()); }

// allReduceSum(Float64Array | Float32Array): sums over the ranks in place; resolves to the same array. The
// array must not be touched (nor its buffer transferred) until then.
Napi::Value AllReduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value v = info[0];
  if (!v.IsTypedArray()) type_error(env, "allReduceSum: data must be a Float64Array or a Float32Array");
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  size_t n = t.ElementLength();
  std::function<void()> run;
  if (t.TypedArrayType() == napi_float64_array) {
    double* p = t.As<Napi::Float64Array>().Data();
    run = [p, n] { coll::allreduce_sum(p, n); };
  } else if (t.TypedArrayType() == napi_float32_array) {
    float* p = t.As<Napi::Float32Array>().Data();
    run = [p, n] { coll::allreduce_sum(p, n); };
  } else {
    type_error(env, "allReduceSum: data must be a Float64Array or a Float32Array");
  }
  auto ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(v.As<Napi::Object>()));
  return CollectiveJob::start(env, std::move(run), [ref](Napi::Env) { return ref->Value(); });
}

// broadcast(Uint8Array, root): root's bytes into every rank's array (same length on every rank, in place);
// resolves to the same array.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Value v = info[0];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    type_error(env, "broadcast: data must be a Uint8Array");
  int size = coll::world().size;
  int root = static_cast<int>(get_int(info[1], "broadcast: root", 0, size - 1));
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  uint8_t* p = a.Data();
  size_t bytes = a.ByteLength();
  auto ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(v.As<Napi::Object>()));
  return CollectiveJob::start(env, [p, bytes, root] { coll::broadcast(p, bytes, root); },
                              [ref](Napi::Env) { return ref->Value(); });
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  return CollectiveJob::start(info.Env(), [] { coll::barrier(); }, nullptr);
}

// allGather(string): every rank's string, in rank order.
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto mine = std::make_shared<std::string>(get_string(info[0], "allGather: value"));
  auto all = std::make_shared<std::vector<std::string>>();
  return CollectiveJob::start(
      env, [mine, all] { *all = coll::allgather(*mine); },
      [all](Napi::Env env) -> Napi::Value {
        Napi::Array out = Napi::Array::New(env, all->size());
        for (size_t i = 0; i < all->size(); ++i) out.Set(static_cast<uint32_t>(i), Napi::String::New(env, (*all)[i]));
        return out;
      });
}

// abort(code, message?): prints the message (a line) to stderr, then ends every process of the job.
Napi::Value Abort(const Napi::CallbackInfo& info) {
  int code = static_cast<int>(get_int(info[0], "abort: code", 0, 255));
  std::string message;
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) message = get_string(info[1], "abort: message");
  if (!message.empty()) {
    if (message.back() != '\n') message += '\n';
    std::fputs(message.c_str(), stderr);
  }
  coll::abort_job(code);
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  guarded(env, [] { coll::finalize(); });
  return env.Undefined();
}

}  // namespace

void register_collectives(Napi::Env env, Napi::Object exports) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("builtWithMpi", Napi::Function::New(env, BuiltWithMpi, "builtWithMpi"));
  c.Set("launcherWorldSize", Napi::Function::New(env, LauncherWorldSize, "launcherWorldSize"));
  c.Set("init", Napi::Function::New(env, Init, "init"));
  c.Set("world", Napi::Function::New(env, World, "world"));
  c.Set("allReduceSum", Napi::Function::New(env, AllReduceSum, "allReduceSum"));
  c.Set("broadcast", Napi::Function::New(env, Broadcast, "broadcast"));
  c.Set("barrier", Napi::Function::New(env, Barrier, "barrier"));
  c.Set("allGather", Napi::Function::New(env, AllGather, "allGather"));
  c.Set("abort", Napi::Function::New(env, Abort, "abort"));
  c.Set("finalize", Napi::Function::New(env, Finalize, "finalize"));
  exports.Set("collectives", c);
}

}  // namespace hayate::js
