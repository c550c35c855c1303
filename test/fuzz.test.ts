// A short run of the parser fuzzer (tools/fuzz.ts; `npm run fuzz` runs 10,000 inputs): mutated
// safetensors and IDX files are either parsed consistently or refused with the module's own error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatSummary, runFuzz } from '../tools/fuzz.js';

test('1,500 mutated safetensors and IDX inputs: no foreign exception, no inconsistent result, no hang, no big allocation', async () => {
  const failureDir = mkdtempSync(path.join(tmpdir(), 'ddpm-fuzz-test-'));
  try {
    const s = await runFuzz({ iterations: 1500, seed: 20240917, failureDir, log: () => {} });
    const report = `${formatSummary(s)}\n${s.failures.slice(0, 5).map((f) => `  ${f.kind} at ${f.iteration} (${f.target}): ${f.message} [${f.file}]`).join('\n')}`;
    assert.equal(s.failures.length, 0, report);
    assert.equal(s.inputs, 1500);
    assert.equal(s.accepted + s.refused, s.inputs);
    assert.equal(readdirSync(failureDir).length, 0, 'nothing saved when nothing failed');
    for (const t of ['safetensors', 'safetensors-file', 'idx', 'idx-file'] as const) assert.ok(s.byTarget[t] > 50, `too few ${t} inputs: ${report}`);

    // The mutations must reach past the first check of each format, or the run proves little.
    const kinds = Object.keys(s.refusals);
    const reached = (re: RegExp): boolean => kinds.some((k) => re.test(k));
    for (const re of [
      /over the N-byte limit/, /only N bytes follow the prefix/, /header is not valid JSON/, /unknown dtype/,
      /disagrees with shape|overlap tensor|a gap of N bytes|trailing data/, // layout checks after a valid header
      /payload is .* for shape/, /unknown type byte/, /corrupt gzip data|truncated gzip file/, /not a gzip file/,
    ]) {
      assert.ok(reached(re), `no refusal matched ${re}; refusals seen:\n${kinds.join('\n')}`);
    }
    assert.ok(s.accepted > 100, `only ${s.accepted} inputs were accepted: the contract check on results was barely exercised`);
  } finally {
    rmSync(failureDir, { recursive: true, force: true });
  }
});

test('the same seed gives the same run', async () => {
  const a = await runFuzz({ iterations: 200, seed: 5, log: () => {} });
  const b = await runFuzz({ iterations: 200, seed: 5, log: () => {} });
  assert.deepEqual([a.accepted, a.refused, a.byTarget, a.refusals], [b.accepted, b.refused, b.byTarget, b.refusals]);
  const c = await runFuzz({ iterations: 1, seed: 5, replay: 137, log: () => {} });
  assert.equal(c.inputs, 1);
});
