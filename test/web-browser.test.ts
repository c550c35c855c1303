// The exported page (ddpm export --web) in Debian's Chromium, headless, driven by playwright-core:
// for a dli02 run it draws 4 non-blank images on the WASM provider, and its 8-bit grid equals
// `ddpm sample --model` on onnxruntime-node for the same seed within 1 (DDIM, 10 steps), as it does
// for a class-conditional run with guidance (DPM-Solver++). The page's JavaScript bundle must not
// reach the libtorch addon. Screenshots land in test-artifacts/web/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { exportCommand } from '../src/cli/export.js';
import { sampleCommand } from '../src/cli/sample.js';
import { decodePng } from '../src/io/png.js';
import { WEB_ASSETS, writeWebSite } from '../src/web/site.js';
import { trainTinyRun } from './tiny-run.js';
import { serveFolder, type StaticServer } from './static-server.js';
import { ROOT } from './helpers.js';

const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts/web');
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (scripts/setup.sh installs Debian's chromium; or set CHROMIUM to a Chromium binary)`;

let dir = '';
let browser: Browser | null = null;
const servers: StaticServer[] = [];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ddpm-web-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  await trainTinyRun(path.join(dir, 'dli02'));
  await trainTinyRun(path.join(dir, 'cond'), 3);
});

after(async () => {
  await browser?.close();
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(cmd: 'export' | 'sample', args: string[]): Promise<void> {
  await (cmd === 'export' ? exportCommand() : sampleCommand()).exitOverride().parseAsync(args, { from: 'user' });
}

/** The page's finished grid, read back through a canvas: grey levels (R of RGBA) and its size. */
async function pageGrid(page: Page): Promise<{ width: number; height: number; grey: number[] }> {
  return page.evaluate(() => {
    const img = document.getElementById('result') as HTMLImageElement;
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    return { width: canvas.width, height: canvas.height, grey: Array.from({ length: px.length / 4 }, (_, i) => px[i * 4]!) };
  });
}

/** Opens the exported page at `query`, waits for the finished grid; returns the page. */
async function generate(site: string, query: string, name: string): Promise<Page> {
  const server = await serveFolder(site);
  servers.push(server);
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1100, height: 720 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // The state the page is in whenever its count of finished runs changes (bench/web.ts waits on that count).
  await page.addInitScript(() => {
    const w = window as unknown as { statesAtRuns: string[] };
    w.statesAtRuns = [];
    new MutationObserver(() => w.statesAtRuns.push(document.body.dataset['state'] ?? '')).observe(document, { subtree: true, attributeFilter: ['data-runs'] });
  });
  await page.goto(`${server.url}?${query}&autostart=1`);
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset['state'] ?? ''), null, { timeout: 90_000 });
  const state = await page.evaluate(() => document.body.dataset['state']);
  assert.equal(state, 'done', `the page stopped in state ${state}: ${await page.textContent('#error')} ${errors.join('; ')}`);
  assert.deepEqual(errors, []);
  assert.deepEqual(await page.evaluate(() => (window as unknown as { statesAtRuns: string[] }).statesAtRuns), ['done'], 'data-runs changes only together with the state done');
  assert.deepEqual(server.requests.filter((r) => !/^\/(|app\.js|model\.onnx|ort\/ort-wasm-simd-threaded\.jsep\.(mjs|wasm))$/.test(r)), [], 'the page loads only its own files');
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
  return page;
}

/** The CLI's grid PNG and the page's grid, pixel for pixel within `tol` grey levels. */
function assertSameGrid(what: string, cliPng: string, grid: { width: number; height: number; grey: number[] }, tol: number): void {
  const img = decodePng(readFileSync(cliPng), cliPng);
  assert.deepEqual([grid.width, grid.height], [img.width, img.height], `${what}: grid size`);
  let worst = 0;
  for (let i = 0; i < grid.grey.length; i++) worst = Math.max(worst, Math.abs(grid.grey[i]! - img.data[i * img.channels]!));
  assert.ok(worst <= tol, `${what}: the page's pixels differ from ddpm sample --model's by up to ${worst} grey levels`);
}

test('the page bundle does not reach libtorch', { skip: existsSync(path.join(WEB_ASSETS, 'app.js')) ? false : 'the page is not built (npm run build)' }, () => {
  const js = readFileSync(path.join(WEB_ASSETS, 'app.js'), 'utf8');
  assert.doesNotMatch(js, /ddpm_torch\.node|createRequire|build\/Release/, 'app.js must not load the addon');
});

test('dli02 exported page on WASM: 4 non-blank images, equal to ddpm sample --model (DDIM, 10 steps, seed 3) within 1', { skip, timeout: 180_000 }, async () => {
  const site = path.join(dir, 'site-dli02');
  await cli('export', ['--run', path.join(dir, 'dli02'), '--out', path.join(dir, 'dli02.onnx'), '--web', site]);
  for (const f of ['index.html', 'app.js', 'model.onnx', 'ort/ort-wasm-simd-threaded.jsep.wasm']) assert.ok(existsSync(path.join(site, f)), `${f} in the folder`);
  const page = await generate(site, 'sampler=ddim&steps=10&seed=3&n=4&backend=wasm', 'dli02-wasm');
  assert.match(await page.textContent('#backend') ?? '', /^WASM, 1 thread/);
  assert.equal(await page.evaluate(() => document.body.dataset['step']), '10');
  assert.match(page.url(), /sampler=ddim&steps=10&seed=3&n=4/);
  const grid = await pageGrid(page);
  // 2 x 2 images of 16 px with make_grid's 2 px padding, at 4x: (2 * 18 + 2) * 4 = 152.
  assert.deepEqual([grid.width, grid.height], [152, 152]);
  for (let k = 0; k < 4; k++) {
    const [ox, oy] = [(2 + (k % 2) * 18) * 4, (2 + Math.floor(k / 2) * 18) * 4];
    const levels = new Set<number>();
    for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) levels.add(grid.grey[(oy + y) * 152 + ox + x]!);
    assert.ok(levels.size > 8, `image ${k} is blank or flat (${levels.size} grey levels)`);
  }
  const png = path.join(dir, 'dli02-cli.png');
  await cli('sample', ['--model', path.join(dir, 'dli02.onnx'), '--sampler', 'ddim', '--steps', '10', '--seed', '3', '-n', '4', '--grid', png]);
  assertSameGrid('dli02 DDIM', png, grid, 1);
  await page.close();
  // With no sampler in the address, the page samples as `ddpm sample --model` does with none: the
  // run's own (dli02: DDPM over all T steps, with the notebook's variance).
  const own = await generate(site, 'seed=3&n=4&backend=wasm', 'dli02-own-sampler');
  assert.equal(await own.inputValue('#sampler'), 'ddpm');
  assert.equal(await own.evaluate(() => document.body.dataset['step']), '10');
  const ownPng = path.join(dir, 'dli02-cli-own.png');
  await cli('sample', ['--model', path.join(dir, 'dli02.onnx'), '--seed', '3', '-n', '4', '--grid', ownPng]);
  assertSameGrid('dli02, the run\'s own sampler', ownPng, await pageGrid(own), 1);
  await own.close();
});

test('class-conditional exported page with guidance equals ddpm sample --model (DPM-Solver++, class 2, guidance 1.5) within 1', { skip, timeout: 180_000 }, async () => {
  const site = path.join(dir, 'site-cond');
  await cli('export', ['--run', path.join(dir, 'cond'), '--web', site]);
  await assert.rejects(cli('export', ['--run', path.join(dir, 'cond'), '--web', site]), /export --web: .*site-cond already exists; choose another folder or pass --force/);
  const page = await generate(site, 'sampler=dpmpp2m&steps=6&seed=11&n=4&class=2&guidance=1.5&backend=wasm', 'cond-wasm');
  const png = path.join(dir, 'cond-cli.png');
  await cli('sample', ['--model', path.join(site, 'model.onnx'), '--sampler', 'dpmpp2m', '--steps', '6', '--seed', '11', '-n', '4', '--class', '2', '--guidance', '1.5', '--grid', png]);
  assertSameGrid('conditional DPM-Solver++', png, await pageGrid(page), 1);
  await page.close();
});

test('the page reports what was thrown, in words, when it is not an Error or has no message', { skip: skip || (existsSync(path.join(WEB_ASSETS, 'app.js')) ? false : 'the page is not built (npm run build)') }, async () => {
  const site = path.join(dir, 'site-thrown');
  writeWebSite(site, new Uint8Array(0));
  const server = await serveFolder(site);
  servers.push(server);
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  // What onnxruntime-web's WASM code can reject with: a number (an abort or a pointer), an Error with no message, a plain object.
  const cases: [string, RegExp][] = [
    ['number', /^a number was thrown, not an Error: 12345; the browser console has the details$/],
    ['empty Error', /^Error with no message was thrown at .+; the browser console has the details$/],
    ['object', /^an object was thrown, not an Error: \[object Object\] \{"code":7\}; the browser console/],
    ['empty string', /^a string was thrown, not an Error: ""; the browser console/],
  ];
  for (const [kind, message] of cases) {
    const page = await browser.newPage();
    page.on('console', () => undefined);
    await page.addInitScript((k) => {
      const thrown = k === 'number' ? 12345 : k === 'empty Error' ? new Error('') : k === 'object' ? { code: 7 } : '';
      window.fetch = () => Promise.reject(thrown);
    }, kind);
    await page.goto(`${server.url}?autostart=1`);
    await page.waitForFunction(() => document.body.dataset['state'] === 'error', null, { timeout: 30_000 });
    assert.match(await page.textContent('#error') ?? '', message, kind);
    await page.close();
  }
});
