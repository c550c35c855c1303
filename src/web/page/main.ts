// The exported page (`ddpm export --web DIR`): loads model.onnx beside it, reads the run config from
// its metadata, and runs the samplers of src/samplers on onnxruntime-web: WebGPU when the browser
// has it, else WASM, with threads where the page is cross-origin isolated (SharedArrayBuffer needs
// it). The reverse process is drawn step by step (x_t beside x0_hat), the finished grid becomes
// <img id="result"> and a PNG download. Settings live in the URL query
// (?sampler=ddim&steps=10&seed=3&n=4&class=2&guidance=1.5, &backend=wasm, &autostart=1), so a link
// reproduces a generation. Everything it loads sits in the folder: no CDN, nothing from elsewhere.
import { readOnnxMetadata, onnxModelInfo, sampleOnnx, type OnnxModelInfo, type OrtSessionLike } from '../../samplers/onnx-model.js';
import { SAMPLERS, type SamplerName } from '../../samplers/sample.js';
import { samplerDefaults, type SamplerDefaults } from '../../samplers/options.js';
import { runSampling } from '../../train/run-reading.js';
import type { RunConfig } from '../../train/config.js';
import type { HostArray } from '../../samplers/host-array.js';
import type { StepResult } from '../../samplers/step.js';
import { makeGrid } from '../../viz/grid.js';
import { OrtTensor, createSession, drawImage8 as draw, image8DataUrl, paintingBetweenCalls } from './ort-session.js';
import { describeThrown } from './thrown.js';

/** The downloaded grid is upscaled as `ddpm sample --grid` does by default (--scale 4). */
const RESULT_SCALE = 4;
const MAX_IMAGES = 64;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page: #${id} is missing from index.html`);
  return el as T;
};
const form = $<HTMLFormElement>('settings');
const el = {
  sampler: $<HTMLSelectElement>('sampler'), steps: $<HTMLInputElement>('steps'), seed: $<HTMLInputElement>('seed'),
  n: $<HTMLInputElement>('n'), cls: $<HTMLSelectElement>('class'), guidance: $<HTMLInputElement>('guidance'),
  go: $<HTMLButtonElement>('generate'), backend: $('backend'), step: $('step'), stepMs: $('step-ms'), meanMs: $('mean-ms'),
  t: $('t'), error: $('error'), facts: $('model-facts'), xt: $<HTMLCanvasElement>('xt'), x0: $<HTMLCanvasElement>('x0'),
  resultBox: $('result-box'), result: $<HTMLImageElement>('result'), download: $<HTMLAnchorElement>('download'),
};

function setState(state: 'loading' | 'ready' | 'running' | 'done' | 'error'): void { document.body.dataset['state'] = state; }

function fail(e: unknown): void {
  console.error(e);
  el.error.textContent = describeThrown(e);
  setState('error');
  el.go.disabled = false;
}

/**
 * A sampler's defaults for the exported run, as `ddpm sample --model` fills them in: with no sampler
 * named, the run's own (a distilled student: DDIM at its step count; dli02: DDPM over all 150 steps).
 */
function defaultsOf(info: OnnxModelInfo, sampler?: SamplerName): SamplerDefaults {
  return samplerDefaults(runSampling(info.config as RunConfig), sampler);
}

interface Settings { sampler: SamplerName; steps: number; seed: number; n: number; cls: number | null; guidance: number }

/** The settings in the form, checked; the samplers' own validation runs after this (sampleOnnx). */
function readSettings(info: OnnxModelInfo): Settings {
  const int = (input: HTMLInputElement, what: string, lo: number, hi: number): number => {
    const v = Number(input.value);
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${what} must be an integer in [${lo}, ${hi}], got ${JSON.stringify(input.value)}`);
    return v;
  };
  const sampler = el.sampler.value as SamplerName;
  if (!(SAMPLERS as readonly string[]).includes(sampler)) throw new Error(`sampler must be one of ${SAMPLERS.join(', ')}, got ${JSON.stringify(sampler)}`);
  const guidance = info.numClasses > 0 ? Number(el.guidance.value) : 0;
  if (!Number.isFinite(guidance)) throw new Error(`guidance must be a number, got ${JSON.stringify(el.guidance.value)}`);
  return {
    sampler, steps: int(el.steps, 'steps', 1, info.terms.T), seed: int(el.seed, 'seed', 0, Number.MAX_SAFE_INTEGER), n: int(el.n, 'images', 1, MAX_IMAGES),
    cls: info.numClasses > 0 && el.cls.value !== 'all' ? Number(el.cls.value) : null, guidance,
  };
}

/** The form's values back into the URL, so the address reproduces this generation. */
function writeQuery(s: Settings): void {
  const q = new URLSearchParams(location.search);
  q.set('sampler', s.sampler); q.set('steps', String(s.steps)); q.set('seed', String(s.seed)); q.set('n', String(s.n));
  if (s.cls !== null) q.set('class', String(s.cls)); else q.delete('class');
  if (s.guidance !== 0) q.set('guidance', String(s.guidance)); else q.delete('guidance');
  q.delete('autostart');
  history.replaceState(null, '', `${location.pathname}?${q.toString()}`);
}

async function generate(session: OrtSessionLike, info: OnnxModelInfo): Promise<void> {
  const s = readSettings(info);
  writeQuery(s);
  setState('running');
  el.go.disabled = true;
  el.error.textContent = '';
  el.resultBox.hidden = true;
  const { channels: c, imageSize: size, numClasses: K } = info;
  const labels = K > 0 ? Array.from({ length: s.n }, (_, i) => s.cls ?? i % K) : undefined;
  const nrow = K > 0 && s.cls === null ? Math.min(s.n, K) : Math.ceil(Math.sqrt(s.n));
  const display = Math.max(1, Math.round(256 / (nrow * (size + 2))));
  const stepMs: number[] = [];
  let last = performance.now();
  let modelMs = 0;
  const onStep = (st: StepResult<HostArray>): void => {
    const now = performance.now();
    stepMs.push(now - last);
    last = now;
    draw(el.xt, makeGrid(st.x.data, s.n, c, size, size, { nrow }), display);
    draw(el.x0, makeGrid(st.x0.data, s.n, c, size, size, { nrow }), display);
    el.step.textContent = `${st.index + 1} / ${st.steps}`;
    el.t.textContent = st.tPrev < 0 ? 'the clean image' : `t = ${st.tPrev}`;
    el.stepMs.textContent = `${stepMs[stepMs.length - 1]!.toFixed(1)} ms (model ${modelMs.toFixed(1)} ms)`;
    el.meanMs.textContent = `${(stepMs.reduce((a, b) => a + b, 0) / stepMs.length).toFixed(1)} ms`;
    document.body.dataset['step'] = String(st.index + 1);
    modelMs = 0;
  };
  // The sampler's other settings as `ddpm sample --model` takes them: the run's own where it is the run's sampler.
  const def = defaultsOf(info, s.sampler);
  const t0 = performance.now();
  const x = await sampleOnnx(paintingBetweenCalls(session), OrtTensor, info, {
    n: s.n, seed: s.seed, sampler: s.sampler, steps: s.steps, x0Processing: def.x0Processing,
    ...(def.spacing !== null ? { spacing: def.spacing } : {}),
    ...(def.variance !== null ? { variance: def.variance } : {}),
    ...(s.sampler === 'pc' ? { correctorSteps: def.correctorSteps!, snr: def.snr! } : {}),
    ...(labels ? { labels, guidance: s.guidance } : {}),
    onStep, onModelCall: (ms) => { modelMs += ms; },
  });
  const seconds = (performance.now() - t0) / 1000;
  if (!x.data.every(Number.isFinite)) throw new Error('the samples have NaN or infinite values; the model has diverged');
  const grid = makeGrid(x.data, s.n, c, size, size, { nrow, scale: RESULT_SCALE });
  const url = image8DataUrl(grid);
  el.result.src = url;
  el.download.href = url;
  el.resultBox.hidden = false;
  document.body.dataset['stepMsMean'] = (stepMs.reduce((a, b) => a + b, 0) / stepMs.length).toFixed(2);
  await el.result.decode();
  // The whole reverse process, frames included, and the count of finished runs: what the browser
  // benchmark (bench/web.ts) reads. Both change in the same task as the state, so a script that sees
  // a new count also sees 'done' and this run's time.
  document.body.dataset['seconds'] = seconds.toFixed(4);
  document.body.dataset['runs'] = String(Number(document.body.dataset['runs'] ?? 0) + 1);
  setState('done');
  el.go.disabled = false;
}

async function main(): Promise<void> {
  setState('loading');
  const q = new URLSearchParams(location.search);
  const response = await fetch('model.onnx');
  if (!response.ok) throw new Error(`could not load model.onnx beside this page (HTTP ${response.status}); serve the folder that ddpm export --web wrote`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const info = onnxModelInfo(readOnnxMetadata(bytes, 'model.onnx'), 'model.onnx');
  const meta = info.metadata;
  el.facts.textContent = [`${meta['preset'] ?? info.config.model.preset} model`, `${info.channels}×${info.imageSize}×${info.imageSize}`,
    `T = ${info.terms.T}`, `predicts ${info.objective}`, info.numClasses ? `${info.numClasses} classes` : 'unconditional',
    meta['checkpoint_step'] ? `checkpoint step ${meta['checkpoint_step']}` : '', `${(bytes.length / 1e6).toFixed(1)} MB`].filter(Boolean).join(' · ');
  if (info.numClasses > 0) {
    $('class-row').hidden = false;
    $('guidance-row').hidden = false;
    el.cls.append(new Option('each class in turn', 'all'), ...Array.from({ length: info.numClasses }, (_, k) => new Option(`class ${k}`, String(k))));
  }
  // The query's settings, else the run's own sampler and steps (as `ddpm sample --model`), and a
  // sampler chosen later brings its own default steps for this run.
  el.sampler.value = q.get('sampler') ?? defaultsOf(info).sampler;
  el.steps.value = q.get('steps') ?? String(defaultsOf(info, el.sampler.value as SamplerName).steps);
  el.sampler.addEventListener('change', () => { el.steps.value = String(defaultsOf(info, el.sampler.value as SamplerName).steps); });
  for (const [key, input] of [['seed', el.seed], ['n', el.n], ['guidance', el.guidance]] as const) if (q.has(key)) input.value = q.get(key)!;
  if (q.has('class')) el.cls.value = q.get('class')!;
  const { session, backend } = await createSession(bytes, q.get('backend'), new URL('ort/', location.href).href);
  el.backend.textContent = backend;
  document.body.dataset['backend'] = backend;
  form.addEventListener('submit', (ev) => { ev.preventDefault(); generate(session, info).catch(fail); });
  el.go.disabled = false;
  setState('ready');
  if (q.get('autostart') === '1') await generate(session, info);
}

main().catch(fail);
