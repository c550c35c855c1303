// The README's studio screenshots (docs/images/studio-<view>.png), taken in Debian's headless
// Chromium from a trained run, so the pictures show garments rather than a test's 1-epoch noise:
//   npm run build && node dist/tools/studio-screenshots.js --run runs/demo [--out docs/images]
// The run is copied into a temporary runs folder (nothing under runs/ is touched); the Train view is
// shot halfway through a short training that is then stopped.
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright-core';
import { startStudio } from '../src/studio/server.js';

const { values: args } = parseArgs({
  options: {
    run: { type: 'string' },
    out: { type: 'string', default: 'docs/images' },
    chromium: { type: 'string', default: process.env['CHROMIUM'] ?? '/usr/bin/chromium' },
    data: { type: 'string', default: process.env['FASHION_MNIST_DIR'] ?? '/usr/share/datasets/fashion-mnist' },
  },
});
if (!args.run || !existsSync(path.join(args.run, 'config.json'))) {
  throw new Error(`studio-screenshots: --run must name a trained run folder (with config.json and a checkpoint), got ${JSON.stringify(args.run ?? null)}; e.g. --run runs/demo`);
}
const runName = path.basename(path.resolve(args.run));
const out = path.resolve(args.out);
mkdirSync(out, { recursive: true });

const until = (page: Page, fn: string, timeout = 120_000): Promise<unknown> => page.waitForFunction(fn, null, { timeout });
const text = (testid: string): string => `document.querySelector('[data-testid=${testid}]')?.textContent`;
const points = (testid: string): string => `Number(document.querySelector('[data-testid=${testid}]')?.dataset.points ?? 0)`;

async function shot(page: Page, view: string): Promise<void> {
  const file = path.join(out, `studio-${view}.png`);
  await page.screenshot({ path: file });
  const kb = Math.round(statSync(file).size / 1024);
  // README pictures stay small; a larger one means the view got busier than it should look.
  console.log(`${file}: ${kb} KB${kb > 150 ? ' (over the 150 KB the README pictures keep to)' : ''}`);
}

const runsDir = mkdtempSync(path.join(tmpdir(), 'ddpm-studio-shots-'));
cpSync(args.run, path.join(runsDir, runName), { recursive: true });
const studio = await startStudio({ runsDir, host: '127.0.0.1', port: 0, dataDir: args.data, threads: 1, stopGraceMs: 30_000 });
const browser = await chromium.launch({ executablePath: args.chromium, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.setDefaultTimeout(60_000);
  await page.goto(studio.url);
  await page.waitForSelector('body[data-ready="true"]');

  // Train: a short run shot when its loss chart has a few points, then stopped (it checkpoints).
  await page.click('[data-testid=tab-train]');
  await page.fill('[data-testid=train-name]', 'dli02-quick');
  await page.fill('[data-testid=train-epochs]', '1');
  await page.fill('[data-testid=train-limit]', '12800');
  await page.click('[data-testid=train-start]');
  await until(page, `${points('train-loss-chart')} >= 5`);
  await shot(page, 'train');
  await page.click('[data-testid=train-stop]');
  await until(page, `['stopped', 'done'].includes(${text('train-state')})`);

  // Runs: the trained run, its loss curve, grids and checkpoints.
  await page.click('[data-testid=tab-runs]');
  await page.click(`[data-testid=run-item][data-run="${runName}"]`);
  await until(page, `${points('run-loss-chart')} > 0 && [...document.querySelectorAll('[data-testid=run-samples] img')].every((i) => i.complete && i.naturalWidth > 0)`);
  await shot(page, 'runs');

  // Generate: the notebook's DDPM sampler (every t of 150; README: deterministic samplers fail on
  // dli02), 16 images, shown scrubbed back to a late step: x_t still noisy, the predicted x0 a garment.
  await page.click('[data-testid=tab-generate]');
  await page.waitForSelector(`[data-testid=gen-run] option[value="${runName}"]`, { state: 'attached' });
  await page.selectOption('[data-testid=gen-run]', runName);
  await page.selectOption('[data-testid=gen-sampler]', 'ddpm');
  await page.fill('[data-testid=gen-count]', '16');
  await page.click('[data-testid=gen-start]');
  await until(page, `${text('gen-state')} === 'done' && document.querySelector('[data-testid=gen-grid]')?.naturalWidth > 0`);
  await page.fill('[data-testid=gen-scrub]', '125');
  await shot(page, 'generate');

  // Forward: a dataset image halfway through the run's schedule.
  await page.click('[data-testid=tab-forward]');
  await page.selectOption('[data-testid=fwd-run]', runName);
  await until(page, `${points('sched-alphabar')} > 0`);
  await page.fill('[data-testid=fwd-t]', '40');
  await until(page, `document.querySelector('[data-testid=fwd-xt]')?.dataset.t === '40'`);
  await shot(page, 'forward');
} finally {
  await browser.close();
  await studio.close();
  rmSync(runsDir, { recursive: true, force: true });
}
