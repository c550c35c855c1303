// The studio page in Debian's Chromium (headless, driven by playwright-core; no downloaded browser):
// a refused request shows its message, a real tiny training (512 images, 1 epoch) fills the loss
// chart, a 2-step DDIM generation shows non-blank images and a trajectory, and the forward slider
// changes x_t. Screenshots of each view land in test-artifacts/studio/ (the README's come from
// tools/studio-screenshots.ts, from a trained run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startStudio, type Studio } from '../src/studio/server.js';
import { ROOT } from './helpers.js';

const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
const DATA = process.env['FASHION_MNIST_DIR'] ?? '/usr/share/datasets/fashion-mnist';
const PUBLIC = path.join(ROOT, 'dist/studio/public');
const ARTIFACTS = path.join(ROOT, 'test-artifacts/studio');

function whySkip(): string | false {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (scripts/setup.sh installs Debian's chromium; or set CHROMIUM to a Chromium binary)`;
  const hasData = existsSync(DATA) && readdirSync(DATA).some((f) => f.startsWith('train-images-idx3-ubyte'));
  if (!hasData) return `no Fashion-MNIST training images in ${DATA} (apt-get install dataset-fashion-mnist, or set FASHION_MNIST_DIR)`;
  return false;
}

/** Width, height and how many distinct grey levels an <img> shows (read back through a canvas). */
async function imageStats(page: Page, testid: string): Promise<{ width: number; height: number; levels: number }> {
  const sel = `[data-testid="${testid}"]`;
  await page.waitForFunction((s) => {
    const img = document.querySelector<HTMLImageElement>(s);
    return img !== null && img.complete && img.naturalWidth > 0;
  }, sel, { timeout: 30_000 });
  return page.evaluate((s) => {
    const img = document.querySelector(s) as HTMLImageElement;
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    const levels = new Set<number>();
    for (let i = 0; i < px.length; i += 4) levels.add(px[i]!);
    return { width: img.naturalWidth, height: img.naturalHeight, levels: levels.size };
  }, sel);
}

async function chartPoints(page: Page, testid: string): Promise<number> {
  return Number(await page.getAttribute(`[data-testid="${testid}"]`, 'data-points'));
}

async function waitForPoints(page: Page, testid: string, timeout: number): Promise<void> {
  await page.waitForFunction((s) => Number(document.querySelector(s)?.getAttribute('data-points') ?? 0) > 0, `[data-testid="${testid}"]`, { timeout });
}

async function shot(page: Page, view: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${view}.png`) });
}

const skip = whySkip();

test('studio page in headless Chromium: train, generate, forward', { skip, timeout: 240_000 }, async (t) => {
  assert.ok(existsSync(path.join(PUBLIC, 'index.html')), `the studio page is not built (${PUBLIC}/index.html is missing); run npm run build`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const runsDir = mkdtempSync(path.join(tmpdir(), 'ddpm-studio-browser-'));
  let studio: Studio | null = null;
  let browser: Browser | null = null;
  const pageErrors: string[] = [];
  try {
    // One libtorch thread per job: a 32-step training gains nothing from two, and on a busy machine
    // OpenMP's barriers wait on descheduled threads (seconds per step instead of tens of ms).
    studio = await startStudio({ runsDir, host: '127.0.0.1', port: 0, dataDir: DATA, threads: 1, stopGraceMs: 10_000 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.setDefaultTimeout(30_000);
    await page.goto(studio.url);
    await page.waitForSelector('body[data-ready="true"]');

    await t.test('a refused request shows the server\'s message and marks the field', async () => {
      await page.click('[data-testid=tab-train]');
      await page.fill('[data-testid=train-name]', 'refused');
      await page.fill('[data-testid=train-limit]', '8');
      await page.fill('[data-testid=train-batch-size]', '32');
      await page.click('[data-testid=train-start]');
      const msg = page.locator('[data-testid=error-message]').last();
      await msg.waitFor();
      assert.match(await msg.innerText(), /limit must be at least batchSize \(32\).*HTTP 400, field limit/s);
      assert.equal(await page.getAttribute('[data-testid=train-limit]', 'aria-invalid'), 'true');
      await page.click('[data-testid=error-message] .close');
    });

    await t.test('a tiny training from the Train view fills the loss chart', async () => {
      await page.fill('[data-testid=train-name]', 'tiny');
      await page.selectOption('[data-testid=train-preset]', 'dli02');
      await page.fill('[data-testid=train-epochs]', '1');
      await page.fill('[data-testid=train-batch-size]', '16');
      await page.fill('[data-testid=train-limit]', '512');
      await page.click('[data-testid=train-start]');
      await waitForPoints(page, 'train-loss-chart', 60_000);
      await page.waitForFunction(() => document.querySelector('[data-testid=train-state]')?.textContent === 'done', null, { timeout: 90_000 });
      assert.equal(await page.innerText('[data-testid=train-step]'), '32 / 32');
      assert.ok(await chartPoints(page, 'train-loss-chart') >= 2, 'the loss chart has the logged steps');
      await shot(page, 'train');
    });

    await t.test('the Runs view shows the run, its loss curve, sample grid and checkpoint', async () => {
      await page.click('[data-testid=tab-runs]');
      await page.click('[data-testid=run-item][data-run=tiny]');
      await waitForPoints(page, 'run-loss-chart', 10_000);
      await page.locator('[data-testid=run-checkpoints] td', { hasText: 'step-32' }).waitFor();
      await page.waitForFunction(() => {
        const img = document.querySelector<HTMLImageElement>('[data-testid=run-samples] img');
        return img !== null && img.complete && img.naturalWidth > 0;
      });
      await shot(page, 'runs');
    });

    await t.test('a 2-step DDIM generation shows non-blank images and a trajectory', async () => {
      await page.click('[data-testid=tab-generate]');
      await page.waitForSelector('[data-testid=gen-run] option[value=tiny]', { state: 'attached' });
      await page.selectOption('[data-testid=gen-run]', 'tiny');
      await page.selectOption('[data-testid=gen-sampler]', 'ddim');
      await page.fill('[data-testid=gen-steps]', '2');
      await page.fill('[data-testid=gen-count]', '4');
      await page.click('[data-testid=gen-start]');
      await page.waitForFunction(() => document.querySelector('[data-testid=gen-state]')?.textContent === 'done', null, { timeout: 60_000 });
      assert.equal(await page.innerText('[data-testid=gen-frames]'), '2 frames');
      for (const id of ['gen-grid', 'gen-x0', 'gen-xt']) {
        const s = await imageStats(page, id);
        assert.ok(s.width > 0 && s.levels > 1, `${id} is a non-blank image (got ${s.width}x${s.height}, ${s.levels} grey levels)`);
      }
      // Scrub back to the first frame: x_T, step 1 of 2.
      const lastXt = await page.getAttribute('[data-testid=gen-xt]', 'src');
      await page.fill('[data-testid=gen-scrub]', '0');
      assert.equal(await page.innerText('[data-testid=gen-step]'), '1 / 2');
      assert.notEqual(await page.getAttribute('[data-testid=gen-xt]', 'src'), lastXt);
      // The trajectory GIF: one frame per step plus the finished images.
      const gif = await page.evaluate(async () => {
        const href = (document.querySelector('[data-testid=gen-download-gif]') as HTMLAnchorElement).href;
        const bytes = new Uint8Array(await (await fetch(href)).arrayBuffer());
        let frames = 0;
        for (let i = 0; i + 2 < bytes.length; i++) if (bytes[i] === 0x21 && bytes[i + 1] === 0xf9 && bytes[i + 2] === 0x04) frames++;
        return { magic: String.fromCharCode(...bytes.slice(0, 6)), frames };
      });
      assert.equal(gif.magic, 'GIF89a');
      assert.ok(gif.frames >= 2, `the trajectory GIF has ${gif.frames} frames, expected at least 2`);
      await page.fill('[data-testid=gen-scrub]', '1');
      await shot(page, 'generate');
    });

    await t.test('an interpolation between two seeds: frames computed once, the slider moves between them', async () => {
      await page.fill('[data-testid=gen-count]', '5');
      await page.fill('[data-testid=gen-interpolate-to]', '7');
      await page.dispatchEvent('[data-testid=gen-interpolate-to]', 'change');
      assert.equal(await page.inputValue('[data-testid=gen-sampler]'), 'ddim');
      await page.click('[data-testid=gen-start]');
      // The previous job left the state at 'done': wait for this job's frames too, not just the state.
      await page.waitForFunction(() => document.querySelector('[data-testid=gen-state]')?.textContent === 'done' && document.querySelector('[data-testid=gen-frames]')?.textContent === '5 frames', null, { timeout: 60_000 }).catch(() => undefined);
      assert.equal(await page.innerText('[data-testid=gen-frames]'), '5 frames');
      assert.equal(await page.innerText('[data-testid=gen-step]'), 'frame 5 / 5, alpha 1');
      const end = await page.getAttribute('[data-testid=gen-x0]', 'src');
      await page.fill('[data-testid=gen-scrub]', '2');
      assert.equal(await page.innerText('[data-testid=gen-step]'), 'frame 3 / 5, alpha 0.5');
      assert.match(await page.innerText('[data-testid=gen-xt-caption]'), /^xT on the path between the seeds$/);
      assert.notEqual(await page.getAttribute('[data-testid=gen-x0]', 'src'), end);
      const strip = await imageStats(page, 'gen-grid');
      assert.ok(strip.width > 4 * strip.height && strip.levels > 1, `the strip is one non-blank row of 5 (got ${strip.width}x${strip.height}, ${strip.levels} levels)`);
      await shot(page, 'interpolate');
      await page.fill('[data-testid=gen-interpolate-to]', '');
    });

    await t.test('moving the forward t slider changes x_t', async () => {
      await page.click('[data-testid=tab-forward]');
      await page.waitForSelector('[data-testid=fwd-run] option[value=tiny]', { state: 'attached' });
      await page.selectOption('[data-testid=fwd-run]', 'tiny');
      await waitForPoints(page, 'sched-alphabar', 10_000);
      await page.fill('[data-testid=fwd-index]', '1');
      await page.locator('[data-testid=fwd-index]').dispatchEvent('change');
      await imageStats(page, 'fwd-xt');
      const before = await page.getAttribute('[data-testid=fwd-xt]', 'src');
      const alphaBefore = await page.innerText('[data-testid=fwd-alphabar]');
      await page.fill('[data-testid=fwd-t]', '60');
      await page.waitForFunction((src) => {
        const img = document.querySelector<HTMLImageElement>('[data-testid=fwd-xt]');
        return img?.dataset['t'] === '60' && img.src !== src;
      }, before);
      assert.notEqual(await page.innerText('[data-testid=fwd-alphabar]'), alphaBefore);
      const s = await imageStats(page, 'fwd-xt');
      assert.ok(s.levels > 1, 'x_t at t = 60 is noise, not a flat image');
      await shot(page, 'forward');
    });

    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
    const shown = await page.locator('[data-testid=error-message]').allInnerTexts();
    assert.deepEqual(shown, [], 'no error messages on the page after the refused request was dismissed');
    for (const f of readdirSync(ARTIFACTS)) t.diagnostic(`screenshot ${path.join(ARTIFACTS, f)} (${Math.round(statSync(path.join(ARTIFACTS, f)).size / 1024)} KB)`);
  } finally {
    await browser?.close();
    await studio?.close();
    rmSync(runsDir, { recursive: true, force: true });
  }
});
