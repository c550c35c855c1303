// The studio page: tabs for the four views, an error banner that shows every refused request, and
// the server's status line. Built by scripts/build-studio.mjs into dist/studio/public/app.js.
import { api, guard, setErrorSink, type StudioError } from './api.js';
import type { Context, View, ViewId } from './context.js';
import { h } from './dom.js';
import { createForwardView } from './forward.js';
import { createGenerateView } from './generate.js';
import { createRunsView } from './runs.js';
import { createTrainView } from './train.js';

const TABS: [ViewId, string][] = [['runs', 'Runs'], ['train', 'Train'], ['generate', 'Generate'], ['forward', 'Forward']];

function showError(e: StudioError): void {
  const banner = document.getElementById('errors') as HTMLElement;
  const where = e.status ? ` (HTTP ${e.status}${e.field ? `, field ${e.field}` : ''})` : '';
  const item = h('div', { class: 'error', role: 'alert', testid: 'error-message' },
    h('span', {}, e.message, h('small', {}, where)),
    h('button', { type: 'button', class: 'close', 'aria-label': 'dismiss', onclick: () => item.remove() }, '×'));
  banner.append(item);
  // Keep the newest few; older ones are history the user has seen.
  while (banner.children.length > 3) banner.firstElementChild?.remove();
  if (e.field) markField(e.field);
}

/** Outlines the control named like the refused field in the visible view, until it is edited. */
function markField(name: string): void {
  const view = document.querySelector('.view:not([hidden])');
  const control = view?.querySelector<HTMLElement>(`[name="${CSS.escape(name)}"]`);
  if (!control) return;
  control.classList.add('invalid');
  control.setAttribute('aria-invalid', 'true');
  const clear = (): void => { control.classList.remove('invalid'); control.removeAttribute('aria-invalid'); };
  control.addEventListener('input', clear, { once: true });
  control.addEventListener('change', clear, { once: true });
}

async function main(): Promise<void> {
  setErrorSink(showError);
  const nav = document.getElementById('tabs') as HTMLElement;
  const viewsEl = document.getElementById('views') as HTMLElement;
  const status = document.getElementById('status') as HTMLElement;
  const [options, s] = await Promise.all([api.options(), api.status()]);
  status.textContent = `ddpm-ts ${s.version} · runs: ${s.runsDir}`;

  const listeners: (() => void)[] = [];
  const views = new Map<ViewId, View>();
  const ctx: Context = {
    options,
    go: (id, arg) => select(id, arg),
    runsChanged: () => { for (const f of listeners) f(); },
    onRunsChanged: (f) => { listeners.push(f); },
  };
  const makers: Record<ViewId, (c: Context) => View> = {
    runs: createRunsView, train: createTrainView, generate: createGenerateView, forward: createForwardView,
  };
  for (const [id] of TABS) {
    const v = makers[id](ctx);
    v.el.classList.add('view');
    v.el.dataset.testid = `view-${id}`;
    v.el.hidden = true;
    viewsEl.append(v.el);
    views.set(id, v);
  }
  const buttons = TABS.map(([id, label]) => h('a', { href: `#${id}`, class: 'tab', testid: `tab-${id}`, 'data-view': id }, label));
  nav.append(...buttons);

  function select(id: ViewId, arg?: string): void {
    for (const [vid, v] of views) v.el.hidden = vid !== id;
    for (const b of buttons) b.classList.toggle('active', b.dataset.view === id);
    if (location.hash !== `#${id}`) history.replaceState(null, '', `#${id}`);
    views.get(id)?.show(arg);
  }
  const fromHash = (): ViewId => {
    const id = location.hash.slice(1);
    return TABS.some(([t]) => t === id) ? (id as ViewId) : 'runs';
  };
  window.addEventListener('hashchange', () => select(fromHash()));
  select(fromHash());
  document.body.dataset.ready = 'true';
}

guard(main);
