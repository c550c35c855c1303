// ddpm-ts native shim: libtorch through Node-API.
//
// Each entry point reads its arguments into plain C++ values, makes one libtorch call and wraps the
// result. Argument checking with good messages happens in TypeScript (src/tensor/); what reaches
// here is trusted to be well-typed, and any libtorch exception becomes a JS Error carrying the
// op's name and libtorch's message. No logic lives here that could live in TypeScript.
//
// Handles: every tensor crosses as a Napi::External<Holder>. A Holder is released exactly one way,
// release(), called by dispose() or, if JS never disposed it, by the External's finalizer.

#include <napi.h>

#include "cpu-allocator.h"
#include "distributed.h"
#include "handles.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/Generator.h>
#include <c10/core/InferenceMode.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/version.h>

#include <dlfcn.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <atomic>
#include <memory>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::atomic<int64_t> g_live{0};

struct Holder {
  at::Tensor t;
};

struct GenHolder {
  at::Generator g;
};

}  // namespace

template <>
const HandleKind HandleOf<Holder>::kind{"tensor", {0x6464706d74732d74ULL, 0x656e736f72a1b2c3ULL}};
template <>
const HandleKind HandleOf<GenHolder>::kind{"generator", {0x6464706d74732d67ULL, 0x656e657261d4e5f6ULL}};

namespace {

// The one release path of a tensor handle.
void release(Holder* h) {
  if (h->t.defined()) {
    h->t = at::Tensor();
    g_live--;
  }
}

Napi::Value wrap(Napi::Env env, at::Tensor t) {
  auto* h = new Holder{std::move(t)};
  g_live++;
  // A basic (GC-time) finalizer: it touches no JS, so Node runs it during garbage collection
  // instead of deferring it to a later event-loop turn (which let handles pile up in tight loops).
  return makeHandle(env, h, [](Napi::BasicEnv, Holder* p) {
    release(p);
    delete p;
  });
}

Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  auto arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) arr.Set(i, wrap(env, ts[i]));
  return arr;
}

// Argument readers. TypeScript has validated types and ranges; these convert, and refuse a wrong
// type with a TypeError (the one error path is rethrow below) instead of reading it as another.
struct Args {
  const Napi::CallbackInfo& info;
  const char* op;
  Args(const Napi::CallbackInfo& i, const char* name) : info(i), op(name) {}
  Napi::Env env() const { return info.Env(); }
  bool absent(size_t i) const { return i >= info.Length() || info[i].IsNull() || info[i].IsUndefined(); }
  static std::string argName(size_t i) { return "argument " + std::to_string(i); }
  [[noreturn]] void wrongType(const Napi::Value& v, const std::string& where, const char* expected) const {
    throw Napi::TypeError::New(env(), std::string(op) + ": " + where + " must be " + expected + ", got " + describeValue(v));
  }
  Napi::Value need(size_t i, bool ok, const char* expected) const {
    if (!ok) wrongType(info[i], argName(i), expected);
    return info[i];
  }
  at::Tensor& tensorOf(const Napi::Value& v, const std::string& where) const {
    Holder* h = unwrapHandle<Holder>(v, op, where);
    if (!h->t.defined()) throw Napi::Error::New(env(), std::string(op) + ": " + where + " is a tensor that was disposed and cannot be used");
    return h->t;
  }
  at::Tensor& T(size_t i) const { return tensorOf(info[i], argName(i)); }
  c10::optional<at::Tensor> OT(size_t i) const {
    if (absent(i)) return c10::nullopt;
    return T(i);
  }
  double D(size_t i) const { return need(i, info[i].IsNumber(), "a number").As<Napi::Number>().DoubleValue(); }
  int64_t I(size_t i) const { return need(i, info[i].IsNumber(), "an integer").As<Napi::Number>().Int64Value(); }
  bool B(size_t i) const { return need(i, info[i].IsBoolean(), "a boolean").As<Napi::Boolean>().Value(); }
  std::string Str(size_t i) const { return need(i, info[i].IsString(), "a string").As<Napi::String>().Utf8Value(); }
  std::vector<int64_t> V(size_t i) const {
    auto arr = need(i, info[i].IsArray(), "an array of integers").As<Napi::Array>();
    std::vector<int64_t> v(arr.Length());
    for (uint32_t k = 0; k < arr.Length(); k++) {
      Napi::Value e = arr.Get(k);
      if (!e.IsNumber()) wrongType(e, argName(i) + "[" + std::to_string(k) + "]", "an integer");
      v[k] = e.As<Napi::Number>().Int64Value();
    }
    return v;
  }
  c10::optional<std::vector<int64_t>> OV(size_t i) const {
    if (absent(i)) return c10::nullopt;
    return V(i);
  }
  std::vector<at::Tensor> TL(size_t i) const {
    auto arr = need(i, info[i].IsArray(), "an array of tensor handles").As<Napi::Array>();
    std::vector<at::Tensor> v;
    v.reserve(arr.Length());
    for (uint32_t k = 0; k < arr.Length(); k++) v.push_back(tensorOf(arr.Get(k), argName(i) + "[" + std::to_string(k) + "]"));
    return v;
  }
  // A JS number is an integer Scalar when it is integral, as a Python int would be.
  at::Scalar S(size_t i) const {
    double d = D(i);
    if (std::isfinite(d) && d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9.007199254740992e15) {
      return at::Scalar(static_cast<int64_t>(d));
    }
    return at::Scalar(d);
  }
  c10::optional<at::Scalar> OS(size_t i) const {
    if (absent(i)) return c10::nullopt;
    return S(i);
  }
  // A code outside the enum would index libtorch's tables out of bounds.
  at::ScalarType dtype(size_t i) const {
    int64_t code = I(i);
    if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) {
      throw Napi::RangeError::New(env(), std::string(op) + ": " + argName(i) + " is dtype code " + std::to_string(code) + ", not a libtorch ScalarType");
    }
    return static_cast<at::ScalarType>(code);
  }
  at::Device device(size_t i) const { return absent(i) ? at::Device(at::kCPU) : at::Device(Str(i)); }
  at::TensorOptions opts(size_t dt, size_t dev) const { return at::TensorOptions().dtype(dtype(dt)).device(device(dev)); }
  at::Generator& gen(size_t i) const { return unwrapHandle<GenHolder>(info[i], op, argName(i))->g; }
  c10::optional<at::Generator> G(size_t i) const {
    if (absent(i)) return c10::nullopt;
    return gen(i);
  }
};

[[noreturn]] void rethrow(Napi::Env env, const char* op) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, std::string(op) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(op) + ": " + e.what());
  }
}

using OpFn = Napi::Value (*)(const Args&);
struct OpEntry {
  const char* name;
  OpFn fn;
};
std::vector<OpEntry>& registry() {
  static std::vector<OpEntry> r;
  return r;
}
struct Register {
  Register(const char* name, OpFn fn) { registry().push_back({name, fn}); }
};

// OP(name) { body using `a` (Args) returning a Napi::Value }. The op's name prefixes its errors.
#define OP(NAME)                                               \
  Napi::Value op_##NAME(const Args& a);                        \
  Register reg_##NAME(#NAME, op_##NAME);                       \
  Napi::Value op_##NAME(const Args& a)

#define W(expr) wrap(a.env(), (expr))
#define UNARY(NAME, EXPR) OP(NAME) { const at::Tensor& x = a.T(0); return W(EXPR); }
#define BINARY(NAME, EXPR) OP(NAME) { const at::Tensor& x = a.T(0); const at::Tensor& y = a.T(1); return W(EXPR); }
#define WITH_SCALAR(NAME, EXPR) OP(NAME) { const at::Tensor& x = a.T(0); at::Scalar s = a.S(1); return W(EXPR); }

// ---------------------------------------------------------------- handles, metadata, memory
// Disposing twice is allowed (a no-op); disposing what is not a tensor handle is refused.
OP(dispose) {
  release(unwrapHandle<Holder>(a.info[0], a.op, Args::argName(0)));
  return a.env().Undefined();
}
OP(liveCount) { return Napi::Number::New(a.env(), static_cast<double>(g_live.load())); }
OP(isDisposed) { return Napi::Boolean::New(a.env(), !unwrapHandle<Holder>(a.info[0], a.op, Args::argName(0))->t.defined()); }
OP(shape) {
  auto sizes = a.T(0).sizes();
  auto arr = Napi::Array::New(a.env(), sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) arr.Set(i, Napi::Number::New(a.env(), static_cast<double>(sizes[i])));
  return arr;
}
OP(dtype) { return Napi::Number::New(a.env(), static_cast<int>(a.T(0).scalar_type())); }
OP(device) { return Napi::String::New(a.env(), a.T(0).device().str()); }
OP(requiresGrad) { return Napi::Boolean::New(a.env(), a.T(0).requires_grad()); }
OP(isLeaf) { return Napi::Boolean::New(a.env(), a.T(0).is_leaf()); }
OP(isContiguous) { return Napi::Boolean::New(a.env(), a.T(0).is_contiguous()); }
OP(isChannelsLast) { return Napi::Boolean::New(a.env(), a.T(0).is_contiguous(at::MemoryFormat::ChannelsLast)); }
OP(item) { return Napi::Number::New(a.env(), a.T(0).item<double>()); }

// Copies typed-array bytes into a new tensor (the JS buffer may be freed afterwards).
OP(fromBuffer) {
  auto view = a.need(0, a.info[0].IsTypedArray(), "a typed array").As<Napi::TypedArray>();
  auto buf = view.ArrayBuffer();
  auto* data = static_cast<uint8_t*>(buf.Data()) + view.ByteOffset();
  auto shape = a.V(1);
  auto dtype = a.dtype(2);
  // from_blob trusts the shape; a shape larger than the bytes would read past the buffer.
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && numel > INT64_MAX / d)) throw Napi::RangeError::New(a.env(), "fromBuffer: argument 1 is not a valid shape");
    numel *= d;
  }
  if (c10::isQIntType(dtype) || dtype == at::ScalarType::Undefined || numel > static_cast<int64_t>(view.ByteLength() / c10::elementSize(dtype))) {
    throw Napi::RangeError::New(a.env(), "fromBuffer: " + std::to_string(view.ByteLength()) + " bytes cannot hold " + std::to_string(numel) +
                                             " values of " + std::string(c10::toString(dtype)));
  }
  auto t = at::from_blob(data, shape, at::TensorOptions().dtype(dtype)).clone();
  return W(a.absent(3) ? t : t.to(a.device(3)));
}
// Returns a new ArrayBuffer holding the tensor's values, contiguous, on the CPU.
OP(toBuffer) {
  auto c = a.T(0).detach().to(at::kCPU).contiguous();
  size_t n = c.numel() * c.element_size();
  auto ab = Napi::ArrayBuffer::New(a.env(), n);
  if (n) std::memcpy(ab.Data(), c.data_ptr(), n);
  return ab;
}

// ---------------------------------------------------------------- creation
OP(zeros) { return W(at::zeros(a.V(0), a.opts(1, 2))); }
OP(ones) { return W(at::ones(a.V(0), a.opts(1, 2))); }
OP(full) { return W(at::full(a.V(0), a.S(1), a.opts(2, 3))); }
OP(empty) { return W(at::empty(a.V(0), a.opts(1, 2))); }
OP(arange) { return W(at::arange(a.S(0), a.S(1), a.S(2), a.opts(3, 4))); }
OP(linspace) { return W(at::linspace(a.S(0), a.S(1), a.I(2), a.opts(3, 4))); }
OP(randn) { return W(at::randn(a.V(0), a.G(1), a.opts(2, 3))); }
OP(rand) { return W(at::rand(a.V(0), a.G(1), a.opts(2, 3))); }
OP(randint) { return W(at::randint(a.I(0), a.I(1), a.V(2), a.G(3), a.opts(4, 5))); }
OP(randperm) { return W(at::randperm(a.I(0), a.G(1), a.opts(2, 3))); }

// ---------------------------------------------------------------- generators and threads
Napi::Value wrapGen(Napi::Env env, at::Generator g) {
  return makeHandle(env, new GenHolder{std::move(g)}, [](Napi::BasicEnv, GenHolder* p) { delete p; });
}
OP(newGenerator) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(a.I(0)));
  return wrapGen(a.env(), g);
}
OP(defaultGenerator) { return wrapGen(a.env(), at::detail::getDefaultCPUGenerator()); }
OP(generatorSeed) {
  auto& g = a.gen(0);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(static_cast<uint64_t>(a.I(1)));
  return a.env().Undefined();
}
OP(generatorGetState) {
  auto& g = a.gen(0);
  std::lock_guard<std::mutex> lock(g.mutex());
  return W(g.get_state());
}
OP(generatorSetState) {
  auto& g = a.gen(0);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(a.T(1));
  return a.env().Undefined();
}
OP(manualSeed) {
  auto g = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(static_cast<uint64_t>(a.I(0)));
  return a.env().Undefined();
}
OP(setNumThreads) { at::set_num_threads(static_cast<int>(a.I(0))); return a.env().Undefined(); }
OP(getNumThreads) { return Napi::Number::New(a.env(), at::get_num_threads()); }
// OpenBLAS keeps its own thread pool; one BLAS thread is faster for training and sampling alike
// (README, Speed; src/tensor/runtime.ts, configureRuntime).
// The addon's libraries load RTLD_LOCAL, so look in the already-loaded BLAS, not the global scope.
void* blasSymbol(const char* name) {
  if (void* p = dlsym(RTLD_DEFAULT, name)) return p;
  for (const char* lib : {"libopenblas.so.0", "libblas.so.3", "libopenblas.so"}) {
    if (void* h = dlopen(lib, RTLD_LAZY | RTLD_NOLOAD)) {
      void* p = dlsym(h, name);
      dlclose(h);
      if (p) return p;
    }
  }
  return nullptr;
}
OP(setBlasThreads) {
  using Fn = void (*)(int);
  auto fn = reinterpret_cast<Fn>(blasSymbol("openblas_set_num_threads"));
  if (fn) fn(static_cast<int>(a.I(0)));
  return Napi::Boolean::New(a.env(), fn != nullptr);
}
OP(blasInfo) {
  using Fn = char* (*)();
  auto fn = reinterpret_cast<Fn>(blasSymbol("openblas_get_config"));
  return Napi::String::New(a.env(), fn ? std::string(fn()) : std::string("not OpenBLAS (reference BLAS or MKL)"));
}
OP(getBlasThreads) {
  using Fn = int (*)();
  auto fn = reinterpret_cast<Fn>(blasSymbol("openblas_get_num_threads"));
  return fn ? Napi::Number::New(a.env(), fn()) : a.env().Null();
}
// One glibc malloc parameter (src/tensor/native.ts says which and why): true when glibc took it.
// glibc has no getter for these, so the addon keeps what it set, for malloptSettings to report.
std::vector<std::pair<int, int>> g_mallopts;
OP(mallopt) {
  int param = static_cast<int>(a.I(0));
  int value = static_cast<int>(a.I(1));
#ifdef __GLIBC__
  bool ok = mallopt(param, value) == 1;
#else
  bool ok = false;
#endif
  if (ok) g_mallopts.emplace_back(param, value);
  return Napi::Boolean::New(a.env(), ok);
}
OP(malloptSettings) {
  auto arr = Napi::Array::New(a.env(), g_mallopts.size());
  for (size_t i = 0; i < g_mallopts.size(); i++) {
    auto pair = Napi::Array::New(a.env(), 2);
    pair.Set(0u, g_mallopts[i].first);
    pair.Set(1u, g_mallopts[i].second);
    arr.Set(i, pair);
  }
  return arr;
}
// The caching CPU allocator (native/cpu-allocator.cc); src/tensor/allocator.ts says when it is used.
OP(setCachingAllocator) { cpu_allocator::setActive(a.B(0)); return a.env().Undefined(); }
OP(setAllocatorCap) { cpu_allocator::setCap(static_cast<uint64_t>(a.I(0))); return a.env().Undefined(); }
OP(releaseCachedMemory) { return Napi::Number::New(a.env(), static_cast<double>(cpu_allocator::release())); }
OP(allocatorStats) {
  auto s = cpu_allocator::stats();
  auto o = Napi::Object::New(a.env());
  auto num = [&](const char* k, uint64_t v) { o.Set(k, Napi::Number::New(a.env(), static_cast<double>(v))); };
  num("inUseBytes", s.inUseBytes);
  num("cachedBytes", s.cachedBytes);
  num("peakInUseBytes", s.peakInUseBytes);
  num("peakReservedBytes", s.peakReservedBytes);
  num("hits", s.hits);
  num("misses", s.misses);
  num("overCapFrees", s.overCapFrees);
  num("capBytes", s.capBytes);
  o.Set("active", Napi::Boolean::New(a.env(), s.active));
  return o;
}
OP(libtorchVersion) { return Napi::String::New(a.env(), TORCH_VERSION); }
OP(cudaAvailable) { return Napi::Boolean::New(a.env(), at::hasCUDA()); }
OP(cudaDeviceCount) { return Napi::Number::New(a.env(), static_cast<double>(at::getNumGPUs())); }
OP(parallelInfo) { return Napi::String::New(a.env(), at::get_parallel_info()); }

// ---------------------------------------------------------------- conversion, copies
OP(to) { return W(a.T(0).to(a.device(2), a.dtype(1))); }
OP(clone) { return W(a.T(0).clone()); }
OP(contiguous) {
  return W(a.T(0).contiguous(a.B(1) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
}
OP(detach) { return W(a.T(0).detach()); }
// torch's `t.data = src`: t keeps its identity (autograd leaf, requires_grad) and takes src's storage.
OP(setData) { a.T(0).set_data(a.T(1)); return a.env().Undefined(); }

// ---------------------------------------------------------------- elementwise
BINARY(add, at::add(x, y))
BINARY(sub, at::sub(x, y))
BINARY(mul, at::mul(x, y))
BINARY(div, at::div(x, y))
BINARY(pow, at::pow(x, y))
BINARY(maximum, at::maximum(x, y))
BINARY(minimum, at::minimum(x, y))
WITH_SCALAR(addScalar, at::add(x, s))
WITH_SCALAR(mulScalar, at::mul(x, s))
WITH_SCALAR(divScalar, at::div(x, s))
WITH_SCALAR(powScalar, at::pow(x, s))
WITH_SCALAR(rsubScalar, at::rsub(x, s))  // s - x
OP(scalarPow) { return W(at::pow(a.S(0), a.T(1))); }  // s ** x
UNARY(neg, at::neg(x))
UNARY(exp, at::exp(x))
UNARY(log, at::log(x))
UNARY(sqrt, at::sqrt(x))
UNARY(rsqrt, at::rsqrt(x))
UNARY(abs, at::abs(x))
UNARY(reciprocal, at::reciprocal(x))
UNARY(square, at::square(x))
UNARY(sign, at::sign(x))
UNARY(floor, at::floor(x))
UNARY(round, at::round(x))
UNARY(relu, at::relu(x))
UNARY(silu, at::silu(x))
UNARY(sigmoid, at::sigmoid(x))
UNARY(tanh, at::tanh(x))
UNARY(sin, at::sin(x))
UNARY(cos, at::cos(x))
UNARY(isfinite, at::isfinite(x))
UNARY(isnan, at::isnan(x))
UNARY(logicalNot, at::logical_not(x))
OP(gelu) { return W(at::gelu(a.T(0), a.Str(1))); }
OP(clamp) { return W(at::clamp(a.T(0), a.OS(1), a.OS(2))); }
OP(where) { return W(at::where(a.T(0), a.T(1), a.T(2))); }
OP(addcmul) { return W(at::addcmul(a.T(0), a.T(1), a.T(2), a.S(3))); }
BINARY(eq, at::eq(x, y))
BINARY(ne, at::ne(x, y))
BINARY(lt, at::lt(x, y))
BINARY(le, at::le(x, y))
BINARY(gt, at::gt(x, y))
BINARY(ge, at::ge(x, y))
WITH_SCALAR(eqScalar, at::eq(x, s))
WITH_SCALAR(neScalar, at::ne(x, s))
WITH_SCALAR(ltScalar, at::lt(x, s))
WITH_SCALAR(leScalar, at::le(x, s))
WITH_SCALAR(gtScalar, at::gt(x, s))
WITH_SCALAR(geScalar, at::ge(x, s))

// ---------------------------------------------------------------- reductions
OP(sum) { return a.absent(1) ? W(at::sum(a.T(0))) : W(at::sum(a.T(0), a.V(1), a.B(2))); }
OP(mean) { return a.absent(1) ? W(at::mean(a.T(0))) : W(at::mean(a.T(0), a.V(1), a.B(2))); }
OP(var) {
  // unbiased: Bessel's correction, torch's default.
  if (a.absent(1)) return W(at::var(a.T(0), a.B(2)));
  auto dims = a.V(1);
  return W(at::var(a.T(0), at::IntArrayRef(dims), a.B(2), a.B(3)));
}
OP(max) {
  if (a.absent(1)) return W(at::max(a.T(0)));
  auto r = at::max(a.T(0), a.I(1), a.B(2));
  return wrapList(a.env(), {std::get<0>(r), std::get<1>(r)});
}
OP(min) {
  if (a.absent(1)) return W(at::min(a.T(0)));
  auto r = at::min(a.T(0), a.I(1), a.B(2));
  return wrapList(a.env(), {std::get<0>(r), std::get<1>(r)});
}
OP(argmax) {
  c10::optional<int64_t> dim;
  if (!a.absent(1)) dim = a.I(1);
  return W(at::argmax(a.T(0), dim, a.B(2)));
}
OP(all) { return W(at::all(a.T(0))); }
OP(any) { return W(at::any(a.T(0))); }
OP(norm) { return W(at::norm(a.T(0), a.S(1))); }
OP(cumsum) { return W(at::cumsum(a.T(0), a.I(1))); }
OP(quantile) { return W(at::quantile(a.T(0), a.D(1), a.I(2), a.B(3))); }
OP(topk) {
  auto r = at::topk(a.T(0), a.I(1), a.I(2), a.B(3), true);
  return wrapList(a.env(), {std::get<0>(r), std::get<1>(r)});
}
OP(cdist) { return W(at::cdist(a.T(0), a.T(1), a.D(2))); }
OP(linalgEigh) {
  auto r = at::linalg_eigh(a.T(0), "L");
  return wrapList(a.env(), {std::get<0>(r), std::get<1>(r)});
}

// ---------------------------------------------------------------- linear algebra, layers
BINARY(matmul, at::matmul(x, y))
OP(linear) { return W(at::linear(a.T(0), a.T(1), a.OT(2))); }
OP(conv2d) {
  return W(at::conv2d(a.T(0), a.T(1), a.OT(2), a.V(3), a.V(4), a.V(5), a.I(6)));
}
OP(convTranspose2d) {
  return W(at::conv_transpose2d(a.T(0), a.T(1), a.OT(2), a.V(3), a.V(4), a.V(5), a.I(6), a.V(7)));
}
OP(maxPool2d) { return W(at::max_pool2d(a.T(0), a.V(1), a.V(2), a.V(3), a.V(4), a.B(5))); }
OP(avgPool2d) { return W(at::avg_pool2d(a.T(0), a.V(1), a.V(2), a.V(3), a.B(4), a.B(5))); }
OP(adaptiveAvgPool2d) { return W(at::adaptive_avg_pool2d(a.T(0), a.V(1))); }
OP(batchNorm) {
  // (x, weight, bias, running_mean, running_var, training, momentum, eps); running stats update in place.
  return W(at::batch_norm(a.T(0), a.OT(1), a.OT(2), a.OT(3), a.OT(4), a.B(5), a.D(6), a.D(7), true));
}
OP(groupNorm) { return W(at::group_norm(a.T(0), a.I(1), a.OT(2), a.OT(3), a.D(4), true)); }
OP(layerNorm) { return W(at::layer_norm(a.T(0), a.V(1), a.OT(2), a.OT(3), a.D(4), true)); }
OP(softmax) { return W(at::softmax(a.T(0), a.I(1))); }
OP(logSoftmax) { return W(at::log_softmax(a.T(0), a.I(1))); }
OP(upsampleNearest2d) { return W(at::upsample_nearest2d(a.T(0), a.V(1))); }
OP(upsampleBilinear2d) {
  // antialias follows torchvision / PIL when downsampling (torch.nn.functional.interpolate(antialias=True)).
  if (a.B(3)) return W(at::_upsample_bilinear2d_aa(a.T(0), a.V(1), a.B(2)));
  return W(at::upsample_bilinear2d(a.T(0), a.V(1), a.B(2)));
}
OP(embedding) { return W(at::embedding(a.T(0), a.T(1))); }
OP(dropout) { return W(at::dropout(a.T(0), a.D(1), a.B(2))); }
OP(mseLoss) { return W(at::mse_loss(a.T(0), a.T(1), a.I(2))); }
OP(crossEntropy) {
  return W(at::cross_entropy_loss(a.T(0), a.T(1), a.OT(2), a.I(3), a.I(4), a.D(5)));
}

// ---------------------------------------------------------------- shapes
OP(reshape) { return W(at::reshape(a.T(0), a.V(1))); }
OP(permute) { return W(a.T(0).permute(a.V(1))); }
OP(transpose) { return W(at::transpose(a.T(0), a.I(1), a.I(2))); }
OP(flatten) { return W(at::flatten(a.T(0), a.I(1), a.I(2))); }
OP(squeeze) { return a.absent(1) ? W(at::squeeze(a.T(0))) : W(at::squeeze(a.T(0), a.I(1))); }
OP(unsqueeze) { return W(at::unsqueeze(a.T(0), a.I(1))); }
OP(cat) { return W(at::cat(a.TL(0), a.I(1))); }
OP(stack) { return W(at::stack(a.TL(0), a.I(1))); }
OP(chunk) { return wrapList(a.env(), at::chunk(a.T(0), a.I(1), a.I(2))); }
OP(split) { return wrapList(a.env(), at::split_with_sizes(a.T(0), a.V(1), a.I(2))); }
OP(narrow) { return W(at::narrow(a.T(0), a.I(1), a.I(2), a.I(3))); }
OP(select) { return W(at::select(a.T(0), a.I(1), a.I(2))); }
OP(indexSelect) { return W(at::index_select(a.T(0), a.I(1), a.T(2))); }
OP(gather) { return W(at::gather(a.T(0), a.I(1), a.T(2))); }
OP(expand) { return W(a.T(0).expand(a.V(1))); }
OP(repeat) { return W(a.T(0).repeat(a.V(1))); }
OP(flip) { return W(at::flip(a.T(0), a.V(1))); }
OP(constantPad) { return W(at::constant_pad_nd(a.T(0), a.V(1), a.S(2))); }
OP(reflectionPad2d) { return W(at::reflection_pad2d(a.T(0), a.V(1))); }
OP(replicationPad2d) { return W(at::replication_pad2d(a.T(0), a.V(1))); }
OP(pixelShuffle) { return W(at::pixel_shuffle(a.T(0), a.I(1))); }
OP(pixelUnshuffle) { return W(at::pixel_unshuffle(a.T(0), a.I(1))); }

// ---------------------------------------------------------------- autograd
OP(setRequiresGrad) { a.T(0).requires_grad_(a.B(1)); return a.env().Undefined(); }
OP(backward) {
  std::vector<at::Tensor> grads;
  if (!a.absent(1)) grads.push_back(a.T(1));
  torch::autograd::backward({a.T(0)}, grads, a.B(2), false);
  return a.env().Undefined();
}
OP(grad) {
  const at::Tensor& g = a.T(0).grad();
  return g.defined() ? W(g) : a.env().Null();
}
OP(setGrad) {
  if (a.absent(1)) a.T(0).mutable_grad().reset();
  else a.T(0).mutable_grad() = a.T(1);
  return a.env().Undefined();
}
OP(isGradEnabled) { return Napi::Boolean::New(a.env(), at::GradMode::is_enabled()); }
OP(setGradEnabled) { at::GradMode::set_enabled(a.B(0)); return a.env().Undefined(); }
// c10::InferenceMode is an RAII guard over thread-local state, and its scope spans many JS calls, so
// each JS thread keeps a stack of them: enter pushes one, exit pops (restores) the innermost.
// src/tensor/runtime.ts, inferenceMode, pairs them in try/finally on the same thread.
thread_local std::vector<std::unique_ptr<c10::InferenceMode>> t_inferenceModes;
OP(enterInferenceMode) {
  t_inferenceModes.push_back(std::make_unique<c10::InferenceMode>(a.B(0)));
  return a.env().Undefined();
}
OP(exitInferenceMode) {
  if (t_inferenceModes.empty()) throw Napi::Error::New(a.env(), "exitInferenceMode: no inference-mode scope is open on this thread");
  t_inferenceModes.pop_back();
  return a.env().Undefined();
}
OP(isInferenceMode) { return Napi::Boolean::New(a.env(), c10::InferenceMode::is_enabled()); }
OP(isInference) { return Napi::Boolean::New(a.env(), a.T(0).is_inference()); }

// ---------------------------------------------------------------- in place (optimizers, EMA, init, inference)
OP(copy_) { a.T(0).copy_(a.T(1)); return a.env().Undefined(); }
OP(zero_) { a.T(0).zero_(); return a.env().Undefined(); }
OP(fill_) { a.T(0).fill_(a.S(1)); return a.env().Undefined(); }
OP(mulScalar_) { a.T(0).mul_(a.S(1)); return a.env().Undefined(); }
OP(add_) { a.T(0).add_(a.T(1), a.S(2)); return a.env().Undefined(); }
OP(addcmul_) { a.T(0).addcmul_(a.T(1), a.T(2), a.S(3)); return a.env().Undefined(); }
OP(addcdiv_) { a.T(0).addcdiv_(a.T(1), a.T(2), a.S(3)); return a.env().Undefined(); }
OP(lerp_) { a.T(0).lerp_(a.T(1), a.S(2)); return a.env().Undefined(); }
OP(silu_) { at::silu_(a.T(0)); return a.env().Undefined(); }
OP(gelu_) { at::gelu_(a.T(0), a.Str(1)); return a.env().Undefined(); }
OP(uniform_) { a.T(0).uniform_(a.D(1), a.D(2), a.G(3)); return a.env().Undefined(); }
OP(normal_) { a.T(0).normal_(a.D(1), a.D(2), a.G(3)); return a.env().Undefined(); }

// For native/distributed.cc's collectives, which take tensor handles but not the Holder.
at::Tensor& tensorOf(const Napi::Value& v, const char* op, const std::string& where) {
  Holder* h = unwrapHandle<Holder>(v, op, where);
  if (!h->t.defined()) throw Napi::Error::New(v.Env(), std::string(op) + ": " + where + " was disposed and cannot be used");
  return h->t;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (const auto& e : registry()) {
    OpFn fn = e.fn;
    const char* name = e.name;
    exports.Set(name, Napi::Function::New(
                          env,
                          [fn, name](const Napi::CallbackInfo& info) -> Napi::Value {
                            Args a(info, name);
                            try {
                              return fn(a);
                            } catch (...) {
                              rethrow(info.Env(), name);
                            }
                          },
                          name));
  }
  registerDistributed(env, exports, tensorOf, wrap);
  return exports;
}

NODE_API_MODULE(ddpm_torch, Init)
