// Runs view: every run under --runs; the selected run's config, live loss curve (SSE log events),
// per-epoch sample grids and checkpoints.
import type { CheckpointInfo, RunDetail, RunSummary } from '../protocol.js';
import { api, guard, subscribe, urls, type RunEvents } from './api.js';
import { LineChart, LossSeries } from './chart.js';
import { lazyView, type Context, type View } from './context.js';
import { facts, fill, fmt, h } from './dom.js';

export function createRunsView(ctx: Context): View {
  const list = h('ul', { class: 'run-list', testid: 'run-list' });
  const detail = h('section', { class: 'run-detail', testid: 'run-detail' }, h('p', { class: 'muted' }, 'Select a run.'));
  const refresh = h('button', { type: 'button', testid: 'runs-refresh', onclick: () => guard(loadList) }, 'Refresh');
  const el = h('div', { class: 'split' },
    h('aside', { class: 'sidebar' }, h('div', { class: 'sidebar-head' }, h('h2', {}, 'Runs'), refresh), list),
    detail);

  const chart = new LineChart({ testid: 'run-loss-chart', title: 'Training loss', xLabel: 'step', yLabel: 'loss' });
  const loss = new LossSeries(chart);
  let selected: string | null = null;
  let closeEvents: (() => void) | null = null;
  let runs: RunSummary[] = [];

  async function loadList(): Promise<void> {
    runs = await api.runs();
    fill(list, ...runs.map(runItem));
    if (!runs.length) list.append(h('li', { class: 'muted' }, 'No runs yet: start one in the Train tab.'));
  }

  function runItem(r: RunSummary): HTMLLIElement {
    const button = h('button', { type: 'button', class: 'run-item', testid: 'run-item', 'data-run': r.name, onclick: () => guard(() => select(r.name)) },
      h('strong', {}, r.name), r.training ? h('span', { class: 'badge live' }, 'training') : null,
      h('small', {}, `${r.preset} · ${r.imageSize}px · T=${r.timesteps}${r.classConditional ? ' · class-cond' : ''}`),
      h('small', {}, r.lastStep === null ? 'no steps logged' : `step ${r.lastStep} · loss ${fmt(r.lastLoss)} · ${r.checkpointCount} ckpt`));
    if (r.name === selected) button.classList.add('selected');
    return h('li', {}, button);
  }

  async function select(name: string): Promise<void> {
    closeEvents?.();
    closeEvents = null;
    selected = name;
    for (const b of list.querySelectorAll<HTMLButtonElement>('.run-item')) b.classList.toggle('selected', b.dataset.run === name);
    const run = await api.run(name);
    if (selected !== name) return;
    renderDetail(run);
    loss.clear();
    loss.add(run.log);
    const ckpts = new Map(run.checkpoints.map((c) => [c.name, c]));
    const grids = new Set(run.samples);
    closeEvents = subscribe<RunEvents>(`/api/runs/${encodeURIComponent(name)}/events`, {
      log: (rows) => {
        loss.add(rows);
        const last = rows[rows.length - 1];
        if (!last) return;
        part('run-last-step').textContent = String(last.step);
        part('run-last-loss').textContent = fmt(last.loss);
      },
      checkpoint: (c) => {
        if (ckpts.has(c.name)) return;
        ckpts.set(c.name, c);
        fill(part('run-checkpoints'), checkpoints([...ckpts.values()].sort((a, b) => a.step - b.step)));
      },
      sample: (file) => {
        if (grids.has(file)) return;
        grids.add(file);
        fill(part('run-samples'), ...samples(name, [...grids]));
      },
    });
  }

  function part(testid: string): HTMLElement {
    return detail.querySelector(`[data-testid=${testid}]`) as HTMLElement;
  }

  function renderDetail(run: RunDetail): void {
    fill(detail,
      h('div', { class: 'detail-head' },
        h('h2', { testid: 'run-name' }, run.name, ' ', run.training ? h('span', { class: 'badge live' }, 'training') : null),
        h('button', { type: 'button', testid: 'run-generate', onclick: () => ctx.go('generate', run.name) }, 'Generate from this run'),
        h('button', { type: 'button', onclick: () => ctx.go('forward', run.name) }, 'Its forward process')),
      summary(run),
      h('div', { class: 'card' }, chart.el),
      h('div', { class: 'card' }, h('h3', {}, 'Sample grids per epoch'), h('div', { class: 'samples', testid: 'run-samples' }, ...samples(run.name, run.samples))),
      h('div', { class: 'two-col' },
        h('div', { class: 'card' }, h('h3', {}, 'Checkpoints'), h('div', { testid: 'run-checkpoints' }, checkpoints(run.checkpoints))),
        h('details', { class: 'card config', open: true }, h('summary', {}, 'config.json'), configTable(run.config))));
  }

  ctx.onRunsChanged(() => guard(loadList));
  return lazyView(el, async (arg) => {
    await loadList();
    const want = arg ?? selected ?? runs[0]?.name;
    if (want && runs.some((r) => r.name === want)) await select(want);
  });
}

function summary(run: RunDetail): HTMLDListElement {
  const pairs: [string, string][] = [
    ['preset', run.preset], ['image', `${run.imageSize}×${run.imageSize}×${run.channels}`], ['T', String(run.timesteps)],
    ['epochs', String(run.epochs)], ['last step', run.lastStep === null ? '–' : String(run.lastStep)], ['last loss', fmt(run.lastLoss)],
    ['class-conditional', run.classConditional ? 'yes' : 'no'],
  ];
  return facts('run-summary', ...pairs.map(([k, v]): [string, HTMLElement] => [k, h('span', { testid: `run-${k.replace(/ /g, '-')}` }, v)]));
}

function samples(run: string, files: string[]): HTMLElement[] {
  if (!files.length) return [h('p', { class: 'muted' }, 'No sample grids yet (one is written after each epoch).')];
  return files.map((file) => h('figure', {},
    h('a', { href: urls.sample(run, file), target: '_blank', title: 'open full size' }, h('img', { class: 'px', src: urls.sample(run, file), alt: file, loading: 'lazy' })),
    h('figcaption', {}, file.replace(/\.png$/, ''))));
}

function checkpoints(list: CheckpointInfo[]): HTMLElement {
  if (!list.length) return h('p', { class: 'muted' }, 'No checkpoints yet.');
  return h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'step'), h('th', {}, 'epoch'), h('th', {}, 'EMA'))),
    h('tbody', {}, ...list.map((c) => h('tr', {}, h('td', {}, c.name), h('td', {}, c.step), h('td', {}, c.epoch ?? '–'), h('td', {}, c.hasEma ? 'yes' : 'no')))));
}

/** config.json flattened to dotted keys (model.imageSize, train.lr, ...). */
function configTable(config: unknown): HTMLElement {
  const rows: [string, string][] = [];
  const walk = (v: unknown, key: string): void => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(x, key ? `${key}.${k}` : k);
    } else {
      const text = JSON.stringify(v) ?? 'undefined';
      rows.push([key, text.length > 120 ? `${text.slice(0, 117)}...` : text]);
    }
  };
  walk(config, '');
  return h('table', { class: 'table kv', testid: 'run-config' }, h('tbody', {}, ...rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))));
}
