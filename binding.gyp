{
  "targets": [
    {
      "target_name": "ddpm_torch",
      "sources": ["native/addon.cc", "native/cpu-allocator.cc", "native/distributed.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node native/find-libtorch.cjs --include-dirs)"
      ],
      "defines": [
        "NAPI_EXPERIMENTAL",
        "NAPI_CPP_EXCEPTIONS",
        "<!@(node native/find-libtorch.cjs --defines)"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "libraries": [
        "<!@(node native/find-libtorch.cjs --lib-dirs)",
        "<!@(node native/find-libtorch.cjs --libs)"
      ]
    }
  ]
}
