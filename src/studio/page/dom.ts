// Tiny DOM helpers: build elements from a tag, attributes and children, so each view reads top-down.

type Child = Node | string | number | null | undefined | false;
type AttrValue = string | number | boolean | null | undefined;

export interface Attrs {
  [name: string]: AttrValue | ((ev: Event) => void);
}

/** `h('button', { class: 'x', testid: 'go', onclick: f }, 'Go')`: `testid` sets data-testid, `on*` adds listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === null || v === undefined || v === false) continue;
    else el.setAttribute(k === 'testid' ? 'data-testid' : k, v === true ? '' : String(v));
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** A labelled form row: `<label>text <control></label>` with an optional hint under it. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control, hint ? h('small', { class: 'hint' }, hint) : null);
}

export function select(name: string, testid: string, choices: readonly (string | [value: string, text: string])[], value?: string): HTMLSelectElement {
  const s = h('select', { name, testid });
  for (const c of choices) {
    const [v, text] = typeof c === 'string' ? [c, c] : c;
    s.append(h('option', { value: v }, text));
  }
  if (value !== undefined) s.value = value;
  return s;
}

/** A number input whose empty value means "the default" (see `numberOf`). */
export function numberInput(name: string, testid: string, attrs: Attrs = {}): HTMLInputElement {
  return h('input', { type: 'number', name, testid, ...attrs });
}

/** The number in an input, or undefined when it is empty or not a number. */
export function numberOf(input: HTMLInputElement): number | undefined {
  const v = input.valueAsNumber;
  return Number.isFinite(v) ? v : undefined;
}

/** 1.23e-4 stays short; 0.1234567 becomes 0.1235. */
export function fmt(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e5)) return x.toExponential(2);
  return String(Number(x.toPrecision(digits)));
}

/** Seconds as "1 h 02 min", "3 min 05 s" or "12 s". */
export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  return `${s} s`;
}

/** A <dl> of label/value pairs, each pair in its own <div> so the grid keeps them together. */
export function facts(testid: string | null, ...pairs: [label: Child | Child[], value: Child][]): HTMLDListElement {
  return h('dl', { class: 'summary', testid }, ...pairs.map(([k, v]) => h('div', {}, h('dt', {}, ...(Array.isArray(k) ? k : [k])), h('dd', {}, v))));
}
