// `npm run bench`, browser part: sampling speed of each preset's exported page (ddpm export --web)
// on onnxruntime-web in headless Chromium (Debian's, driven by playwright-core): the WASM provider on
// one thread, and on two where the page is served cross-origin isolated (WASM threads need
// SharedArrayBuffer), rounds alternating the two; then WebGPU if Chromium offers an adapter (it says
// which, or that there is none), timing a few steps of one round. The reverse process of bench/onnx.ts's rows for libtorch and
// onnxruntime-node: DDIM (eta 0) over 150 steps for dli02 and dli03 and 50 for ddpm, random weights;
// here it is the page's own sampler (src/samplers on host arrays) with its frames drawn. Batch 16 by
// default, not bench/onnx.ts's 64, to keep a run to minutes on two cores (dli03 on one WASM thread
// makes about one image per second); run bench/onnx.ts with --batch 16 for figures beside these.
//   node dist/bench/web.js [--rounds 3] [--only dli02,dli03,ddpm] [--batch 16] [--webgpu-steps 2]
import { mkdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
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
const { values: a } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, only: { type: 'string' }, batch: { type: 'string', default: '16' }, 'webgpu-steps': { type: 'string', default: '2' } },
});
const rounds = Number(a.rounds);
const batch = Number(a.batch);
const webgpuSteps = Number(a['webgpu-steps']);
for (const [name, v] of [['--rounds', rounds], ['--batch', batch], ['--webgpu-steps', webgpuSteps]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`bench/web: ${name} must be a positive integer, got ${v}`);
}
if (batch > 64) throw new Error(`bench/web: --batch ${batch} is over the page's limit of 64 images`);
type Preset = 'dli02' | 'dli03' | 'ddpm';
const PRESETS: Preset[] = ['dli02', 'dli03', 'ddpm'];
const STEPS: Record<Preset, number> = { dli02: 150, dli03: 150, ddpm: 50 };
const presets = (a.only?.split(',') ?? PRESETS) as Preset[];
for (const p of presets) if (!PRESETS.includes(p)) throw new Error(`bench/web: --only takes ${PRESETS.join(', ')}, got ${JSON.stringify(p)}`);
/** The warm-up process's steps: its first model call initialises the session's kernels and buffers. */
const WARMUP_STEPS = 2;
const median = (xs: number[]): number => { const q = [...xs].sort((x, y) => x - y); const m = q.length >> 1; return q.length % 2 ? q[m]! : (q[m - 1]! + q[m]!) / 2; };
const load = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' ');

/** Waits for the page's finished run number `run`; its sampling time in seconds, or the page's own error. */
async function finished(page: Page, run: number, pageErrors: string[]): Promise<number> {
  await page.waitForFunction((k) => (document.body.dataset['state'] === 'done' && Number(document.body.dataset['runs'] ?? 0) >= k) || document.body.dataset['state'] === 'error',
    run, { timeout: 900_000, polling: 250 });
  const state = await page.evaluate(() => document.body.dataset['state']);
  if (state !== 'done') throw new Error(`the page stopped in state ${state}: ${JSON.stringify(await page.textContent('#error'))}${pageErrors.length ? `; page errors: ${pageErrors.join('; ')}` : ''}`);
  return Number(await page.evaluate(() => document.body.dataset['seconds']));
}

/**
 * One measurement on a fresh page: a warm-up process of WARMUP_STEPS steps, then `steps` steps timed.
 * The provider the page says it runs on, and images per second over `fullSteps` steps (scaled when fewer were timed).
 */
async function measure(browser: Browser, site: string, preset: Preset, o: { isolated: boolean; backend: string; steps: number }): Promise<{ mode: string; ips: number }> {
  const server = await serveFolder(site, { isolated: o.isolated });
  const page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(`${e.name}: ${e.message}`));
  try {
    await page.goto(`${server.url}?sampler=ddim&steps=${WARMUP_STEPS}&seed=0&n=${batch}${o.backend}&autostart=1`);
    await finished(page, 1, pageErrors);
    await page.fill('#steps', String(o.steps));
    await page.click('#generate');
    const seconds = await finished(page, 2, pageErrors);
    const done = Number(await page.evaluate(() => document.body.dataset['step']));
    if (done !== o.steps) throw new Error(`the page ran ${done} steps, not ${o.steps}`);
    return { mode: String(await page.textContent('#backend')), ips: batch / (seconds * (STEPS[preset] / o.steps)) };
  } finally {
    await page.close();
    await server.close();
  }
}

/** Random weights, as bench/onnx.ts: the time per call does not depend on their values. The page's folder. */
function exportSite(preset: Preset): string {
  manualSeed(0);
  const config = presetDefaults(preset);
  const model = createModel(config.model).eval();
  const bytes = encodeOnnx(modelToOnnx(model, config.model, { metadata: onnxMetadata(config, JSON.stringify(config), { ema: false, step: null }) }));
  model.dispose();
  const site = path.join(DIR, preset);
  writeWebSite(site, bytes, { force: true });
  return site;
}

/** The WebGPU adapter Chromium offers a page on `site` (a secure context: http://127.0.0.1), or why there is none. */
async function webgpuAdapter(browser: Browser, site: string): Promise<{ name: string; software: boolean } | { none: string }> {
  const server = await serveFolder(site);
  const page = await browser.newPage();
  try {
    await page.goto(`${server.url}?n=1`);
    return await page.evaluate(async () => {
      const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string; description?: string } } | null> } }).gpu;
      if (!gpu) return { none: 'the page has no navigator.gpu' };
      const adapter = await gpu.requestAdapter().catch((e: unknown) => { throw new Error(`requestAdapter() failed: ${String(e)}`); });
      if (!adapter) return { none: 'navigator.gpu.requestAdapter() returned null' };
      const name = [adapter.info?.vendor, adapter.info?.architecture || adapter.info?.description].filter(Boolean).join(' ') || 'unnamed adapter';
      return { name, software: /swiftshader|llvmpipe|lavapipe|software/i.test(name) };
    });
  } finally {
    await page.close();
    await server.close();
  }
}

mkdirSync(DIR, { recursive: true });
const ortWeb = (JSON.parse(readFileSync(path.join(ROOT, 'node_modules/onnxruntime-web/package.json'), 'utf8')) as { version: string }).version;
const loadBefore = load();
const rows: string[] = [];
const notes: string[] = [];
const sites = new Map<Preset, string>();
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const chromiumVersion = browser.version();
try {
  for (const preset of presets) {
    const site = exportSite(preset);
    sites.set(preset, site);
    const perMode: Record<string, number[]> = {};
    for (let round = 0; round < rounds; round++) {
      for (const isolated of round % 2 ? [true, false] : [false, true]) {
        try {
          const { mode, ips } = await measure(browser, site, preset, { isolated, backend: '&backend=wasm', steps: STEPS[preset] });
          (perMode[mode] ??= []).push(ips);
          process.stderr.write(`  ${preset} ${mode} round ${round + 1}: ${ips.toFixed(2)} img/s (load ${load()})\n`);
        } catch (e) {
          if (!browser.isConnected()) throw e;
          const what = `${preset}, WASM ${isolated ? 'cross-origin isolated' : 'not isolated'}, round ${round + 1}: ${(e as Error).message}`;
          notes.push(`failed: ${what}`);
          process.stderr.write(`  failed: ${what}\n`);
        }
      }
    }
    for (const [mode, ips] of Object.entries(perMode)) rows.push(`| ${preset}, ${STEPS[preset]} | ${mode} | ${median(ips).toFixed(2)} | ${ips.map((x) => x.toFixed(2)).join(', ')} |`);
  }
} finally {
  await browser.close();
}

// WebGPU: its own browser, with the flag that exposes WebGPU on Linux.
const gpuBrowser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--enable-unsafe-webgpu'] });
try {
  const adapter = await webgpuAdapter(gpuBrowser, sites.values().next().value!);
  if ('none' in adapter) {
    notes.push(`WebGPU not measured: headless Chromium ${chromiumVersion} with --enable-unsafe-webgpu offers no adapter here (${adapter.none})`);
  } else {
    // In software a step takes seconds to a minute (dli02 to ddpm at batch 16 on two cores): the first preset only.
    const gpuPresets = adapter.software ? presets.slice(0, 1) : presets;
    if (adapter.software) notes.push(`WebGPU: the only adapter is ${adapter.name}, Vulkan emulated in software on the CPU, not a GPU; its row (${gpuPresets.join(', ')} only) shows that the WebGPU path runs, not what a GPU does`);
    for (const preset of gpuPresets) {
      const steps = Math.min(webgpuSteps, STEPS[preset]);
      try {
        const { mode, ips } = await measure(gpuBrowser, sites.get(preset)!, preset, { isolated: false, backend: '', steps });
        rows.push(`| ${preset}, ${STEPS[preset]} | ${mode}, ${steps} of ${STEPS[preset]} steps timed, one round | ${ips.toFixed(3)} | |`);
        process.stderr.write(`  ${preset} ${mode}: ${ips.toFixed(3)} img/s (load ${load()})\n`);
      } catch (e) {
        if (!gpuBrowser.isConnected()) throw e;
        notes.push(`failed: ${preset}, WebGPU (${adapter.name}): ${(e as Error).message}`);
      }
    }
  }
} finally {
  await gpuBrowser.close();
}

console.log(`\nSampling in the browser: the exported page on onnxruntime-web ${ortWeb} in headless Chromium ${chromiumVersion}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), DDIM, batch ${batch}, random weights; WASM: ${rounds} rounds alternating the two configurations, one ${WARMUP_STEPS}-step warm-up process on each page, medians; load average (1, 5, 15 min) ${loadBefore} before, ${load()} after`);
console.log('\n| preset, steps | provider | images per second | per round |');
console.log('| --- | --- | --- | --- |');
for (const r of rows) console.log(r);
for (const n of notes) console.log(`\n${n}`);
