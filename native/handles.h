// Handles: how a C++ object owned by the addon crosses to JavaScript and back.
//
// Each kind of handle (tensor, generator, and any a later source file adds) is a Napi::External
// tagged with its kind's Node-API type tag (napi_type_tag_object). Unwrapping checks the tag, so a
// value that is not the expected handle (null, a number, a plain object, an External another addon
// made, a handle of another kind) is refused with a JS TypeError naming the op, the argument and
// what was expected, instead of being reinterpreted as the wrong C++ type and crashing the process.
//
// A kind is declared once, next to the struct it wraps:
//   struct GenHolder { at::Generator g; };
//   template <> const HandleKind HandleOf<GenHolder>::kind{"generator", {0x..., 0x...}};
// then makeHandle(env, new GenHolder{...}, finalizer) and unwrapHandle<GenHolder>(info, i, "op").
#pragma once

#include <napi.h>

#include <string>
#include <vector>

struct HandleKind {
  const char* name;     // "tensor", "generator": said in errors
  napi_type_tag tag;    // a random 128-bit value, unique to this kind
};

// Specialised once per wrapped struct, in the source file that defines the struct.
template <class H>
struct HandleOf {
  static const HandleKind kind;
};

// Every kind this process has made, so an error can say "a generator handle" instead of "an External".
inline std::vector<const HandleKind*>& handleKinds() {
  static std::vector<const HandleKind*> kinds;
  return kinds;
}

inline void rememberKind(const HandleKind& k) {
  for (const HandleKind* known : handleKinds()) if (known == &k) return;
  handleKinds().push_back(&k);
}

// What a JS value is, in the words of an error message.
inline std::string describeValue(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_number: return "the number " + v.ToString().Utf8Value();
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_bigint: return "a bigint";
    case napi_external: {
      auto ext = v.As<Napi::External<void>>();
      for (const HandleKind* k : handleKinds()) {
        if (ext.CheckTypeTag(&k->tag)) return std::string("a ") + k->name + " handle";
      }
      return "an External that ddpm-ts did not make";
    }
    case napi_object:
      if (v.IsArray()) return "an array";
      if (v.IsTypedArray()) return "a typed array";
      return "an object";
    default: return "an unknown value";
  }
}

template <class H, class Finalizer>
Napi::External<H> makeHandle(Napi::Env env, H* data, Finalizer finalize) {
  rememberKind(HandleOf<H>::kind);
  auto ext = Napi::External<H>::New(env, data, finalize);
  ext.TypeTag(&HandleOf<H>::kind.tag);
  return ext;
}

// The one check before any handle's data is touched. `op` and `index` say where, for the message.
template <class H>
H* unwrapHandle(const Napi::Value& v, const char* op, const std::string& where) {
  const HandleKind& k = HandleOf<H>::kind;
  if (!v.IsExternal() || !v.As<Napi::External<H>>().CheckTypeTag(&k.tag)) {
    throw Napi::TypeError::New(v.Env(), std::string(op) + ": " + where + " must be a " + k.name +
                                            " handle made by ddpm-ts, got " + describeValue(v));
  }
  return v.As<Napi::External<H>>().Data();
}
