#!/usr/bin/env node
// Finds libtorch for node-gyp, in the order docs/architecture.md ("Why libtorch") and the README give:
//   1. $LIBTORCH (an unpacked libtorch zip or any prefix with include/ and lib/)
//   2. the `torch` package of python3 (its include and lib folders and its C++ ABI flag)
//   3. Debian's libtorch-dev (/usr/include/torch, /usr/lib/<triplet>)
// Usage: node find-libtorch.cjs --include-dirs | --libs | --lib-dirs | --defines | --describe
// binding.gyp calls it once per field; the choice is cached in build/libtorch.json so every field
// (and the build log) agrees on the same libtorch. Required as a module (native/install.cjs, and
// src/tensor/native.ts when the addon is missing) it exports locate() and LIBTORCH_MISSING.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

// The one line said when there is no libtorch: by the install script, and as the Error of any call
// that needs libtorch when the addon is not built.
const LIBTORCH_MISSING = 'ddpm-ts: libtorch was not found, so its addon is not built and tensor operations are unavailable; ' +
  'install libtorch (Debian/Ubuntu: apt-get install libtorch-dev libopenblas0-pthread; or pip install torch; ' +
  'or a pytorch.org libtorch zip with LIBTORCH=/path/to/libtorch), then run `npm rebuild ddpm-ts` (in a clone of ddpm-ts: npm run setup).';

const INSTALL_HINT = [
  'libtorch was not found. ddpm-ts needs libtorch (the C++ library under PyTorch). Install one of:',
  '  - Debian/Ubuntu: sudo apt-get install libtorch-dev libopenblas0-pthread   (npm run setup does this as root)',
  '  - a libtorch zip from pytorch.org, unpacked, then: export LIBTORCH=/path/to/libtorch',
  '  - PyTorch for python3 (pip install torch); its bundled libtorch is used',
].join('\n');

function fromPrefix(prefix, source) {
  const inc = path.join(prefix, 'include');
  const lib = path.join(prefix, 'lib');
  if (!fs.existsSync(path.join(inc, 'ATen', 'ATen.h'))) return null;
  return {
    source,
    version: readVersion(inc),
    includeDirs: [inc, path.join(inc, 'torch', 'csrc', 'api', 'include')],
    libDirs: [lib],
    cxx11Abi: guessAbiFromLibs(lib),
  };
}

function readVersion(inc) {
  const f = path.join(inc, 'torch', 'csrc', 'api', 'include', 'torch', 'version.h');
  try {
    const m = /TORCH_VERSION\s+"([^"]+)"/.exec(fs.readFileSync(f, 'utf8'));
    if (m) return m[1];
  } catch { /* older layouts have no version.h */ }
  return 'unknown';
}

// A libtorch zip says its ABI in its name only; the pre-cxx11 build exports std::string symbols
// without the __cxx11 namespace. Default to the modern ABI when unsure.
function guessAbiFromLibs(lib) {
  try {
    const c10 = fs.readdirSync(lib).find((f) => /^libc10\.so/.test(f));
    if (!c10) return 1;
    const bytes = fs.readFileSync(path.join(lib, c10));
    return bytes.includes(Buffer.from('__cxx11')) ? 1 : 0;
  } catch { return 1; }
}

function fromPython(python) {
  const code = [
    'import json, os, torch',
    'from torch.utils import cpp_extension as c',
    // pip's CUDA wheels keep the CUDA runtime and NCCL headers in the nvidia-* packages, which
    // ProcessGroupNCCL.hpp (native/distributed.cc) includes.
    'import glob',
    'nv = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), "nvidia", "*", "include")))',
    'print(json.dumps({"version": torch.__version__, "inc": c.include_paths() + nv, "lib": c.library_paths(),',
    '  "abi": int(torch._C._GLIBCXX_USE_CXX11_ABI), "cuda": bool(torch.version.cuda)}))',
  ].join('\n');
  try {
    const out = execFileSync(python, ['-c', code], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 60000 });
    const info = JSON.parse(out.toString().trim().split('\n').pop());
    const incs = info.inc.filter((d) => fs.existsSync(path.join(d, 'ATen', 'ATen.h')) || fs.existsSync(d));
    if (!incs.some((d) => fs.existsSync(path.join(d, 'ATen', 'ATen.h')))) return null;
    return {
      source: `python3 torch (${python})`,
      version: info.version,
      includeDirs: incs,
      libDirs: info.lib,
      cxx11Abi: info.abi,
      cuda: info.cuda,
    };
  } catch { return null; }
}

function fromDebian() {
  const triplets = ['x86_64-linux-gnu', 'aarch64-linux-gnu'];
  if (!fs.existsSync('/usr/include/ATen/ATen.h')) return null;
  const lib = triplets.map((t) => `/usr/lib/${t}`).find((d) => fs.existsSync(path.join(d, 'libtorch.so')));
  if (!lib) return null;
  return {
    source: "Debian's libtorch-dev",
    version: readVersion('/usr/include'),
    includeDirs: ['/usr/include', '/usr/include/torch/csrc/api/include'],
    libDirs: [lib],
    cxx11Abi: 1,
  };
}

function locate() {
  if (process.env.LIBTORCH) {
    const found = fromPrefix(process.env.LIBTORCH, `$LIBTORCH (${process.env.LIBTORCH})`);
    if (!found) {
      throw new Error(`$LIBTORCH is set to ${process.env.LIBTORCH}, but ${process.env.LIBTORCH}/include/ATen/ATen.h does not exist.\n` +
        'Point LIBTORCH at an unpacked libtorch folder (it has include/ and lib/), or unset it.');
    }
    return found;
  }
  for (const py of ['python3', '/usr/bin/python3']) {
    const found = fromPython(py);
    if (found) return found;
  }
  const deb = fromDebian();
  if (deb) return deb;
  throw new Error(INSTALL_HINT);
}

function libsFor(info) {
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
  for (const dir of info.libDirs) {
    // Link the CUDA backend without --as-needed so its kernels register when the addon loads.
    if (fs.existsSync(path.join(dir, 'libtorch_cuda.so'))) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
  }
  return libs;
}

function isCuda(info) {
  return info.cuda === true || info.libDirs.some((d) => fs.existsSync(path.join(d, 'libtorch_cuda.so')));
}

function main() {
  const cache = path.join(__dirname, '..', 'build', 'libtorch.json');
  let info;
  try {
    info = JSON.parse(fs.readFileSync(cache, 'utf8'));
    if (info.env !== (process.env.LIBTORCH || '')) info = null;
  } catch { info = null; }
  if (!info) {
    try {
      info = locate();
    } catch (e) {
      process.stderr.write(`\nddpm-ts: ${e.message}\n\n`);
      process.exit(1);
    }
    info.env = process.env.LIBTORCH || '';
    fs.mkdirSync(path.dirname(cache), { recursive: true });
    fs.writeFileSync(cache, JSON.stringify(info, null, 2));
    process.stderr.write(`ddpm-ts: building against libtorch ${info.version} from ${info.source}\n`);
  }
  const flag = process.argv[2];
  switch (flag) {
    case '--include-dirs': console.log(info.includeDirs.join(' ')); break;
    case '--lib-dirs': console.log(info.libDirs.map((d) => `-L${d} -Wl,-rpath,${d}`).join(' ')); break;
    case '--libs': console.log(libsFor(info).join(' ')); break;
    // DDPM_TORCH_CUDA: a CUDA build, so native/distributed.cc offers NCCL where nccl.h is found.
    case '--defines': console.log([`_GLIBCXX_USE_CXX11_ABI=${info.cxx11Abi}`, ...(isCuda(info) ? ['DDPM_TORCH_CUDA'] : [])].join(' ')); break;
    case '--describe': console.log(`libtorch ${info.version} from ${info.source}`); break;
    default:
      process.stderr.write('usage: find-libtorch.cjs --include-dirs|--lib-dirs|--libs|--defines|--describe\n');
      process.exit(2);
  }
}

module.exports = { locate, LIBTORCH_MISSING };
if (require.main === module) main();
