// Line charts as SVG (and PNG): Vega-Lite specifications compiled to Vega and rendered headless by
// Vega's SVG string renderer, which needs no DOM and no canvas. PNG goes through resvg compiled to
// WebAssembly (@resvg/resvg-wasm): no native addon, no download; it needs one TrueType font file
// for the text, found on the machine (see findFont).
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { View, parse } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { initWasm, Resvg } from '@resvg/resvg-wasm';
import {
  type ScheduleConfig, makeSchedule, scheduleLength,
} from '../diffusion/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { LossByTResult } from '../eval/loss-by-t.js';

export type { TopLevelSpec } from 'vega-lite';
/** One layer of a layered chart. */
type UnitSpec = Extract<NonNullable<Extract<TopLevelSpec, { layer: unknown }>['layer']>[number], { mark: unknown }>;

const WIDTH = 300;
const HEIGHT = 220;

/** SVG text of a Vega-Lite chart (white background). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

let wasmReady: Promise<void> | null = null;
function resvgReady(): Promise<void> {
  if (!wasmReady) {
    const require = createRequire(import.meta.url);
    wasmReady = initWasm(readFileSync(require.resolve('@resvg/resvg-wasm/index_bg.wasm')));
  }
  return wasmReady;
}

/** Where a TrueType font is looked for: $DDPM_PLOT_FONT, then common system locations. */
export const FONT_CANDIDATES: readonly string[] = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', // Debian/Ubuntu fonts-dejavu-core
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf',
  '/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf',
  '/System/Library/Fonts/Supplemental/Arial.ttf',
  '/Library/Fonts/Arial.ttf',
  'C:\\Windows\\Fonts\\arial.ttf',
];

/** The font file for PNG text, or null when the machine has none of the candidates. */
export function findFont(env: NodeJS.ProcessEnv = process.env): string | null {
  const given = env.DDPM_PLOT_FONT;
  if (given) {
    if (!existsSync(given)) throw new Error(`DDPM_PLOT_FONT is ${given}, which does not exist; point it at a .ttf or .otf file, or unset it`);
    return given;
  }
  return FONT_CANDIDATES.find((f) => existsSync(f)) ?? null;
}

/** Rasterises SVG text to PNG bytes at `scale` times its size (resvg). */
export async function svgToPng(svg: string, o: { scale?: number; font?: string } = {}): Promise<Uint8Array> {
  const scale = o.scale ?? 2;
  if (!(scale > 0 && scale <= 8)) throw new Error(`svgToPng: scale must be in (0, 8], got ${scale}`);
  const font = o.font ?? findFont();
  if (!font) {
    throw new Error(`a PNG chart needs a TrueType font for its text, and none was found (looked in ${FONT_CANDIDATES.slice(0, 3).join(', ')}, ...); ` +
      'install one (Debian: apt-get install fonts-dejavu-core), set DDPM_PLOT_FONT=/path/to/font.ttf, or write the chart as .svg');
  }
  await resvgReady();
  // Vega asks for sans-serif; resvg falls back to the one loaded font for any family it lacks.
  const r = new Resvg(svg, { font: { fontBuffers: [readFileSync(font)], loadSystemFonts: false }, fitTo: { mode: 'zoom', value: scale }, background: 'white' });
  try {
    const img = r.render();
    try {
      return img.asPng();
    } finally {
      img.free();
    }
  } finally {
    r.free();
  }
}

/** Writes a chart as .svg or .png, chosen by the file's extension; returns the bytes written. */
export async function writeChart(file: string, spec: TopLevelSpec, o: { scale?: number } = {}): Promise<number> {
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.svg' && ext !== '.png') throw new Error(`chart file ${file}: the extension must be .svg or .png, got "${ext || '(none)'}"`);
  const svg = await renderSvg(spec);
  const bytes = ext === '.svg' ? Buffer.from(svg, 'utf8') : await svgToPng(svg, o);
  writeFileAtomic(file, bytes);
  return bytes.length;
}

// ------------------------------------------------------------------------------------- schedules

/** The schedules a learner compares (seeds/004 "noise schedules"), each at its usual settings. */
export function scheduleKinds(T: number): { name: string; config: ScheduleConfig }[] {
  return [
    { name: 'linear (1e-4 to 0.02)', config: { kind: 'linear', T, betaStart: 1e-4, betaEnd: 0.02 } },
    { name: 'scaled-linear (0.00085 to 0.012)', config: { kind: 'scaled-linear', T, betaStart: 0.00085, betaEnd: 0.012 } },
    { name: 'cosine (s = 0.008)', config: { kind: 'cosine', T, s: 0.008 } },
    { name: 'sigmoid (-3 to 3, tau 1)', config: { kind: 'sigmoid', T, start: -3, end: 3, tau: 1 } },
    { name: 'linear, zero terminal SNR', config: { kind: 'linear', T, betaStart: 1e-4, betaEnd: 0.02, zeroTerminalSnr: true } },
  ];
}

export interface ScheduleRow { schedule: string; t: number; beta: number; alphaBar: number; logSnr: number | null }

/** beta, alphabar and log-SNR per t of each schedule; a log-SNR of -infinity (zero terminal SNR) is null. */
export function scheduleRows(schedules: { name: string; config: ScheduleConfig }[]): ScheduleRow[] {
  return schedules.flatMap(({ name, config }) => {
    const s = makeSchedule(config);
    return Array.from({ length: scheduleLength(config) }, (_, t) => ({
      schedule: name, t, beta: s.beta[t]!, alphaBar: s.alphaBar[t]!, logSnr: Number.isFinite(s.logSnr[t]!) ? s.logSnr[t]! : null,
    }));
  });
}

/** Three panels side by side: beta_t (log axis), alphabar_t and log SNR(t) against t, one line per schedule. */
export function schedulesSpec(T: number, schedules = scheduleKinds(T)): TopLevelSpec {
  const rows = scheduleRows(schedules);
  const x = { field: 't', type: 'quantitative' as const, title: 'timestep t', scale: { domain: [0, T - 1], nice: false } };
  const names = schedules.map((s) => s.name);
  const color = { field: 'schedule', type: 'nominal' as const, title: 'schedule', sort: names, legend: { orient: 'bottom' as const, columns: 3, labelLimit: 0 } };
  // Dashed for zero terminal SNR, which matches its base schedule until the last steps.
  const strokeDash = { field: 'schedule', type: 'nominal' as const, title: 'schedule', sort: names, scale: { domain: names, range: schedules.map((s) => (s.config.zeroTerminalSnr ? [6, 3] : [1, 0])) }, legend: { orient: 'bottom' as const, columns: 3, labelLimit: 0 } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `Noise schedules at T = ${T}`, subtitle: 'zero terminal SNR: log SNR is -infinity at t = T-1 (not drawn)' },
    background: 'white',
    data: { values: rows },
    hconcat: [
      { width: WIDTH, height: HEIGHT, mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y: { field: 'beta', type: 'quantitative', title: 'β_t (log scale)', scale: { type: 'log' } }, color, strokeDash } },
      { width: WIDTH, height: HEIGHT, mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y: { field: 'alphaBar', type: 'quantitative', title: 'ᾱ_t (alpha-bar)', scale: { domain: [0, 1] } }, color, strokeDash } },
      { width: WIDTH, height: HEIGHT, mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y: { field: 'logSnr', type: 'quantitative', title: 'log SNR(t) = log(ᾱ_t / (1 - ᾱ_t))' }, color, strokeDash } },
    ],
  };
}

// ------------------------------------------------------------------------------------ loss curve

export interface LogRow { step: number; loss: number; epoch?: number }

/** The rows of a run's log.jsonl that carry a finite step and loss; a malformed line is refused with its number. */
const isJson = (line: string): boolean => {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
};

export function parseLossLog(text: string, source: string): LogRow[] {
  const rows: LogRow[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    // A last line without its newline is being written, or was torn by a killed run: not yet a record.
    if (i === lines.length - 1 && !isJson(line)) return;
    let o: { step?: unknown; loss?: unknown; epoch?: unknown };
    try {
      o = JSON.parse(line) as typeof o;
    } catch (e) {
      throw new Error(`${source} line ${i + 1} is not JSON (${(e as Error).message}); each line must be one JSON object`, { cause: e });
    }
    if (typeof o.step === 'number' && typeof o.loss === 'number' && Number.isFinite(o.loss)) {
      rows.push({ step: o.step, loss: o.loss, ...(typeof o.epoch === 'number' ? { epoch: o.epoch } : {}) });
    }
  });
  return rows;
}

/** Centred moving average over `window` points (odd; shrunk at the ends), so the smoothed curve does not lag the raw one. */
export function movingAverage(values: readonly number[], window: number): number[] {
  if (!Number.isInteger(window) || window < 1 || window % 2 === 0) throw new Error(`smoothing window must be an odd positive integer, got ${window}`);
  const half = (window - 1) / 2;
  const prefix = [0];
  for (const v of values) prefix.push(prefix[prefix.length - 1]! + v);
  return values.map((_, i) => {
    const k = Math.min(half, i, values.length - 1 - i);
    return (prefix[i + k + 1]! - prefix[i - k]!) / (2 * k + 1);
  });
}

/** The default smoothing window: about a twentieth of the points, odd, at least 1. */
export function defaultSmoothing(points: number): number { return 2 * Math.floor(points / 40) + 1; }

/** Loss against step: the logged means faint, their centred moving average solid, log y axis; dashed rules at epoch starts. */
export function lossCurveSpec(rows: readonly LogRow[], o: { smoothing?: number; title?: string } = {}): TopLevelSpec {
  if (rows.length === 0) throw new Error('loss curve: the log has no rows with a step and a finite loss');
  const w = o.smoothing ?? defaultSmoothing(rows.length);
  const smoothed = movingAverage(rows.map((r) => r.loss), w);
  const raw = 'logged loss';
  const ema = `smoothed (centred mean of ${w} points)`;
  const values = [
    ...rows.map((r) => ({ step: r.step, loss: r.loss, series: raw })),
    ...rows.map((r, i) => ({ step: r.step, loss: smoothed[i]!, series: ema })),
  ];
  const epochStarts = rows.filter((r, i) => i > 0 && r.epoch !== undefined && r.epoch !== rows[i - 1]!.epoch).map((r) => ({ step: r.step, epoch: r.epoch }));
  const lines: UnitSpec = {
    data: { values },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'training step', scale: { nice: false } },
      y: { field: 'loss', type: 'quantitative', title: 'training loss (log scale)', scale: { type: 'log', nice: false } },
      color: { field: 'series', type: 'nominal', title: null, scale: { domain: [raw, ema], range: ['#9ecae1', '#08519c'] }, legend: { orient: 'bottom', labelLimit: 0 } },
    },
  };
  const rules: UnitSpec = {
    data: { values: epochStarts },
    mark: { type: 'rule', strokeDash: [4, 4], color: '#999' },
    encoding: { x: { field: 'step', type: 'quantitative' } },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: o.title ?? 'Training loss', subtitle: epochStarts.length ? 'dashed: start of each epoch' : '' },
    background: 'white',
    width: 2 * WIDTH,
    height: HEIGHT,
    layer: epochStarts.length ? [lines, rules] : [lines],
  };
}

// ------------------------------------------------------------------------------------- loss by t

/** The run's loss and the eps-MSE against t (log y axis); one line when they are the same (eps objective, simple weighting). */
export function lossByTSpec(r: LossByTResult, o: { title?: string } = {}): TopLevelSpec {
  const same = r.objective === 'eps' && r.weighting === 'simple';
  const runLoss = same ? 'training loss = eps-MSE (eps objective, simple weighting)' : `training loss (${r.objective} objective, ${r.weighting}${r.weighting === 'min-snr' ? ` ${r.minSnrGamma}` : ''} weighting)`;
  const values = [
    ...r.t.map((t, i) => ({ t, value: r.loss[i]!, series: runLoss })),
    ...(same ? [] : r.t.map((t, i) => ({ t, value: r.epsMse[i]!, series: 'eps-MSE' }))),
  ].filter((v) => v.value > 0 && Number.isFinite(v.value)); // a log axis has no place for 0
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: o.title ?? 'Loss by timestep', subtitle: `mean over ${r.images} images, the same noise at every t (seed ${r.seed})` },
    background: 'white',
    width: 2 * WIDTH,
    height: HEIGHT,
    data: { values },
    mark: { type: 'line', strokeWidth: 1.5, point: r.t.length <= 30 },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'timestep t', scale: { nice: false } },
      y: { field: 'value', type: 'quantitative', title: 'loss (log scale)', scale: { type: 'log', nice: false } },
      color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 0 } },
      // Dashed eps-MSE: with min-SNR weighting the two curves coincide wherever SNR(t) < gamma.
      strokeDash: { field: 'series', type: 'nominal', title: null, scale: { domain: [runLoss, 'eps-MSE'], range: [[1, 0], [5, 3]] }, legend: { orient: 'bottom', labelLimit: 0 } },
    },
  };
}
