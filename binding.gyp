{
  # Builds the CPU addon with node-gyp (build/Release/hayate.node). The default is a source build for this
  # machine (-march=native). HAYATE_CPU_DISPATCH=1 makes a portable x86-64 build, what the prebuilt addon is
  # (`npm run prebuild`): the engine compiled for x86-64-v2 and the hot kernels once more for x86-64-v4 with
  # and without AVX512_BF16 and x86-64-v3 (AVX2 + FMA), chosen when the addon loads (cpp/cpu/isa/kernels.h); gyp has no
  # per-file flags, hence a static library per instruction set.
  "variables": {
    "hayate_cpu_dispatch%": "<!(node -p \"process.env.HAYATE_CPU_DISPATCH === '1' ? 1 : 0\")",
    "hayate_cpu_baseline%": "x86-64-v2"
  },
  "target_defaults": {
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "cpp",
      "<!@(node cpp/addon/gyp-config.cjs includes)"
    ],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "<!@(node cpp/addon/gyp-config.cjs defines)"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
    "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-frtti"],
    "conditions": [
      ["target_arch=='x64' and hayate_cpu_dispatch==1", { "defines": ["HAYATE_CPU_DISPATCH=1"] }]
    ]
  },
  "targets": [
    {
      "target_name": "hayate",
      "sources": ["<!@(node cpp/addon/gyp-config.cjs sources)"],
      "libraries": ["<!@(node cpp/addon/gyp-config.cjs libraries)", "-lpthread"],
      "conditions": [
        ["target_arch=='x64' and hayate_cpu_dispatch==0", { "cflags_cc": ["-march=native"] }],
        ["target_arch=='x64' and hayate_cpu_dispatch==1", {
          "cflags_cc": ["-march=<(hayate_cpu_baseline)"],
          "dependencies": ["hayate_isa_avx512_bf16", "hayate_isa_avx512", "hayate_isa_avx2", "hayate_isa_generic"],
          # no libstdc++ newer than the user's: the prebuilt addon carries its own, hidden
          "ldflags": ["-static-libstdc++", "-static-libgcc", "-Wl,--exclude-libs,ALL"]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "GCC_ENABLE_CPP_RTTI": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "OTHER_CPLUSPLUSFLAGS": ["-O3"]
          }
        }]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64' and hayate_cpu_dispatch==1", {
      "targets": [
        {
          "target_name": "hayate_isa_avx512_bf16",
          "type": "static_library",
          "sources": ["cpp/cpu/isa/avx512_bf16.cpp"],
          "cflags_cc": ["-fPIC", "-march=x86-64-v4", "-mavx512bf16"]
        },
        {
          "target_name": "hayate_isa_avx512",
          "type": "static_library",
          "sources": ["cpp/cpu/isa/avx512.cpp"],
          "cflags_cc": ["-fPIC", "-march=x86-64-v4"]
        },
        {
          "target_name": "hayate_isa_avx2",
          "type": "static_library",
          "sources": ["cpp/cpu/isa/avx2.cpp"],
          "cflags_cc": ["-fPIC", "-march=x86-64-v3"]
        },
        {
          "target_name": "hayate_isa_generic",
          "type": "static_library",
          "sources": ["cpp/cpu/isa/generic.cpp"],
          "cflags_cc": ["-fPIC", "-march=<(hayate_cpu_baseline)"]
        }
      ]
    }]
  ]
}
