// Shared test helpers: fixture paths and tensor comparison that prints the max difference.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Tensor } from '../src/tensor/index.js';
import { loadTensors } from '../src/io/tensors.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const fixture = (name: string): string => path.join(ROOT, 'test', 'fixtures', name);

const cache = new Map<string, Map<string, Tensor>>();
export function fixtureTensors(name: string): Map<string, Tensor> {
  let m = cache.get(name);
  if (!m) { m = loadTensors(fixture(name)).tensors; cache.set(name, m); }
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, `length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Asserts |a - b| <= atol + rtol |b| elementwise; the message names what and the max difference. */
export function assertClose(what: string, actual: Tensor | ArrayLike<number>, expected: Tensor | ArrayLike<number>, atol: number, rtol = 0): void {
  const a = 'toArray' in actual ? actual.toArray() : Array.from(actual);
  const e = 'toArray' in expected ? expected.toArray() : Array.from(expected);
  if ('shape' in actual && 'shape' in expected) {
    assert.deepEqual(actual.shape, expected.shape, `${what}: shape [${actual.shape}] vs expected [${expected.shape}]`);
  }
  const diff = maxAbsDiff(a, e);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - e[i]!) - rtol * Math.abs(e[i]!));
  assert.ok(worst <= atol, `${what}: max |difference| ${diff.toExponential(3)} exceeds tolerance atol ${atol} rtol ${rtol}`);
}
