// The c10d entry points (native/distributed.cc), registered by addon.cc's module init.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>

#include <string>

// Reads a tensor handle of addon.cc (a JS TypeError naming op and where for anything else); it keeps the tensor
// holder private to addon.cc.
using TensorOf = at::Tensor& (*)(const Napi::Value&, const char* op, const std::string& where);
// Wraps a new tensor as addon.cc's handle (its one release path).
using WrapTensor = Napi::Value (*)(Napi::Env, at::Tensor);

void registerDistributed(Napi::Env env, Napi::Object exports, TensorOf tensorOf, WrapTensor wrap);
