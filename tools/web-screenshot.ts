// The README's screenshot of the exported page mid-generation (docs/images/web-page.png), in Debian's
// headless Chromium on the WASM provider, from a run (best a trained one, so the picture shows garments):
//   npm run build && node dist/tools/web-screenshot.js --run runs/demo [--out docs/images/web-page.png]
// The page is exported to a temporary folder (ddpm export --web) and shot when the reverse process
// (DDPM over every step, 16 images) is half done.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { exportRun } from '../src/train/export.js';
import { writeWebSite } from '../src/web/site.js';
import { serveFolder } from '../test/static-server.js';

const { values: args } = parseArgs({
  options: {
    run: { type: 'string' },
    out: { type: 'string', default: 'docs/images/web-page.png' },
    chromium: { type: 'string', default: process.env['CHROMIUM'] ?? '/usr/bin/chromium' },
  },
});
if (!args.run) throw new Error('web-screenshot: give --run DIR, a run folder written by ddpm train (e.g. runs/demo)');
const scratch = mkdtempSync(path.join(tmpdir(), 'ddpm-web-shot-'));
try {
  const model = path.join(scratch, 'model.onnx');
  exportRun({ run: args.run, out: model });
  const site = path.join(scratch, 'site');
  writeWebSite(site, readFileSync(model));
  const server = await serveFolder(site);
  const browser = await chromium.launch({ executablePath: args.chromium, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 640 } });
    await page.goto(`${server.url}?sampler=ddpm&seed=1&n=16&backend=wasm&autostart=1`);
    await page.waitForFunction(() => document.body.dataset['state'] === 'running', null, { timeout: 60_000, polling: 20 });
    const steps = Number(await page.inputValue('#steps'));
    await page.waitForFunction((half) => Number(document.body.dataset['step'] ?? 0) >= half, Math.ceil(steps / 2), { timeout: 600_000, polling: 20 });
    mkdirSync(path.dirname(path.resolve(args.out)), { recursive: true });
    await page.screenshot({ path: args.out });
    process.stdout.write(`wrote ${args.out} (step ${await page.evaluate(() => document.body.dataset['step'])} of ${steps})\n`);
  } finally {
    await browser.close();
    await server.close();
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
