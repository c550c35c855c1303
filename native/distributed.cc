// ddpm-ts native shim, part two: torch.distributed's c10d (a rendezvous store and a process group)
// through Node-API, as thinly as addon.cc: each entry point reads its arguments, makes one c10d call
// and wraps the result. TypeScript (src/distributed/) validates arguments, chooses the backend and
// the network device, and turns failures into messages naming the rank; nothing here decides.
//
// Collectives block the calling thread until c10d's Work completes (Work::wait), as a synchronous
// torch.distributed call does: the trainer is a loop of steps, and a step cannot go on before its
// gradients are averaged. A peer that dies makes Work::wait throw (Gloo sees the connection close,
// or the process group's timeout passes); the error becomes a JS Error like any libtorch error.
//
// Handles (native/handles.h): a store and a process group each cross as a type-tagged
// Napi::External, so a JS value that is not one (a tensor handle, a plain object) is refused with an
// Error, never dereferenced. Each is released one way, release(), by distDestroy or by the External's
// finalizer.

#include "distributed.h"
#include "handles.h"

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

// Gloo's headers ship with libgloo-dev on Debian and inside pip torch's include folder.
#if __has_include(<gloo/context.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(DDPM_TORCH_CUDA) && __has_include(<nccl.h>) && !defined(USE_C10D_NCCL)
#define USE_C10D_NCCL
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace {

struct StoreHolder {
  c10::intrusive_ptr<c10d::Store> store;
};
// The three collectives of a concrete process group. In libtorch 1.13 ProcessGroupGloo and
// ProcessGroupNCCL derive from c10d::ProcessGroup; from 2.0 on they derive from c10d::Backend, with
// the same collective signatures. Holding the concrete class builds against both.
struct Group {
  virtual ~Group() = default;
  virtual void allreduce(std::vector<at::Tensor>& ts, const c10d::AllreduceOptions& o) = 0;
  virtual void broadcast(std::vector<at::Tensor>& ts, const c10d::BroadcastOptions& o) = 0;
  virtual void barrier() = 0;
};
template <typename PG>
struct GroupOf : Group {
  c10::intrusive_ptr<PG> pg;
  explicit GroupOf(c10::intrusive_ptr<PG> p) : pg(std::move(p)) {}
  void allreduce(std::vector<at::Tensor>& ts, const c10d::AllreduceOptions& o) override { pg->allreduce(ts, o)->wait(); }
  void broadcast(std::vector<at::Tensor>& ts, const c10d::BroadcastOptions& o) override { pg->broadcast(ts, o)->wait(); }
  void barrier() override { pg->barrier()->wait(); }
};

struct GroupHolder {
  std::shared_ptr<Group> pg;
};

}  // namespace
template <>
const HandleKind HandleOf<StoreHolder>::kind{"store", {0x6c1d0e7a51f94b3bULL, 0x9d2a44c0e8b37f15ULL}};
template <>
const HandleKind HandleOf<GroupHolder>::kind{"process group", {0x2f8b61c4a7e05d92ULL, 0xb4e13a9c7d5f6028ULL}};
namespace {

void release(StoreHolder* h) { h->store.reset(); }
void release(GroupHolder* h) { h->pg.reset(); }

template <typename H>
Napi::Value wrapHandle(Napi::Env env, H* h) {
  return makeHandle(env, h, [](Napi::BasicEnv, H* p) {
    release(p);
    delete p;
  });
}

// The entry point's name, for messages: set by the one wrapper in registerDistributed.
thread_local const char* g_op = "dist";

std::string argName(size_t i) { return "argument " + std::to_string(i); }

template <typename H>
H* handle(const Napi::CallbackInfo& info, size_t i) {
  return unwrapHandle<H>(i < info.Length() ? info[i] : info.Env().Undefined(), g_op, argName(i));
}

c10d::Store& storeArg(const Napi::CallbackInfo& info, size_t i) {
  auto* h = handle<StoreHolder>(info, i);
  if (!h->store) throw Napi::Error::New(info.Env(), "the store was destroyed and cannot be used");
  return *h->store;
}
Group& groupArg(const Napi::CallbackInfo& info, size_t i) {
  auto* h = handle<GroupHolder>(info, i);
  if (!h->pg) throw Napi::Error::New(info.Env(), "the process group was destroyed and cannot be used");
  return *h->pg;
}

// Readers: a value of the wrong type makes Node-API fail, which node-addon-api throws as an Error
// that the one wrapper below prefixes with the entry point's name.
// An integer in [lo, hi]: what src/distributed/ already checked; here so a stray value never reaches c10d.
int64_t Int(const Napi::CallbackInfo& info, size_t i, int64_t lo, int64_t hi) {
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi) && d == static_cast<double>(static_cast<int64_t>(d)))) {
    throw Napi::TypeError::New(info.Env(), argName(i) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return static_cast<int64_t>(d);
}
std::string Str(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::String>().Utf8Value(); }
std::chrono::milliseconds Ms(const Napi::CallbackInfo& info, size_t i) { return std::chrono::milliseconds(Int(info, i, 1, INT32_MAX)); }
std::vector<std::string> Keys(const Napi::CallbackInfo& info, size_t i) {
  auto arr = info[i].As<Napi::Array>();
  std::vector<std::string> v;
  for (uint32_t k = 0; k < arr.Length(); k++) v.push_back(arr.Get(k).As<Napi::String>().Utf8Value());
  return v;
}

TensorOf g_tensorOf = nullptr;
WrapTensor g_wrap = nullptr;
std::vector<at::Tensor> Tensors(const Napi::CallbackInfo& info, size_t i) {
  auto arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> v;
  for (uint32_t k = 0; k < arr.Length(); k++) v.push_back(g_tensorOf(arr.Get(k), g_op, argName(i) + "[" + std::to_string(k) + "]"));
  return v;
}

// ---------------------------------------------------------------- the store
// distStore(host, port, isServer, worldSize, timeoutMs): rank 0 serves (torchrun's MASTER_ADDR:MASTER_PORT),
// the others connect; the constructor returns once all worldSize members have joined or throws at the timeout.
Napi::Value distStore(const Napi::CallbackInfo& info) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(Int(info, 1, 1, 65535));
  o.isServer = info[2].As<Napi::Boolean>().Value();
  o.numWorkers = static_cast<std::size_t>(Int(info, 3, 1, INT32_MAX));
  o.waitWorkers = true;
  o.timeout = Ms(info, 4);
  return wrapHandle(info.Env(), new StoreHolder{c10::make_intrusive<c10d::TCPStore>(Str(info, 0), o)});
}
Napi::Value distStoreSet(const Napi::CallbackInfo& info) {
  auto s = Str(info, 2);
  storeArg(info, 0).set(Str(info, 1), std::vector<uint8_t>(s.begin(), s.end()));
  return info.Env().Undefined();
}
// Blocks until the key exists (or the store's timeout passes, then throws).
Napi::Value distStoreGet(const Napi::CallbackInfo& info) {
  auto v = storeArg(info, 0).get(Str(info, 1));
  return Napi::String::New(info.Env(), std::string(v.begin(), v.end()));
}
Napi::Value distStoreWait(const Napi::CallbackInfo& info) {
  storeArg(info, 0).wait(Keys(info, 1), Ms(info, 2));
  return info.Env().Undefined();
}
Napi::Value distStoreCheck(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), storeArg(info, 0).check(Keys(info, 1)));
}

// ---------------------------------------------------------------- the process group
// distProcessGroup(store, rank, worldSize, backend, timeoutMs, deviceHost): backend "gloo" binds
// Gloo's TCP transport to deviceHost's address ("" lets Gloo pick from the machine's hostname);
// "nccl" needs a libtorch built with it.
Napi::Value distProcessGroup(const Napi::CallbackInfo& info) {
  auto* sh = handle<StoreHolder>(info, 0);
  if (!sh->store) throw Napi::Error::New(info.Env(), "the store was destroyed and cannot be used");
  int size = static_cast<int>(Int(info, 2, 1, INT32_MAX));
  int rank = static_cast<int>(Int(info, 1, 0, size - 1));
  std::string backend = Str(info, 3);
  auto timeout = Ms(info, 4);
  std::string host = Str(info, 5);
  std::shared_ptr<Group> pg;
  if (backend == "gloo") {
#ifdef USE_C10D_GLOO
    auto o = c10d::ProcessGroupGloo::Options::create(timeout);
    o->devices.push_back(host.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                      : c10d::ProcessGroupGloo::createDeviceForHostname(host));
    pg = std::make_shared<GroupOf<c10d::ProcessGroupGloo>>(c10::make_intrusive<c10d::ProcessGroupGloo>(sh->store, rank, size, o));
#else
    throw Napi::Error::New(info.Env(), "this libtorch was built without Gloo");
#endif
  } else if (backend == "nccl") {
#ifdef USE_C10D_NCCL
    auto o = c10d::ProcessGroupNCCL::Options::create();
    o->timeout = timeout;
    pg = std::make_shared<GroupOf<c10d::ProcessGroupNCCL>>(c10::make_intrusive<c10d::ProcessGroupNCCL>(sh->store, rank, size, o));
#else
    throw Napi::Error::New(info.Env(), "this libtorch was built without NCCL (it needs a CUDA build of libtorch)");
#endif
  } else {
    throw Napi::Error::New(info.Env(), "unknown backend " + backend);
  }
  return wrapHandle(info.Env(), new GroupHolder{pg});
}
Napi::Value distBackends(const Napi::CallbackInfo& info) {
  auto arr = Napi::Array::New(info.Env());
  uint32_t n = 0;
#ifdef USE_C10D_GLOO
  arr.Set(n++, "gloo");
#endif
#ifdef USE_C10D_NCCL
  arr.Set(n++, "nccl");
#endif
  return arr;
}

// ---------------------------------------------------------------- collectives (in place, blocking)
// distAllReduce(pg, tensors, op): op is c10d::ReduceOp's code (0 SUM, 4 MAX: src/distributed/native.ts).
Napi::Value distAllReduce(const Napi::CallbackInfo& info) {
  auto ts = Tensors(info, 1);
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp(static_cast<c10d::ReduceOp::RedOpType>(Int(info, 2, 0, 4)));
  groupArg(info, 0).allreduce(ts, o);
  return info.Env().Undefined();
}
// The backward of a differentiable allreduce-sum: y = sum over ranks of x, so every rank's dL/dx is
// the sum over ranks of dL/dy (torch.distributed.nn.functional.all_reduce). Each rank runs it in its
// own backward pass, at the same point of the same graph, so the collectives pair up. The node
// holds the process group, so the group lives as long as a graph that needs it.
struct AllReduceSumBackward : torch::autograd::Node {
  std::shared_ptr<Group> pg;
  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    std::vector<at::Tensor> g{grads[0].contiguous().clone()};
    pg->allreduce(g, c10d::AllreduceOptions());
    return {g[0]};
  }
};
// distAllReduceGrad(pg, x): a new tensor holding the sum of x over the ranks, differentiable (SyncBatchNorm's statistics).
Napi::Value distAllReduceGrad(const Napi::CallbackInfo& info) {
  auto* h = handle<GroupHolder>(info, 0);
  if (!h->pg) throw Napi::Error::New(info.Env(), "the process group was destroyed and cannot be used");
  const at::Tensor& x = g_tensorOf(info[1], g_op, argName(1));
  std::vector<at::Tensor> y{x.detach().contiguous().clone()};
  h->pg->allreduce(y, c10d::AllreduceOptions());
  if (x.requires_grad()) {
    auto node = std::shared_ptr<AllReduceSumBackward>(new AllReduceSumBackward(), torch::autograd::deleteNode);
    node->pg = h->pg;
    node->set_next_edges(torch::autograd::collect_next_edges(x));
    torch::autograd::set_history(y[0], node);
  }
  return g_wrap(info.Env(), y[0]);
}
Napi::Value distBroadcast(const Napi::CallbackInfo& info) {
  auto ts = Tensors(info, 1);
  c10d::BroadcastOptions o;
  o.rootRank = Int(info, 2, 0, INT32_MAX);
  groupArg(info, 0).broadcast(ts, o);
  return info.Env().Undefined();
}
Napi::Value distBarrier(const Napi::CallbackInfo& info) {
  groupArg(info, 0).barrier();
  return info.Env().Undefined();
}
// distDestroy(handle): a store or a process group; a second destroy does nothing.
Napi::Value distDestroy(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsExternal()) {
    auto ext = info[0].As<Napi::External<void>>();
    if (ext.CheckTypeTag(&HandleOf<GroupHolder>::kind.tag)) release(static_cast<GroupHolder*>(ext.Data()));
    else if (ext.CheckTypeTag(&HandleOf<StoreHolder>::kind.tag)) release(static_cast<StoreHolder*>(ext.Data()));
    else throw Napi::TypeError::New(info.Env(), "distDestroy: argument 0 must be a store or process group handle made by ddpm-ts, got " + describeValue(info[0]));
  } else {
    throw Napi::TypeError::New(info.Env(), "distDestroy: argument 0 must be a store or process group handle made by ddpm-ts, got " + describeValue(info.Length() > 0 ? info[0] : info.Env().Undefined()));
  }
  return info.Env().Undefined();
}

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);

}  // namespace

void registerDistributed(Napi::Env env, Napi::Object exports, TensorOf tensorOf, WrapTensor wrap) {
  g_tensorOf = tensorOf;
  g_wrap = wrap;
  const std::pair<const char*, Fn> fns[] = {
      {"distStore", distStore},           {"distStoreSet", distStoreSet},   {"distStoreGet", distStoreGet},
      {"distStoreWait", distStoreWait},   {"distStoreCheck", distStoreCheck},
      {"distProcessGroup", distProcessGroup}, {"distBackends", distBackends},
      {"distAllReduce", distAllReduce},   {"distAllReduceGrad", distAllReduceGrad},   {"distBroadcast", distBroadcast}, {"distBarrier", distBarrier},
      {"distDestroy", distDestroy},
  };
  for (const auto& [name, fn] : fns) {
    // The one error path: a c10d or libtorch exception becomes a JS Error prefixed with the entry point's name.
    exports.Set(name, Napi::Function::New(
                          env,
                          [fn = fn, name = name](const Napi::CallbackInfo& info) -> Napi::Value {
                            g_op = name;
                            try {
                              return fn(info);
                            } catch (const Napi::Error& e) {
                              const std::string prefix = std::string(name) + ": ";
                              if (e.Message().rfind(prefix, 0) == 0) throw;
                              throw Napi::Error::New(info.Env(), prefix + e.Message());
                            } catch (const c10::Error& e) {
                              throw Napi::Error::New(info.Env(), std::string(name) + ": " + e.what_without_backtrace());
                            } catch (const std::exception& e) {
                              throw Napi::Error::New(info.Env(), std::string(name) + ": " + e.what());
                            }
                          },
                          name));
  }
}
