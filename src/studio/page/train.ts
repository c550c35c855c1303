// Train view: a form for POST /api/train (fields named as TrainRequest's keys, so a refused field is
// highlighted), then the job's live progress from /api/jobs/:id/events, its loss curve from the new
// run's log events (the same rows the Runs view plots), and Stop.
import type { JobInfo, Options, TrainProgress, TrainRequest } from '../protocol.js';
import { api, guard, subscribe, type JobEvents, type RunEvents } from './api.js';
import { LineChart, LossSeries } from './chart.js';
import type { Context, View } from './context.js';
import { duration, facts, field, fmt, h, numberInput, numberOf, select } from './dom.js';

export function createTrainView(ctx: Context): View {
  const o: Options = ctx.options;
  const L = o.limits;
  const presetSel = select('preset', 'train-preset', o.presets, o.presets.includes('dli02') ? 'dli02' : o.presets[0]);
  const f = {
    name: h('input', { type: 'text', name: 'name', testid: 'train-name', required: true, maxlength: L.maxNameLength, pattern: '[A-Za-z0-9._\\-]+', autocomplete: 'off' }),
    epochs: numberInput('epochs', 'train-epochs', { min: 1, max: L.maxEpochs, step: 1 }),
    batchSize: numberInput('batchSize', 'train-batch-size', { min: 1, max: L.maxBatchSize, step: 1 }),
    lr: numberInput('lr', 'train-lr', { min: 0, step: 'any' }),
    seed: numberInput('seed', 'train-seed', { min: 0, max: L.maxSeed, step: 1, placeholder: 'preset default' }),
    imageSize: numberInput('imageSize', 'train-image-size', { min: 8, max: L.maxImageSize, step: 1 }),
    limit: numberInput('limit', 'train-limit', { min: 1, step: 1, placeholder: 'all images' }),
    schedule: select('schedule', 'train-schedule', o.schedules),
    timesteps: numberInput('timesteps', 'train-timesteps', { min: 2, max: L.maxTimesteps, step: 1 }),
    objective: select('objective', 'train-objective', o.objectives),
    lossWeight: select('lossWeight', 'train-loss-weight', [['', 'preset default'], ...o.lossWeightings.map((w): [string, string] => [w, w])]),
    emaDecay: numberInput('emaDecay', 'train-ema-decay', { min: 0, max: 0.9999, step: 'any', placeholder: 'preset default' }),
    classCond: h('input', { type: 'checkbox', name: 'classCond', testid: 'train-class-cond' }),
    learnVariance: h('input', { type: 'checkbox', name: 'learnVariance', testid: 'train-learn-variance' }),
  };

  function fillDefaults(): void {
    const d = o.presetDefaults[presetSel.value];
    if (!d) return;
    f.epochs.value = String(d.epochs);
    f.batchSize.value = String(d.batchSize);
    f.lr.value = String(d.lr);
    f.schedule.value = d.schedule;
    f.timesteps.value = String(d.timesteps);
    f.imageSize.value = String(d.imageSize);
    f.objective.value = d.objective;
    f.lossWeight.value = '';
    f.emaDecay.value = '';
    if (!f.name.dataset.edited) f.name.value = suggestName(presetSel.value);
  }
  presetSel.addEventListener('change', fillDefaults);
  f.name.addEventListener('input', () => { f.name.dataset.edited = '1'; });

  const start = h('button', { type: 'submit', class: 'primary', testid: 'train-start' }, 'Start training');
  const stop = h('button', { type: 'button', testid: 'train-stop', disabled: true, onclick: () => guard(stopJob) }, 'Stop');
  const form = h('form', { class: 'card form', testid: 'train-form' },
    h('h2', {}, 'New training run'),
    h('div', { class: 'grid-form' },
      field('Run name', f.name, 'a new folder under --runs'),
      field('Preset', presetSel, 'fills the defaults below'),
      field('Epochs', f.epochs), field('Batch size', f.batchSize), field('Learning rate', f.lr), field('Seed', f.seed),
      field('Image limit', f.limit, 'first N training images'), field('Image size', f.imageSize, 'pixels per side'),
      field('Schedule', f.schedule), field('Timesteps T', f.timesteps), field('Objective', f.objective),
      field('Loss weighting', f.lossWeight), field('EMA decay', f.emaDecay, '0: no EMA'),
      h('label', { class: 'field check' }, f.classCond, h('span', {}, 'Class-conditional (for classifier-free guidance)')),
      h('label', { class: 'field check' }, f.learnVariance, h('span', {}, 'Learn the reverse variance (hybrid loss; DDPM sampling uses it)'))),
    h('div', { class: 'actions' }, start, stop));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); guard(startJob); });

  const bar = h('progress', { testid: 'train-progress', max: 1, value: 0 });
  const stats = {
    state: h('span', { testid: 'train-state', class: 'badge' }, 'idle'),
    run: h('span', { testid: 'train-run' }, '–'),
    step: h('span', { testid: 'train-step' }, '–'),
    epoch: h('span', { testid: 'train-epoch' }, '–'),
    loss: h('span', { testid: 'train-loss' }, '–'),
    ips: h('span', { testid: 'train-ips' }, '–'),
    eta: h('span', { testid: 'train-eta' }, '–'),
  };
  const chart = new LineChart({ testid: 'train-loss-chart', title: 'Training loss', xLabel: 'step', yLabel: 'loss', height: 300 });
  const loss = new LossSeries(chart);
  const openRun = h('button', { type: 'button', testid: 'train-open-run', disabled: true, onclick: () => job && ctx.go('runs', job.run) }, 'Open in Runs');
  const panel = h('section', { class: 'card', testid: 'train-job' },
    h('div', { class: 'detail-head' }, h('h2', {}, 'Progress'), stats.state, openRun),
    bar,
    facts(null, ['run', stats.run], ['step', stats.step], ['epoch', stats.epoch], ['loss (smoothed)', stats.loss], ['images/s', stats.ips], ['ETA', stats.eta]),
    chart.el);
  const el = h('div', { class: 'two-col wide-right' }, form, panel);

  let job: JobInfo | null = null;
  let closeEvents: (() => void) | null = null;
  let closeLog: (() => void) | null = null;

  function request(): TrainRequest {
    const req: TrainRequest = { name: f.name.value.trim(), preset: presetSel.value };
    const num = (k: 'epochs' | 'batchSize' | 'lr' | 'seed' | 'timesteps' | 'emaDecay' | 'imageSize', input: HTMLInputElement): void => {
      const v = numberOf(input);
      if (v !== undefined) req[k] = v;
    };
    num('epochs', f.epochs); num('batchSize', f.batchSize); num('lr', f.lr); num('seed', f.seed);
    num('timesteps', f.timesteps); num('emaDecay', f.emaDecay); num('imageSize', f.imageSize);
    const limit = numberOf(f.limit);
    if (limit !== undefined) req.limit = limit;
    req.schedule = f.schedule.value;
    req.objective = f.objective.value;
    if (f.lossWeight.value) req.lossWeight = f.lossWeight.value;
    if (f.classCond.checked) req.classCond = true;
    if (f.learnVariance.checked) req.learnVariance = true;
    return req;
  }

  async function startJob(): Promise<void> {
    start.disabled = true;
    try {
      attach(await api.train(request()), true);
      ctx.runsChanged();
      // The next run gets a fresh name unless the user typed one.
      delete f.name.dataset.edited;
      f.name.value = suggestName(presetSel.value);
    } finally {
      start.disabled = job !== null && isActive(job);
    }
  }

  async function stopJob(): Promise<void> {
    if (!job) return;
    stop.disabled = true;
    showJob(await api.stop(job.id));
  }

  function attach(j: JobInfo, fresh: boolean): void {
    closeEvents?.();
    closeLog?.();
    closeLog = null;
    job = j;
    if (fresh) loss.clear();
    showJob(j);
    closeEvents = subscribe<JobEvents>(`/api/jobs/${encodeURIComponent(j.id)}/events`, {
      progress: (p) => {
        if (p.kind !== 'train') return;
        showProgress(p);
        // The run folder exists once training reports; its log.jsonl feeds the chart, as in the Runs view.
        closeLog ??= subscribe<RunEvents>(`/api/runs/${encodeURIComponent(j.run)}/events`, { log: (rows) => loss.add(rows) });
      },
      done: (info) => { showJob(info); ended(info); },
      error: () => guard(async () => { const info = await api.job(j.id); showJob(info); ended(info); }),
    }, ['done', 'error']);
  }

  /** The last log rows may still be unread by the run's stream: read the whole log once. */
  function ended(info: JobInfo): void {
    closeLog?.();
    closeLog = null;
    ctx.runsChanged();
    guard(async () => { loss.add((await api.run(info.run)).log); });
  }

  function showJob(j: JobInfo): void {
    job = j;
    stats.state.textContent = j.state;
    stats.state.className = `badge state-${j.state}`;
    stats.run.textContent = j.run;
    openRun.disabled = false;
    if (j.progress?.kind === 'train') showProgress(j.progress);
    const active = isActive(j);
    stop.disabled = !active || j.state === 'stopping';
    start.disabled = active;
    if (j.error) stats.state.title = j.error;
  }

  function showProgress(p: TrainProgress): void {
    bar.max = Math.max(1, p.totalSteps);
    bar.value = p.step;
    stats.step.textContent = `${p.step} / ${p.totalSteps}`;
    // p.epoch counts from 0 (the epoch being trained); people count from 1.
    stats.epoch.textContent = `${Math.min(p.epoch + 1, p.epochs)} / ${p.epochs}`;
    stats.loss.textContent = fmt(p.loss);
    stats.ips.textContent = fmt(p.imagesPerSecond, 3);
    stats.eta.textContent = duration(p.eta);
  }

  fillDefaults();
  // A training started earlier (or from another tab) is shown, not lost, when the page loads.
  guard(async () => {
    const s = await api.status();
    if (!s.jobs.train || job) return;
    attach(s.jobs.train, true);
  });
  return { el, show() { /* the form keeps its state between visits */ } };
}

function isActive(j: JobInfo): boolean { return j.state === 'queued' || j.state === 'running' || j.state === 'stopping'; }

function suggestName(preset: string): string {
  const d = new Date();
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${preset}-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

