#!/usr/bin/env node
// npm's install script: builds the libtorch addon with node-gyp against the libtorch that
// find-libtorch.cjs finds ($LIBTORCH, python3's torch, Debian's libtorch-dev), as packages with a
// native part do (better-sqlite3 and sharp fall back to node-gyp the same way).
// - No libtorch: prints the one line of LIBTORCH_MISSING and succeeds. The package still loads, and
//   every call that needs libtorch throws that line (src/tensor/native.ts).
// - libtorch found but the build fails: the install fails with node-gyp's output, since a user with
//   libtorch wants the addon, not a silent fallback.
// - DDPM_TS_ADDON=/path/to/ddpm_torch.node: copies that already-built addon instead of compiling
//   (a CI cache, or this repository's package test, which installs the addon it has just built).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { locate, LIBTORCH_MISSING } = require('./find-libtorch.cjs');

const root = path.join(__dirname, '..');
const release = path.join(root, 'build', 'Release');

function main() {
  const prebuilt = process.env.DDPM_TS_ADDON;
  if (prebuilt) {
    if (!fs.existsSync(prebuilt)) {
      process.stderr.write(`ddpm-ts: DDPM_TS_ADDON is ${prebuilt}, which does not exist; unset it to build the addon here\n`);
      return 1;
    }
    fs.mkdirSync(release, { recursive: true });
    fs.copyFileSync(prebuilt, path.join(release, 'ddpm_torch.node'));
    process.stderr.write(`ddpm-ts: installed the prebuilt addon ${prebuilt}\n`);
    return 0;
  }
  try {
    locate();
  } catch {
    process.stderr.write(`${LIBTORCH_MISSING}\n`);
    return 0;
  }
  // A cached choice from another environment would build against the wrong libtorch.
  fs.rmSync(path.join(root, 'build', 'libtorch.json'), { force: true });
  // npm hands its own node-gyp to install scripts (npm_config_node_gyp); in a clone, the devDependency.
  const gyp = process.env.npm_config_node_gyp || path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const r = spawnSync(process.execPath, [gyp, 'rebuild', `-j`, 'max', '--loglevel=error'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`ddpm-ts: building the libtorch addon failed (node-gyp's output is above)\n`);
    return 1;
  }
  return 0;
}

process.exitCode = main();
