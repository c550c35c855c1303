// `npm run bench`, browser part: sampling speed of each preset's exported page (ddpm export --web)
// on onnxruntime-web's WASM provider in headless Chromium (Debian's, driven by playwright-core),
// on one thread, and on two where the page is served cross-origin isolated (WASM threads need
// SharedArrayBuffer). The same reverse process as bench/onnx.ts's rows for libtorch and
// onnxruntime-node: DDIM (eta 0) over 150 steps for dli02 and dli03 and 50 for ddpm, batch 64, random
// weights; here it is the page's own sampler (src/samplers on host arrays) with its frames drawn.
//   node dist/bench/web.js [--rounds 3] [--only dli02,dli03,ddpm] [--batch 64]
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { manualSeed } from '../src/tensor/index.js';
import { createModel } from '../src/models/index.js';
import { modelToOnnx } from '../src/models/onnx-export.js';
import { encodeOnnx } from '../src/io/onnx.js';
import { presetDefaults } from '../src/train/config.js';
import { onnxMetadata } from '../src/train/export.js';
import { writeWebSite } from '../src/web/site.js';
import { serveFolder } from '../test/static-server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = path.join(ROOT, '.bench', 'web');
const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
const { values: a } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, only: { type: 'string' }, batch: { type: 'string', default: '64' } } });
const rounds = Number(a.rounds);
const batch = Number(a.batch);
type Preset = 'dli02' | 'dli03' | 'ddpm';
const STEPS: Record<Preset, number> = { dli02: 150, dli03: 150, ddpm: 50 };
const median = (xs: number[]): number => { const q = [...xs].sort((x, y) => x - y); const m = q.length >> 1; return q.length % 2 ? q[m]! : (q[m - 1]! + q[m]!) / 2; };

/** Waits for the page's run number `run` to finish; its sampling time in seconds. */
async function finished(page: Page, run: number): Promise<number> {
  await page.waitForFunction((k) => Number(document.body.dataset['runs'] ?? 0) >= k || document.body.dataset['state'] === 'error', run, { timeout: 600_000 });
  const state = await page.evaluate(() => document.body.dataset['state']);
  if (state !== 'done') throw new Error(`the page failed: ${await page.textContent('#error')}`);
  return Number(await page.evaluate(() => document.body.dataset['seconds']));
}

mkdirSync(DIR, { recursive: true });
const presets = (a.only?.split(',') ?? ['dli02', 'dli03', 'ddpm']) as Preset[];
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const rows: string[] = [];
try {
  for (const preset of presets) {
    // Random weights, as bench/onnx.ts: the time per call does not depend on their values.
    manualSeed(0);
    const config = presetDefaults(preset);
    const model = createModel(config.model).eval();
    const bytes = encodeOnnx(modelToOnnx(model, config.model, { metadata: onnxMetadata(config, JSON.stringify(config), { ema: false, step: null }) }));
    model.dispose();
    const site = path.join(DIR, preset);
    writeWebSite(site, bytes, { force: true });
    const perMode: Record<string, number[]> = {};
    for (let round = 0; round < rounds; round++) {
      for (const isolated of round % 2 ? [true, false] : [false, true]) {
        const server = await serveFolder(site, { isolated });
        const page = await browser.newPage();
        try {
          await page.goto(`${server.url}?sampler=ddim&steps=${STEPS[preset]}&seed=0&n=${batch}&backend=wasm&autostart=1`);
          await finished(page, 1); // the first process warms the runtime up
          await page.click('#generate');
          const seconds = await finished(page, 2);
          const mode = String(await page.textContent('#backend'));
          (perMode[mode] ??= []).push(batch / seconds);
          process.stderr.write(`  ${preset} ${mode} round ${round + 1}: ${(batch / seconds).toFixed(2)} img/s\n`);
        } finally {
          await page.close();
          await server.close();
        }
      }
    }
    for (const [mode, ips] of Object.entries(perMode)) rows.push(`| ${preset}, ${STEPS[preset]} | ${mode} | ${median(ips).toFixed(2)} |`);
  }
} finally {
  await browser.close();
}
console.log(`\nSampling in the browser: the exported page on onnxruntime-web (WASM) in headless Chromium, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), batch ${batch}, DDIM, ${rounds} rounds (one warm-up process each), medians`);
console.log('\n| preset, steps | provider | images per second |');
console.log('| --- | --- | --- |');
for (const r of rows) console.log(r);
