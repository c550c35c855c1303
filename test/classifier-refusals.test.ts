// Classifier guidance's refusals, each with the words that say what was wrong and what to do: a
// classifier for another schedule, image size or class count than the run; --classifier without
// --class or with a class it does not know; --classifier-scale without --classifier; a classifier run
// where a diffusion run belongs and the other way round; and the ONNX Runtime path, which has no autograd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { program } from '../src/cli/main.js';
import { resolveSampling } from '../src/samplers/index.js';
import { sampleOnnx } from '../src/samplers/onnx-model.js';
import { Diffusion, makeSchedule } from '../src/diffusion/index.js';
import { trainTinyRun, trainTinyClassifier } from './tiny-run.js';

const work = mkdtempSync(path.join(tmpdir(), 'ddpm-clf-refusals-'));
const run = path.join(work, 'run');
const cond = path.join(work, 'cond');
const clf = path.join(work, 'clf');
const clf3 = path.join(work, 'clf3');
before(async () => {
  await trainTinyRun(run);
  await trainTinyRun(cond, 10);
  await trainTinyClassifier(clf, run);
  await trainTinyClassifier(clf3, run, 3);
});
after(() => rmSync(work, { recursive: true, force: true }));

const ddpm = async (...args: string[]): Promise<void> => { await program().parseAsync(['node', 'ddpm', ...args]); };
const grid = (): string[] => ['--grid', path.join(work, 'g.png'), '-n', '2', '--threads', '1'];

/** A copy of run folder `from` with its config.json changed by `edit`. */
interface EditableConfig { schedule: Record<string, unknown>; model: Record<string, unknown> }
function edited(from: string, name: string, edit: (c: EditableConfig) => void): string {
  const to = path.join(work, name);
  cpSync(from, to, { recursive: true });
  const file = path.join(to, 'config.json');
  const c = JSON.parse(readFileSync(file, 'utf8')) as EditableConfig;
  edit(c);
  writeFileSync(file, JSON.stringify(c));
  return to;
}

test('a classifier trained for another schedule, image size or class count than the run is refused', async () => {
  const otherSchedule = edited(run, 'other-schedule', (c) => { c.schedule.betaEnd = 0.1; });
  await assert.rejects(ddpm('sample', '--run', otherSchedule, '--classifier', clf, '--class', '3', ...grid()), /--classifier .*clf was trained on the schedule .*"betaEnd":0.2.*, but --run .*other-schedule has .*"betaEnd":0.1.*; train a classifier for this run: ddpm train-classifier --run/);
  const otherSize = edited(clf, 'clf-size', (c) => { c.model.imageSize = 32; });
  await assert.rejects(ddpm('sample', '--run', run, '--classifier', otherSize, '--class', '3', ...grid()), /was trained on image size 32, but --run .* has 16/);
  await assert.rejects(ddpm('sample', '--run', cond, '--classifier', edited(clf3, 'clf3-cond', (c) => { c.schedule = (JSON.parse(readFileSync(path.join(cond, 'config.json'), 'utf8')) as EditableConfig).schedule; }), '--class', '1', ...grid()), /was trained on a class count of 3, but --run .* has 10/);
});

test('--classifier without --class, with an unknown class, and --classifier-scale without --classifier are refused', async () => {
  await assert.rejects(ddpm('sample', '--run', run, '--classifier', clf, ...grid()), /sample: --classifier guides every image toward a class; give --class C/);
  await assert.rejects(ddpm('sample', '--run', run, '--classifier', clf3, '--class', '5', ...grid()), /sample: --class 5 is outside the classifier's classes 0..2/);
  await assert.rejects(ddpm('sample', '--run', run, '--classifier-scale', '2', ...grid()), /sample: --classifier-scale 2 needs --classifier DIR/);
  await assert.rejects(ddpm('sample', '--run', run, '--classifier', clf, '--class', '1', '--guidance', '2', ...grid()), /--guidance needs a class-conditional run .*; --classifier-scale sets the strength of classifier guidance/);
  await assert.rejects(ddpm('eval', '--run', run, '--classifier', clf), /eval: --classifier guides every image toward a class; give --class C/);
  await assert.rejects(ddpm('eval', '--run', run, '--classifier-scale', '1'), /eval: --classifier-scale 1 needs --classifier DIR/);
  await assert.rejects(ddpm('eval', '--samples', work, '--classifier', clf, '--class', '1'), /--class applies to --run only/);
});

test('a classifier run is refused where a diffusion run belongs, and the other way round', async () => {
  await assert.rejects(ddpm('sample', '--run', clf, ...grid()), /holds a noise-aware classifier \(ddpm train-classifier\), not a diffusion model; sample from its diffusion run with --run .*run --classifier .*clf/);
  await assert.rejects(ddpm('sample', '--run', run, '--classifier', cond, '--class', '1', ...grid()), /--classifier .*cond is a diffusion model's run, not a classifier's/);
  await assert.rejects(ddpm('train-classifier', '--run', clf, '--out', path.join(work, 'x')), /--run .*clf is itself a classifier's run; give the diffusion run it was trained for/);
});

test('classifier guidance is refused on ONNX Runtime (no autograd), from the command line and from the library', async () => {
  await assert.rejects(ddpm('sample', '--model', path.join(work, 'model.onnx'), '--classifier', clf, '--class', '1', ...grid()), /--classifier with --model: classifier guidance needs the gradient of the classifier .*libtorch has and ONNX Runtime does not/);
  const session = { inputNames: [], run: () => Promise.reject(new Error('not reached')) };
  await assert.rejects(
    sampleOnnx(session, class {} as never, {} as never, { n: 1, seed: 0, sampler: 'ddim', classifier: { scale: 1, numClasses: 2, labels: [0] } } as never),
    /classifier guidance needs the gradient of the classifier at every step \(autograd\)/,
  );
});

test('resolveSampling refuses classifier labels that do not fit the images or the classifier', () => {
  const diffusion = new Diffusion(makeSchedule({ kind: 'linear', T: 10, betaStart: 1e-3, betaEnd: 0.2 }));
  const base = { diffusion, objective: 'eps', shape: [2, 1, 4, 4] as [number, number, number, number], sampler: 'ddim' } as const;
  assert.throws(() => resolveSampling({ ...base, classifier: { scale: 1, numClasses: 3, labels: [0] } }), /there are 1 classifier labels for 2 images; give one class per image/);
  assert.throws(() => resolveSampling({ ...base, classifier: { scale: 1, numClasses: 3, labels: [0, 3] } }), /classifier label 1 is 3, outside the classifier's classes 0..2/);
  assert.throws(() => resolveSampling({ ...base, classifier: { scale: Infinity, numClasses: 3, labels: [0, 1] } }), /classifier scale must be a finite number, got Infinity/);
});
