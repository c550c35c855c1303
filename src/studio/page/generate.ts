// Generate view: POST /api/generate, then the reverse process frame by frame from the job's events
// (x_t beside the predicted x0, step, t, sigma), a slider over the received frames, and downloads of
// the final grid (PNG) and the trajectory (GIF). With "in this browser" on, the same settings run
// here instead, on onnxruntime-web with the exported page's code (in-browser.ts).
import type { GenerateFrame, GenerateRequest, JobInfo, RunDetail, RunSummary } from '../protocol.js';
import { api, guard, subscribe, urls, type JobEvents } from './api.js';
import { FASHION_MNIST_CLASSES, lazyView, type Context, type View } from './context.js';
import { facts, field, fill, fmt, h, numberInput, numberOf, select } from './dom.js';
import { generateInBrowser } from './in-browser.js';
import { describeThrown } from '../../web/page/thrown.js';

export function createGenerateView(ctx: Context): View {
  const L = ctx.options.limits;
  const runSel = h('select', { name: 'run', testid: 'gen-run' });
  const ckptSel = h('select', { name: 'checkpoint', testid: 'gen-checkpoint' });
  // The sampler, steps and eta start from the run's own defaults, served with the run (RunDetail.sampling).
  const samplerSel = select('sampler', 'gen-sampler', ctx.options.samplers, ctx.options.samplers[0]);
  const steps = numberInput('steps', 'gen-steps', { min: 1, step: 1 });
  const eta = numberInput('eta', 'gen-eta', { min: 0, max: 1, step: 'any', value: 0 });
  const guidance = numberInput('guidance', 'gen-guidance', { min: 0, max: L.maxGuidance, step: 'any', value: 3 });
  const classSel = h('select', { name: 'class', testid: 'gen-class' });
  const seed = numberInput('seed', 'gen-seed', { min: 0, max: L.maxSeed, step: 1, value: 0 });
  const count = numberInput('count', 'gen-count', { min: 1, max: L.maxCount, step: 1, value: 16 });
  // Interpolation in DDIM's latent space: frames from Seed's x_T to this seed's; the slider moves between them.
  const interpolateTo = numberInput('interpolateTo', 'gen-interpolate-to', { min: 0, max: L.maxSeed, step: 1 });
  const etaRow = field('eta (DDIM noise)', eta, '0: deterministic, 1: DDPM-like');
  const guidanceRow = field('Guidance weight', guidance, 'classifier-free; 0: none');
  const classRow = field('Class', classSel);
  // Classifier guidance (Dhariwal & Nichol 2021): a classifier run trained for the chosen run, and its scale.
  const clfSel = h('select', { name: 'classifier', testid: 'gen-classifier' });
  const clfScale = numberInput('classifierScale', 'gen-classifier-scale', { min: 0, max: L.maxGuidance, step: 'any', value: 1 });
  const clfRow = field('Classifier', clfSel, 'classifier guidance: a run of ddpm train-classifier for this run (server only)');
  const clfScaleRow = field('Classifier scale', clfScale, 's in eps − s √(1 − ᾱ) ∇ log p(y | x_t)');
  const inBrowser = h('input', { type: 'checkbox', name: 'inBrowser', testid: 'gen-in-browser' });
  const go = h('button', { type: 'submit', class: 'primary', testid: 'gen-start' }, 'Generate');
  const form = h('form', { class: 'card form', testid: 'gen-form' },
    h('h2', {}, 'Sample from a run'),
    h('div', { class: 'grid-form' },
      field('Run', runSel), field('Checkpoint', ckptSel), field('Sampler', samplerSel),
      field('Steps', steps, 'model evaluations K ≤ T'), etaRow, guidanceRow, clfRow, clfScaleRow, classRow,
      field('Seed', seed), field('Count', count, `at most ${L.maxCount}`),
      field('Interpolate to seed', interpolateTo, 'empty: off; else Count frames along the slerp between the two seeds\' noise, DDIM eta 0'),
      field('In this browser', inBrowser, 'ONNX Runtime Web on an ONNX export of the checkpoint, as ddpm export --web; no server worker')),
    h('div', { class: 'actions' }, go));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); guard(start); });

  const img = {
    xt: h('img', { class: 'px frame', testid: 'gen-xt', alt: 'x_t' }),
    x0: h('img', { class: 'px frame', testid: 'gen-x0', alt: 'predicted x0' }),
  };
  const info = {
    state: h('span', { class: 'badge', testid: 'gen-state' }, 'idle'),
    step: h('span', { testid: 'gen-step' }, '–'),
    t: h('span', { testid: 'gen-t' }, '–'),
    sigma: h('span', { testid: 'gen-sigma' }, '–'),
    frames: h('span', { testid: 'gen-frames' }, '0 frames'),
    engine: h('span', { testid: 'gen-engine' }, '–'),
  };
  // An interpolation's frames are x_T on the path beside the image DDIM makes of it.
  const caption = { xt: h('figcaption', { testid: 'gen-xt-caption' }), x0: h('figcaption', { testid: 'gen-x0-caption' }) };
  function setCaptions(interpolation: boolean): void {
    fill(caption.xt, 'x', h('sub', {}, interpolation ? 'T' : 't'), interpolation ? ' on the path between the seeds' : ' (fed to the step)');
    fill(caption.x0, interpolation ? 'its image x' : 'predicted x', h('sub', {}, '0'), interpolation ? ' (DDIM, eta 0)' : '');
  }
  setCaptions(false);
  const scrub = h('input', { type: 'range', testid: 'gen-scrub', min: 0, max: 0, value: 0, step: 1, disabled: true });
  const result = h('div', { class: 'result', testid: 'gen-result' });
  const panel = h('section', { class: 'card', testid: 'gen-output' },
    h('div', { class: 'detail-head' }, h('h2', {}, 'Reverse process'), info.state),
    facts(null, ['step', info.step], ['t → t_prev', info.t], ['σ', info.sigma], ['received', info.frames], ['runs on', info.engine]),
    h('div', { class: 'frames' }, h('figure', {}, img.xt, caption.xt), h('figure', {}, img.x0, caption.x0)),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Scrub the received frames'), scrub),
    result);
  const el = h('div', { class: 'two-col wide-right' }, form, panel);

  let runs: RunSummary[] = [];
  let classifiers: RunSummary[] = [];
  let detail: RunDetail | null = null;
  let frames: GenerateFrame[] = [];
  let following = true;
  let closeEvents: (() => void) | null = null;

  async function loadRuns(want?: string): Promise<void> {
    const all = (await api.runs()).filter((r) => r.checkpointCount > 0);
    runs = all.filter((r) => r.classifierOf === null);
    classifiers = all.filter((r) => r.classifierOf !== null);
    const keep = want ?? runSel.value;
    fill(runSel, ...runs.map((r) => h('option', { value: r.name }, r.name)));
    if (!runs.length) runSel.append(h('option', { value: '' }, 'no run with a checkpoint yet'));
    if (runs.some((r) => r.name === keep)) runSel.value = keep;
    await loadRun();
  }

  async function loadRun(): Promise<void> {
    const name = runSel.value;
    detail = name ? await api.run(name) : null;
    if (detail?.name !== runSel.value) return;
    const ckpts = detail ? [...detail.checkpoints].sort((a, b) => b.step - a.step) : [];
    fill(ckptSel, h('option', { value: '' }, 'latest'), ...ckpts.map((c) => h('option', { value: c.name }, `${c.name}${c.hasEma ? ' (EMA)' : ''}`)));
    const mine = classifiers.filter((r) => r.classifierOf === name);
    fill(clfSel, h('option', { value: '' }, 'none'), ...mine.map((r) => h('option', { value: r.name }, r.name)));
    // An unconditional run guided by a classifier takes the classifier's classes (Fashion-MNIST's ten).
    const classes = detail?.classConditional ? numClasses(detail) : mine.length > 0 ? FASHION_MNIST_CLASSES.length : 0;
    const names = classNames(detail, classes);
    fill(classSel, h('option', { value: '' }, 'each class in turn (one column each)'), ...names.map((n, k) => h('option', { value: k }, `${k}: ${n}`)));
    if (detail) samplerSel.value = detail.sampling.own;
    updateFields(true);
  }

  function updateFields(resetSteps: boolean): void {
    const T = detail?.timesteps ?? 1000;
    steps.max = String(Math.min(T, L.maxSteps));
    const d = detail?.sampling.bySampler[samplerSel.value];
    if (d && (resetSteps || !steps.value)) steps.value = String(Math.min(d.steps, L.maxSteps));
    if (d?.eta != null && resetSteps) eta.value = String(d.eta);
    etaRow.hidden = samplerSel.value !== 'ddim';
    const cond = detail?.classConditional ?? false;
    guidanceRow.hidden = !cond;
    clfRow.hidden = clfSel.options.length < 2;
    clfScaleRow.hidden = !clfSel.value;
    classRow.hidden = !cond && !clfSel.value;
  }

  runSel.addEventListener('change', () => guard(loadRun));
  clfSel.addEventListener('change', () => updateFields(false));
  samplerSel.addEventListener('change', () => updateFields(true));
  // Only DDIM with eta 0 maps nearby latents to nearby images; the server refuses anything else.
  interpolateTo.addEventListener('change', () => {
    if (interpolateTo.value === '' || samplerSel.value === 'ddim') return;
    samplerSel.value = 'ddim';
    updateFields(true);
  });

  async function start(): Promise<void> {
    if (!detail) return;
    const req: GenerateRequest = { run: detail.name, sampler: samplerSel.value, count: numberOf(count) ?? 16 };
    if (ckptSel.value) req.checkpoint = ckptSel.value;
    const k = numberOf(steps);
    if (k !== undefined) req.steps = k;
    if (!etaRow.hidden) req.eta = numberOf(eta) ?? 0;
    if (!guidanceRow.hidden) req.guidance = numberOf(guidance) ?? 0;
    if (!classRow.hidden && classSel.value) req.class = Number(classSel.value);
    if (clfSel.value) {
      req.classifier = clfSel.value;
      req.classifierScale = numberOf(clfScale) ?? 1;
    }
    const s = numberOf(seed);
    if (s !== undefined) req.seed = s;
    const to = numberOf(interpolateTo);
    if (to !== undefined) req.interpolateTo = to;
    if (to !== undefined && inBrowser.checked) throw new Error('interpolation runs on the server (libtorch, whose generator the seeds name); untick "In this browser" or clear "Interpolate to seed"');
    go.disabled = true;
    if (inBrowser.checked) {
      await startInBrowser(req);
      return;
    }
    try {
      attach(await api.generate(req));
    } catch (err) {
      go.disabled = false;
      throw err;
    }
  }

  async function startInBrowser(req: GenerateRequest): Promise<void> {
    resetFrames();
    closeEvents = null;
    setState('running');
    info.engine.textContent = 'this browser (loading the model)';
    try {
      const r = await generateInBrowser({ ...req, seed: req.seed ?? 0 }, addFrame);
      info.engine.textContent = `this browser, ${r.backend}, ${r.seconds.toFixed(2)} s`;
      setState('done');
      fill(result,
        h('figure', {}, h('img', { class: 'px grid', testid: 'gen-grid', src: r.grid, alt: 'final samples' }), h('figcaption', {}, 'final samples')),
        h('div', { class: 'actions' }, h('a', { class: 'button', testid: 'gen-download-png', href: r.grid, download: `${req.run}-samples.png` }, 'Download grid (PNG)')));
    } catch (err) {
      setState('failed', describeThrown(err));
      throw err;
    } finally {
      go.disabled = false;
    }
  }

  function resetFrames(): void {
    closeEvents?.();
    frames = [];
    following = true;
    scrub.disabled = true;
    scrub.max = '0';
    info.frames.textContent = '0 frames';
    img.xt.removeAttribute('src');
    img.x0.removeAttribute('src');
    fill(result);
  }

  function attach(job: JobInfo): void {
    resetFrames();
    info.engine.textContent = 'the server (libtorch)';
    showState(job);
    closeEvents = subscribe<JobEvents>(`/api/jobs/${encodeURIComponent(job.id)}/events`, {
      progress: (p) => { if (p.kind === 'generate' && 'xt' in p) addFrame(p); },
      done: (j) => finish(j),
      error: () => guard(async () => finish(await api.job(job.id))),
    }, ['done', 'error']);
  }

  function addFrame(f: GenerateFrame): void {
    frames.push(f);
    scrub.max = String(frames.length - 1);
    scrub.disabled = frames.length < 2;
    info.frames.textContent = `${frames.length} frame${frames.length === 1 ? '' : 's'}`;
    if (following) {
      scrub.value = String(frames.length - 1);
      showFrame(frames.length - 1);
    }
  }

  scrub.addEventListener('input', () => {
    const i = Number(scrub.value);
    following = i === frames.length - 1;
    showFrame(i);
  });

  function showFrame(i: number): void {
    const f = frames[i];
    if (!f) return;
    img.xt.src = f.xt;
    img.x0.src = f.x0;
    setCaptions(f.alpha !== undefined);
    info.step.textContent = f.alpha !== undefined ? `frame ${f.index + 1} / ${f.steps}, alpha ${fmt(f.alpha)}` : `${f.index + 1} / ${f.steps}`;
    info.t.textContent = `${f.t} → ${f.tPrev < 0 ? 'x₀' : f.tPrev}`;
    info.sigma.textContent = fmt(f.sigma);
  }

  function finish(job: JobInfo): void {
    showState(job);
    go.disabled = false;
    if (job.state !== 'done') return;
    fill(result,
      h('figure', {}, h('img', { class: 'px grid', testid: 'gen-grid', src: urls.grid(job.id), alt: 'final samples' }), h('figcaption', {}, 'final samples')),
      h('div', { class: 'actions' },
        h('a', { class: 'button', testid: 'gen-download-png', href: urls.grid(job.id), download: `${job.run}-samples.png` }, 'Download grid (PNG)'),
        h('a', { class: 'button', testid: 'gen-download-gif', href: urls.trajectory(job.id), download: `${job.run}-trajectory.gif` }, 'Download trajectory (GIF)')));
  }

  function showState(job: JobInfo): void {
    setState(job.state, job.error);
  }

  function setState(state: string, error?: string): void {
    info.state.textContent = state;
    info.state.className = `badge state-${state}`;
    if (error) info.state.title = error;
  }

  ctx.onRunsChanged(() => guard(() => loadRuns()));
  return lazyView(el, loadRuns);
}

function numClasses(run: RunDetail | null): number {
  const model = (run?.config as { model?: { numClasses?: unknown } } | undefined)?.model;
  return typeof model?.numClasses === 'number' ? model.numClasses : 0;
}

function classNames(run: RunDetail | null, n: number): string[] {
  const dataset = (run?.config as { train?: { dataset?: unknown } } | undefined)?.train?.dataset;
  if (n === FASHION_MNIST_CLASSES.length && dataset !== 'folder') return [...FASHION_MNIST_CLASSES];
  return Array.from({ length: n }, (_, k) => `class ${k}`);
}
