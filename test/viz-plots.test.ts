// Plots (src/viz/plot.ts) and `ddpm viz` pictures (src/viz/reverse.ts, src/cli/viz.ts): each chart is
// a well-formed SVG with the marks and axis titles it should have; the reverse GIF, the guidance
// grid and the sampler grid have the frames and sizes their options ask for; bad options are refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodePng } from '../src/io/png.js';
import {
  renderSvg, writeChart, schedulesSpec, lossCurveSpec, lossByTSpec, parseLossLog, movingAverage, findFont, type LogRow,
} from '../src/viz/plot.js';
import { hconcat, parseSamplerSettings, reverseRows, guidanceSweep } from '../src/viz/reverse.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import type { Tensor } from '../src/tensor/index.js';
import type { LossByTResult } from '../src/eval/loss-by-t.js';
import { ROOT } from './helpers.js';
import { trainTinyRun } from './tiny-run.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-viz-'));
after(() => rmSync(work, { recursive: true, force: true }));
const uncond = path.join(work, 'uncond');
const cond = path.join(work, 'cond');
const hasData = existsSync('/usr/share/datasets/fashion-mnist') || process.env.FASHION_MNIST_DIR !== undefined;

function ddpm(...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

before(async () => {
  await trainTinyRun(uncond, 0);
  await trainTinyRun(cond, 3);
});

/**
 * Marks drawn by each Vega mark of a kind (line: <path> elements, rule: <line>), keyed by the mark's
 * name; Vega draws a line per series in a group of its own, so the groups of one name are summed.
 */
function marks(svg: string, kind: 'line' | 'rule'): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const m of svg.matchAll(new RegExp(`<g class="mark-${kind} role-mark ([^"]+)"[^>]*>(.*?)</g>`, 'gs'))) {
    counts[m[1]!] = (counts[m[1]!] ?? 0) + (m[2]!.match(kind === 'rule' ? /<line/g : /<path/g) ?? []).length;
  }
  return counts;
}

function checkSvg(svg: string): void {
  assert.ok(svg.startsWith('<svg'), 'starts with <svg');
  assert.ok(svg.trimEnd().endsWith('</svg>'), 'ends with </svg>');
  const opens = (svg.match(/<g[ >]/g) ?? []).length;
  const closes = (svg.match(/<\/g>/g) ?? []).length;
  assert.equal(opens, closes, 'every <g> is closed');
}

test('schedules chart: three panels (beta, alphabar, log SNR), five lines each, axis titles and legend', async () => {
  const svg = await renderSvg(schedulesSpec(100));
  checkSvg(svg);
  assert.deepEqual(marks(svg, 'line'), { concat_0_marks: 5, concat_1_marks: 5, concat_2_marks: 5 });
  for (const title of ['timestep t', 'β_t (log scale)', 'ᾱ_t (alpha-bar)', 'log SNR(t)', 'Noise schedules at T = 100']) assert.ok(svg.includes(title), `has "${title}"`);
  for (const name of ['linear (1e-4 to 0.02)', 'scaled-linear', 'cosine (s = 0.008)', 'sigmoid', 'linear, zero terminal SNR']) assert.ok(svg.includes(name), `legend has "${name}"`);
  assert.ok(!/NaN|Infinity/.test(svg), 'no non-finite coordinates (the zero-terminal-SNR log SNR of -infinity is left out)');
});

test('loss curve: logged and smoothed lines, a dashed rule per new epoch, log axis titles', async () => {
  const rows: LogRow[] = Array.from({ length: 30 }, (_, i) => ({ step: 10 * (i + 1), loss: 1 / (1 + i) + 0.01 * (i % 3), epoch: Math.floor(i / 10) }));
  const svg = await renderSvg(lossCurveSpec(rows, { title: 'tiny' }));
  checkSvg(svg);
  assert.deepEqual(marks(svg, 'line'), { layer_0_marks: 2 });
  assert.deepEqual(marks(svg, 'rule'), { layer_1_marks: 2 });
  for (const title of ['training step', 'training loss (log scale)', 'logged loss', 'smoothed (centred mean of 1 points)']) assert.ok(svg.includes(title), `has "${title}"`);
  assert.throws(() => lossCurveSpec([]), /no rows with a step and a finite loss/);
});

test('loss by t: one line for an eps model with simple weighting, two (loss and eps-MSE) otherwise', async () => {
  const r: LossByTResult = { t: [0, 5, 9], loss: [0.9, 0.2, 0.1], epsMse: [0.8, 0.3, 0.05], x0Mse: [0, 0, 0], images: 4, objective: 'eps', weighting: 'simple', minSnrGamma: 5, seed: 0 };
  const one = await renderSvg(lossByTSpec(r));
  checkSvg(one);
  assert.deepEqual(marks(one, 'line'), { layer_0_marks: 1 });
  assert.ok(one.includes('training loss = eps-MSE'));
  const two = await renderSvg(lossByTSpec({ ...r, objective: 'v', weighting: 'min-snr' }));
  assert.deepEqual(marks(two, 'line'), { layer_0_marks: 2 });
  for (const title of ['timestep t', 'loss (log scale)', 'eps-MSE', 'training loss (v objective, min-snr 5 weighting)']) assert.ok(two.includes(title), `has "${title}"`);
});

test('charts are written as .svg, as .png when a font is at hand, and any other extension is refused', async (t) => {
  const svgFile = path.join(work, 'chart.svg');
  await writeChart(svgFile, schedulesSpec(20));
  checkSvg(readFileSync(svgFile, 'utf8'));
  await assert.rejects(writeChart(path.join(work, 'chart.jpg'), schedulesSpec(20)), /extension must be \.svg or \.png, got "\.jpg"/);
  if (!findFont()) return t.skip('no TrueType font on this machine (apt-get install fonts-dejavu-core)');
  const pngFile = path.join(work, 'chart.png');
  await writeChart(pngFile, schedulesSpec(20));
  const img = decodePng(readFileSync(pngFile), pngFile);
  const w = Number(/width="(\d+)"/.exec(readFileSync(svgFile, 'utf8'))![1]);
  assert.equal(img.width, 2 * w, 'PNG at twice the SVG size');
  assert.ok(img.height > 200 && img.channels >= 3);
});

test('log parsing and smoothing', () => {
  assert.deepEqual(parseLossLog('{"step":1,"loss":0.5,"epoch":0}\n\n{"step":2,"loss":null}\n{"step":3,"loss":0.25}\n', 'log'), [{ step: 1, loss: 0.5, epoch: 0 }, { step: 3, loss: 0.25 }]);
  assert.throws(() => parseLossLog('{"step":1,"loss":0.5}\n{oops\n', 'runs/x/log.jsonl'), /runs\/x\/log.jsonl line 2 is not JSON/);
  assert.deepEqual(movingAverage([1, 2, 3, 4, 10], 3), [1, 2, 3, 17 / 3, 10]);
  assert.throws(() => movingAverage([1], 2), /odd positive integer/);
});

test('reverse helpers: rows include both ends, hconcat lays images side by side, sampler settings parse', () => {
  assert.deepEqual(reverseRows(150, 10)[0], 0);
  assert.equal(reverseRows(150, 10).at(-1), 149);
  assert.deepEqual(reverseRows(3, 10), [0, 1, 2]);
  const a = { width: 2, height: 2, channels: 1 as const, data: Uint8Array.from([1, 2, 3, 4]) };
  const b = { width: 1, height: 1, channels: 1 as const, data: Uint8Array.from([9]) };
  assert.deepEqual(hconcat([a, b], 1, 0), { width: 4, height: 2, channels: 1, data: Uint8Array.from([1, 2, 0, 9, 3, 4, 0, 0]) });
  assert.deepEqual(parseSamplerSettings('ddpm:10, ddim:5,dpmpp2m', 10), [{ sampler: 'ddpm', steps: 10 }, { sampler: 'ddim', steps: 5 }, { sampler: 'dpmpp2m', steps: 10 }]);
  assert.throws(() => parseSamplerSettings('ddim:0', 10), /steps must lie in 1\.\.10/);
  assert.throws(() => parseSamplerSettings('euler:5', 10), /"euler:5" is not sampler\[:steps\]/);
});

test('guidance sweep: every column of a row starts from the same x_T and draws the same sampler noise', () => {
  const d = new Diffusion(makeSchedule({ kind: 'linear', T: 10, betaStart: 1e-3, betaEnd: 0.2 }));
  // A toy conditional "network": the class row shifts the output, so guidance changes it.
  const model = (x: Tensor, _t: Tensor, c: Tensor | null): Tensor => (c ? x.mul(0.3).add(c.sum([1]).reshape([-1, 1, 1, 1]).mul(0.2)) : x.mul(0.3));
  const sweep = (weights: number[]): number[][] => {
    const v = guidanceSweep({ model, diffusion: d, objective: 'eps', numClasses: 2, sampler: 'ddpm', steps: 10, shape: [1, 2, 2], classes: [0, 1], weights, seed: 4 });
    return Array.from({ length: v.length / 4 }, (_, i) => Array.from(v.subarray(4 * i, 4 * i + 4)));
  };
  const [r0c0, r0c1, r1c0, r1c1] = sweep([1, 1]);
  assert.deepEqual(r0c0, r0c1, 'the same w in one row gives the same image: same x_T, same sampler noise');
  assert.deepEqual(r1c0, r1c1);
  assert.notDeepEqual(r0c0, r1c0, 'rows have their own x_T');
  const [a, b] = sweep([0, 3]);
  assert.notDeepEqual(a, b, 'different w, different image');
  d.dispose();
});

test('ddpm viz schedules and loss write SVG charts', () => {
  const s = path.join(work, 's.svg');
  const r1 = ddpm('viz', 'schedules', '--out', s, '--timesteps', '50');
  assert.equal(r1.code, 0, r1.err);
  assert.deepEqual(marks(readFileSync(s, 'utf8'), 'line'), { concat_0_marks: 5, concat_1_marks: 5, concat_2_marks: 5 });
  const l = path.join(work, 'l.svg');
  const r2 = ddpm('viz', 'loss', '--run', uncond, '--out', l);
  assert.equal(r2.code, 0, r2.err);
  assert.deepEqual(marks(readFileSync(l, 'utf8'), 'line'), { layer_0_marks: 2 });
  assert.match(ddpm('viz', 'schedules', '--out', path.join(work, 's.pdf')).err, /--out .*s\.pdf: the file must end in \.svg or \.png, got "\.pdf"/);
  assert.match(ddpm('viz', 'loss', '--run', path.join(work, 'nope'), '--out', l).err, /nope has no log\.jsonl/);
  assert.match(ddpm('viz', 'loss', '--run', uncond, '--out', l, '--smooth', '4').err, /--smooth must be an odd positive integer/);
});

test('ddpm viz reverse: rows of x_t | x0_hat in the PNG, one GIF frame per step of the asked size', () => {
  const png = path.join(work, 'rev.png');
  const gif = path.join(work, 'rev.gif');
  const r = ddpm('viz', 'reverse', '--run', uncond, '--out', png, '--gif', gif, '-n', '2', '--steps', '10', '--rows', '4', '--scale', '2', '--seed', '3');
  assert.equal(r.code, 0, r.err);
  // Each block: 2 images of 16 px with 2 px padding = 38 px wide; 4 rows = 74 px high; x2, and a 8 px gap between the blocks.
  const p = decodePng(readFileSync(png), png);
  assert.deepEqual([p.width, p.height, p.channels], [2 * 38 * 2 + 8, 74 * 2, 1]);
  assert.match(r.err, /rows top to bottom at t = 9, \d, \d, 0/);
  const bytes = readFileSync(gif);
  assert.equal(bytes.subarray(0, 6).toString('latin1'), 'GIF89a');
  assert.deepEqual([bytes.readUInt16LE(6), bytes.readUInt16LE(8)], [2 * 38 * 2 + 8, 20 * 2]);
  assert.equal(gifFrames(bytes), 10, 'one frame per step');
  // The same seed gives the same pictures.
  const again = path.join(work, 'rev2.png');
  assert.equal(ddpm('viz', 'reverse', '--run', uncond, '--out', again, '-n', '2', '--steps', '10', '--rows', '4', '--scale', '2', '--seed', '3').code, 0);
  assert.deepEqual(readFileSync(again), readFileSync(png));
  assert.match(ddpm('viz', 'reverse', '--run', uncond, '--out', png, '--class', '1').err, /--class needs a class-conditional run/);
  assert.match(ddpm('viz', 'reverse', '--run', uncond, '--out', png, '--steps', '11').err, /--steps: the number of steps must be an integer in \[1, T = 10\], got 11/);
  assert.match(ddpm('viz', 'reverse', '--run', uncond, '--out', png, '--gif', path.join(work, 'x.png')).err, /--gif .*x\.png: the file must end in \.gif/);
  assert.match(ddpm('viz', 'reverse', '--run', uncond, '--out', png, '--sampler', 'ddpm', '--eta', '0.5').err, /--eta applies to --sampler ddim only/);
});

/** Image descriptors (0x2C) of a GIF, walking the block structure (GIF89a spec, section 20). */
function gifFrames(b: Buffer): number {
  let p = 13;
  if (b[10]! & 0x80) p += 3 * (2 << (b[10]! & 7));
  const skipSubBlocks = (): void => { while (b[p] !== 0) p += 1 + b[p]!; p++; };
  let frames = 0;
  for (;;) {
    const tag = b[p++];
    if (tag === 0x3b) return frames;
    if (tag === 0x21) { p++; skipSubBlocks(); continue; }
    assert.equal(tag, 0x2c, `unexpected block 0x${tag?.toString(16)} at ${p - 1}`);
    const flags = b[p + 8]!;
    p += 9;
    if (flags & 0x80) p += 3 * (2 << (flags & 7));
    p++; // LZW minimum code size
    skipSubBlocks();
    frames++;
  }
}

test('ddpm viz guidance: a classes x weights grid; refused for an unconditional run and for non-numbers', () => {
  const out = path.join(work, 'guid.png');
  const r = ddpm('viz', 'guidance', '--run', cond, '--out', out, '--weights', '-1,0,2', '--sampler', 'ddim', '--steps', '3', '--scale', '1');
  assert.equal(r.code, 0, r.err);
  // 3 classes (rows) x 3 weights (columns) of 16 px with 2 px padding: 3 * 18 + 2 = 56.
  const p = decodePng(readFileSync(out), out);
  assert.deepEqual([p.width, p.height], [56, 56]);
  assert.match(r.err, /3 rows \(classes 0, 1, 2\) x 3 columns \(w = -1, 0, 2\)/);
  const two = ddpm('viz', 'guidance', '--run', cond, '--out', out, '--classes', '2', '--weights', '0,1,2,3', '--steps', '3', '--scale', '1');
  assert.equal(two.code, 0, two.err);
  const row = decodePng(readFileSync(out), out);
  assert.deepEqual([row.width, row.height], [4 * 18 + 2, 18 + 2]);
  assert.match(ddpm('viz', 'guidance', '--run', uncond, '--out', out).err, /trained without classes, and classifier-free guidance needs a class-conditional run/);
  assert.match(ddpm('viz', 'guidance', '--run', cond, '--out', out, '--weights', '1,two').err, /--weights must be a comma-separated list of numbers .* "two" in "1,two" is not a number/);
  assert.match(ddpm('viz', 'guidance', '--run', cond, '--out', out, '--classes', '5').err, /class 5 is outside the run's classes 0\.\.2/);
  assert.match(ddpm('viz', 'guidance', '--run', cond, '--out', out, '--steps', '20').err, /--steps: the number of steps must be an integer in \[1, T = 10\], got 20/);
});

test('ddpm viz samplers: one row per setting from the same x_T, labelled on stderr', () => {
  const out = path.join(work, 'samplers.png');
  const r = ddpm('viz', 'samplers', '--run', uncond, '--out', out, '-n', '3', '--settings', 'ddpm:10,ddim:5,dpmpp2m:4', '--scale', '1');
  assert.equal(r.code, 0, r.err);
  const p = decodePng(readFileSync(out), out);
  assert.deepEqual([p.width, p.height], [3 * 18 + 2, 3 * 18 + 2]);
  assert.match(r.err, /row 1: DDPM 10 steps\n {2}row 2: DDIM 5 steps\n {2}row 3: DPM-Solver\+\+\(2M\) 4 steps/);
  const d = ddpm('viz', 'samplers', '--run', cond, '--out', out, '-n', '2', '--scale', '1');
  assert.equal(d.code, 0, d.err);
  assert.equal(decodePng(readFileSync(out), out).height, 5 * 18 + 2, 'five default rows');
  assert.match(d.err, /row 1: DDPM 10 steps[\s\S]*row 5: DPM-Solver\+\+\(2M\) 10 steps/);
  assert.match(ddpm('viz', 'samplers', '--run', uncond, '--out', out, '--settings', 'ddim:50').err, /steps must lie in 1\.\.10/);
});

test('ddpm eval --nll and --loss-by-t on test images', { skip: !hasData && 'Fashion-MNIST not installed' }, () => {
  const json = path.join(work, 'nll.json');
  const r = ddpm('eval', '--nll', '--run', uncond, '-n', '6', '--batch-size', '4', '--json', json);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /NLL <= \d+\.\d{4} bits\/dim/);
  const j = JSON.parse(readFileSync(json, 'utf8')) as { bpd: number; terms: { vb: number[]; prior: number }; images: number; variance: string };
  assert.ok(Number.isFinite(j.bpd) && j.bpd > 0);
  assert.equal(j.terms.vb.length, 10);
  assert.equal(j.images, 6);
  assert.equal(j.variance, 'notebook', "the run's samples.variance by default");
  const total = j.terms.prior + j.terms.vb.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total - j.bpd) < 1e-9, 'bpd = prior + sum of terms');
  assert.match(ddpm('eval', '--nll', '--run', uncond, '--variance', 'wide').err, /--variance must be one of notebook, beta, posterior/);
  const svg = path.join(work, 'lbt.svg');
  const lj = path.join(work, 'lbt.json');
  const l = ddpm('eval', '--loss-by-t', '--run', uncond, '-n', '4', '--out', svg, '--json', lj);
  assert.equal(l.code, 0, l.err);
  assert.deepEqual(marks(readFileSync(svg, 'utf8'), 'line'), { layer_0_marks: 1 });
  assert.equal((JSON.parse(readFileSync(lj, 'utf8')) as { t: number[] }).t.length, 10);
  assert.match(ddpm('eval', '--loss-by-t', '--run', uncond, '--out', svg, '--points', '11').err, /--points 11 exceeds the run's T = 10/);
});
