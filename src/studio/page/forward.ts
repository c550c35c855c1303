// Forward view: one dataset image noised to step t (GET /api/forward) as the t slider moves, with
// alpha-bar_t and SNR(t), beside the schedule's beta, alpha-bar and log-SNR curves marked at t.
import type { ScheduleCurves } from '../protocol.js';
import { api, guard } from './api.js';
import { LineChart } from './chart.js';
import { lazyView, type Context, type View } from './context.js';
import { facts, field, fill, fmt, h, numberInput, numberOf } from './dom.js';

export function createForwardView(ctx: Context): View {
  const runSel = h('select', { name: 'run', testid: 'fwd-run' });
  const index = numberInput('index', 'fwd-index', { min: 0, step: 1, value: 0 });
  const seed = numberInput('seed', 'fwd-seed', { min: 0, step: 1, value: 0 });
  const slider = h('input', { type: 'range', name: 't', testid: 'fwd-t', min: 0, max: 149, step: 1, value: 0 });
  const tText = h('output', { testid: 'fwd-t-value' }, '0');
  const img = {
    x0: h('img', { class: 'px frame', testid: 'fwd-x0', alt: 'x_0' }),
    xt: h('img', { class: 'px frame', testid: 'fwd-xt', alt: 'x_t' }),
  };
  const stat = {
    label: h('span', { testid: 'fwd-label' }, '–'),
    alphaBar: h('span', { testid: 'fwd-alphabar' }, '–'),
    snr: h('span', { testid: 'fwd-snr' }, '–'),
    logSnr: h('span', { testid: 'fwd-logsnr' }, '–'),
  };
  const charts = {
    beta: new LineChart({ testid: 'sched-beta', title: 'β_t', xLabel: 't', yLabel: 'beta', height: 180 }),
    alphaBar: new LineChart({ testid: 'sched-alphabar', title: 'ᾱ_t', xLabel: 't', yLabel: 'alpha-bar', stroke: '#2b8a3e', height: 180 }),
    logSnr: new LineChart({ testid: 'sched-logsnr', title: 'log SNR(t) = log(ᾱ_t / (1 − ᾱ_t))', xLabel: 't', yLabel: 'log-SNR', stroke: '#862e9c', height: 180 }),
  };
  const scheduleNote = h('p', { class: 'muted', testid: 'sched-note' });
  const chartRow = h('div', { class: 'three-col' }, charts.beta.el, charts.alphaBar.el, charts.logSnr.el);

  const controls = h('form', { class: 'card form', testid: 'fwd-form' },
    h('h2', {}, 'Forward process q(x_t | x_0)'),
    h('div', { class: 'grid-form' },
      field('Schedule of', runSel), field('Dataset image', index, 'index into the training set'), field('Noise seed', seed)),
    h('label', { class: 'field t-slider' }, h('span', { class: 'field-label' }, 'Timestep ', h('strong', {}, 't = ', tText), ' (drag)'), slider));
  controls.addEventListener('submit', (ev) => ev.preventDefault());
  const view = h('section', { class: 'card', testid: 'fwd-output' },
    h('div', { class: 'frames' },
      h('figure', {}, img.x0, h('figcaption', {}, 'x', h('sub', {}, '0'), ' · ', stat.label)),
      h('figure', {}, img.xt, h('figcaption', {}, 'x', h('sub', {}, 't'), ' = √ᾱ', h('sub', {}, 't'), ' x', h('sub', {}, '0'), ' + √(1 − ᾱ', h('sub', {}, 't'), ') ε'))),
    facts(null, [['ᾱ', h('sub', {}, 't')], stat.alphaBar], [h('span', { title: 'SNR(t) = ᾱ_t / (1 − ᾱ_t)' }, 'SNR(t)'), stat.snr], ['log SNR(t)', stat.logSnr]));
  const el = h('div', { class: 'stack' },
    h('div', { class: 'two-col wide-right' }, controls, view),
    h('section', { class: 'card' }, h('h2', {}, 'Schedule'), scheduleNote, chartRow));

  // One request at a time; while one is out, only the latest slider position waits for its turn.
  let inFlight = false;
  let pending = false;

  async function update(): Promise<void> {
    if (inFlight) { pending = true; return; }
    inFlight = true;
    try {
      do {
        pending = false;
        const t = Number(slider.value);
        tText.textContent = String(t);
        for (const c of Object.values(charts)) c.setMarker(t);
        const frame = await api.forward({ run: runSel.value || undefined, index: numberOf(index) ?? 0, t, seed: numberOf(seed) });
        img.x0.src = frame.x0;
        img.xt.src = frame.xt;
        img.xt.dataset.t = String(frame.t);
        stat.label.textContent = frame.label;
        stat.alphaBar.textContent = fmt(frame.alphaBar);
        stat.snr.textContent = fmt(frame.snr);
        stat.logSnr.textContent = fmt(Math.log(frame.snr));
        if (Number(slider.max) !== frame.T - 1) setT(frame.T);
      } while (pending);
    } finally {
      inFlight = false;
    }
  }

  function setT(T: number): void {
    slider.max = String(T - 1);
    if (Number(slider.value) > T - 1) slider.value = String(T - 1);
  }

  async function loadSchedule(): Promise<void> {
    const run = runSel.value;
    const s: ScheduleCurves | null = run ? await api.schedule(run) : await api.defaultSchedule();
    if (runSel.value !== run) return;
    if (!s) {
      fill(scheduleNote, 'The default schedule (the dli02 preset: linear betas 1e-4 to 0.02, T = 150). Pick a run to plot its schedule.');
      chartRow.hidden = true;
      setT(150);
      return;
    }
    chartRow.hidden = false;
    fill(scheduleNote, `${run || 'default (dli02 preset)'}: ${s.kind} schedule, T = ${s.T}. The marker is the current t.`);
    const ts = s.beta.map((_, t) => t);
    charts.beta.setData(ts, s.beta);
    charts.alphaBar.setData(ts, s.alphaBar);
    charts.logSnr.setData(ts, s.logSnr);
    setT(s.T);
  }

  async function loadRuns(want?: string): Promise<void> {
    const runs = await api.runs();
    const keep = want ?? runSel.value;
    fill(runSel, h('option', { value: '' }, 'default (dli02 preset)'), ...runs.map((r) => h('option', { value: r.name }, r.name)));
    runSel.value = runs.some((r) => r.name === keep) ? keep : '';
  }

  async function reload(want?: string): Promise<void> {
    await loadRuns(want);
    await loadSchedule();
    await update();
  }

  slider.addEventListener('input', () => guard(update));
  index.addEventListener('change', () => guard(update));
  seed.addEventListener('change', () => guard(update));
  runSel.addEventListener('change', () => guard(async () => { await loadSchedule(); await update(); }));
  ctx.onRunsChanged(() => guard(() => loadRuns()));

  return lazyView(el, reload);
}
