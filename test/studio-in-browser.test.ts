// The studio's "in this browser" switch in Debian's headless Chromium: the Generate view samples a
// tiny run on onnxruntime-web (the exported page's code, on the server's on-demand ONNX export), and
// its 8-bit grid equals `ddpm sample --model` on the same export within 1 grey level for the same
// seed, sampler and steps. The export and WASM routes refuse bad names and paths out of their folders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startStudio, type Studio } from '../src/studio/server.js';
import { sampleCommand } from '../src/cli/sample.js';
import { decodePng } from '../src/io/png.js';
import { WEB_ASSETS } from '../src/web/site.js';
import { trainTinyRun, trainTinyClassifier } from './tiny-run.js';
import { ROOT } from './helpers.js';

const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
const PUBLIC = path.join(ROOT, 'dist/studio/public');
const skip = !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM} (scripts/setup.sh installs Debian's chromium; or set CHROMIUM)`
  : !existsSync(path.join(PUBLIC, 'index.html')) || !existsSync(path.join(WEB_ASSETS, 'ort')) ? 'the pages are not built (npm run build)' : false;

test('studio Generate "in this browser": DDIM 4 steps, seed 5, equals ddpm sample --model within 1; the routes refuse bad names', { skip, timeout: 180_000 }, async () => {
  const runsDir = mkdtempSync(path.join(tmpdir(), 'ddpm-studio-ort-'));
  let studio: Studio | null = null;
  let browser: Browser | null = null;
  try {
    await trainTinyRun(path.join(runsDir, 'tiny'));
    studio = await startStudio({ runsDir, host: '127.0.0.1', port: 0, threads: 1 });
    const get = (p: string): Promise<Response> => fetch(new URL(p, studio!.url));

    const bad = await get('/api/runs/..%2Fetc/model.onnx');
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /run must be a single name .* paths and '\.\.' are refused/);
    const noCkpt = await get('/api/runs/tiny/model.onnx?checkpoint=step-999');
    assert.equal(noCkpt.status, 404);
    assert.match(((await noCkpt.json()) as { error: string }).error, /run tiny has no checkpoint "step-999"; it has step-/);
    assert.equal((await get('/ort/..%2Fapp.js')).status, 400);
    assert.equal((await get('/ort/app.js')).status, 404);
    const wasm = await get('/ort/ort-wasm-simd-threaded.jsep.wasm');
    assert.equal(wasm.status, 200);
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    await wasm.arrayBuffer();

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.setDefaultTimeout(60_000);
    await page.goto(studio.url);
    await page.waitForSelector('body[data-ready="true"]');
    await page.click('[data-testid=tab-generate]');
    await page.waitForSelector('[data-testid=gen-run] option[value=tiny]', { state: 'attached' });
    await page.selectOption('[data-testid=gen-run]', 'tiny');
    await page.selectOption('[data-testid=gen-sampler]', 'ddim');
    await page.fill('[data-testid=gen-steps]', '4');
    await page.fill('[data-testid=gen-eta]', '0');
    await page.fill('[data-testid=gen-seed]', '5');
    await page.fill('[data-testid=gen-count]', '4');
    await page.check('[data-testid=gen-in-browser]');
    await page.click('[data-testid=gen-start]');
    await page.waitForFunction(() => ['done', 'failed'].includes(document.querySelector('[data-testid=gen-state]')?.textContent ?? ''));
    assert.equal(await page.innerText('[data-testid=gen-state]'), 'done', `${await page.getAttribute('[data-testid=gen-state]', 'title')} ${errors.join('; ')}`);
    assert.deepEqual(errors, []);
    assert.match(await page.innerText('[data-testid=gen-engine]'), /^this browser, WASM, 1 thread/);
    assert.equal(await page.innerText('[data-testid=gen-frames]'), '4 frames');
    await page.screenshot({ path: path.join(runsDir, 'shot.png') });

    const grid = await page.evaluate(async () => {
      const img = document.querySelector('[data-testid=gen-grid]') as HTMLImageElement;
      await img.decode();
      const canvas = document.createElement('canvas');
      [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
      const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
      ctx.drawImage(img, 0, 0);
      const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      return { width: canvas.width, height: canvas.height, grey: Array.from({ length: px.length / 4 }, (_, i) => px[i * 4]!) };
    });
    // 2 x 2 images of 16 px with make_grid's 2 px padding, at 4x: (2 * 18 + 2) * 4 = 152.
    assert.deepEqual([grid.width, grid.height], [152, 152]);
    for (let k = 0; k < 4; k++) {
      const [ox, oy] = [(2 + (k % 2) * 18) * 4, (2 + Math.floor(k / 2) * 18) * 4];
      const levels = new Set<number>();
      for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) levels.add(grid.grey[(oy + y) * 152 + ox + x]!);
      assert.ok(levels.size > 8, `image ${k} is blank or flat (${levels.size} grey levels)`);
    }

    // The same export the page sampled, through the CLI on onnxruntime-node.
    const model = path.join(runsDir, 'tiny.onnx');
    writeFileSync(model, Buffer.from(await (await get('/api/runs/tiny/model.onnx')).arrayBuffer()));
    const png = path.join(runsDir, 'cli.png');
    await sampleCommand().exitOverride().parseAsync(['--model', model, '--sampler', 'ddim', '--steps', '4', '--eta', '0', '--seed', '5', '-n', '4', '--grid', png], { from: 'user' });
    const cli = decodePng(readFileSync(png), png);
    assert.deepEqual([cli.width, cli.height], [grid.width, grid.height]);
    let worst = 0;
    for (let i = 0; i < grid.grey.length; i++) worst = Math.max(worst, Math.abs(grid.grey[i]! - cli.data[i * cli.channels]!));
    assert.ok(worst <= 1, `the studio's in-browser grid differs from ddpm sample --model's by up to ${worst} grey levels`);
  } finally {
    await browser?.close();
    await studio?.close();
    rmSync(runsDir, { recursive: true, force: true });
  }
});

test('studio Generate with a classifier: the picker lists the run\'s classifier runs, "in this browser" refuses it, the server samples with it', { skip, timeout: 180_000 }, async () => {
  const runsDir = mkdtempSync(path.join(tmpdir(), 'ddpm-studio-clf-'));
  let studio: Studio | null = null;
  let browser: Browser | null = null;
  try {
    await trainTinyRun(path.join(runsDir, 'tiny'));
    await trainTinyClassifier(path.join(runsDir, 'clf'), path.join(runsDir, 'tiny'));
    studio = await startStudio({ runsDir, host: '127.0.0.1', port: 0, threads: 1 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    page.setDefaultTimeout(60_000);
    await page.goto(studio.url);
    await page.waitForSelector('body[data-ready="true"]');
    await page.click('[data-testid=tab-generate]');
    await page.waitForSelector('[data-testid=gen-classifier] option[value=clf]', { state: 'attached' });
    const runOptions = await page.$$eval('[data-testid=gen-run] option', (os) => os.map((o) => (o as HTMLOptionElement).value));
    assert.deepEqual(runOptions, ['tiny'], 'a classifier run is not offered as a run to sample from');
    assert.equal(await page.isVisible('[data-testid=gen-class]'), false, 'an unconditional run without a classifier has no class to choose');
    await page.selectOption('[data-testid=gen-classifier]', 'clf');
    assert.equal(await page.isVisible('[data-testid=gen-class]'), true);
    await page.selectOption('[data-testid=gen-class]', '3');
    await page.fill('[data-testid=gen-classifier-scale]', '2');
    await page.selectOption('[data-testid=gen-sampler]', 'ddim');
    await page.fill('[data-testid=gen-steps]', '2');
    await page.fill('[data-testid=gen-count]', '2');
    await page.check('[data-testid=gen-in-browser]');
    await page.click('[data-testid=gen-start]');
    await page.waitForFunction(() => document.querySelector('[data-testid=gen-state]')?.textContent === 'failed');
    assert.match(await page.getAttribute('[data-testid=gen-state]', 'title') ?? '', /classifier guidance needs the gradient of the classifier at every step \(autograd\)/);
    await page.uncheck('[data-testid=gen-in-browser]');
    await page.click('[data-testid=gen-start]');
    await page.waitForFunction(() => ['done', 'failed'].includes(document.querySelector('[data-testid=gen-state]')?.textContent ?? '') && document.querySelector('[data-testid=gen-grid]') !== null);
    assert.equal(await page.innerText('[data-testid=gen-state]'), 'done', await page.getAttribute('[data-testid=gen-state]', 'title') ?? '');
  } finally {
    await browser?.close();
    await studio?.close();
    rmSync(runsDir, { recursive: true, force: true });
  }
});
