// The one validation helper: every argument error says what was expected and what came.

export class ArgumentError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = 'ArgumentError';
  }
}

export function fail(where: string, expected: string, found: unknown): never {
  throw new ArgumentError(`${where}: expected ${expected}, got ${describe(found)}`);
}

export function describe(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'object' && v && 'shape' in v && 'dtype' in v) {
    const t = v as { shape: number[]; dtype: string };
    return `tensor of shape [${t.shape.join(', ')}] and dtype ${t.dtype}`;
  }
  return typeof v;
}

export function checkInt(where: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = min === -Infinity ? (max === Infinity ? '' : ` <= ${max}`) : max === Infinity ? ` >= ${min}` : ` in [${min}, ${max}]`;
    fail(where, `an integer${range}`, v);
  }
  return v;
}

export function checkNumber(where: string, v: unknown): number {
  if (typeof v !== 'number' || Number.isNaN(v)) fail(where, 'a number', v);
  return v;
}

export function checkShape(where: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(where, 'a shape (an array of non-negative integers)', shape);
  }
  return shape as number[];
}

/** A pair [h, w] from a number or a pair. */
export function pair(where: string, v: number | readonly [number, number], min = 0): [number, number] {
  const p = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2) fail(where, 'a number or a pair [h, w]', v);
  checkInt(where, p[0], min);
  checkInt(where, p[1], min);
  return [p[0], p[1]];
}

/** Normalises a possibly negative dim against a rank, with a message naming both. */
export function normDim(where: string, dim: number, rank: number, extra = 0): number {
  const n = rank + extra;
  if (!Number.isInteger(dim) || dim < -n || dim >= Math.max(n, 1)) {
    throw new ArgumentError(`${where}: dim ${dim} is out of range for a tensor of rank ${rank} (expected -${n} <= dim < ${n})`);
  }
  return dim < 0 ? dim + n : dim;
}

/** The broadcast shape of two shapes, or an error naming both (torch broadcasting rules). */
export function broadcastShapes(where: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new ArgumentError(`${where}: shapes [${a.join(', ')}] and [${b.join(', ')}] cannot broadcast (size ${x} vs ${y} at dim ${i - n})`);
    }
    out[i] = x === 1 ? y : x;
  }
  return out;
}
