// `ddpm train` refuses every bad toolbox flag and combination before it writes anything: the
// message names the option, the value and why; the --out folder is never created.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { ROOT } from './helpers.js';
import { CommanderError } from 'commander';
import { program } from '../src/cli/main.js';

const BIN = path.join(ROOT, 'bin', 'ddpm.js');
const work = mkdtempSync(path.join(tmpdir(), 'ddpm-flags-'));
after(() => rmSync(work, { recursive: true, force: true }));

function ddpm(...args: string[]): { code: number; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } });
  return { code: r.status ?? -1, err: r.stderr };
}

function greyPng(file: string, w: number, h: number): void {
  const png = new PNG({ width: w, height: h });
  png.data.fill(128);
  writeFileSync(file, PNG.sync.write(png));
}

// A folder of images without class subfolders, and one with nothing in it.
const flat = path.join(work, 'flat');
mkdirSync(flat);
for (let i = 0; i < 4; i++) greyPng(path.join(flat, `${i}.png`), 20, 20);
const empty = path.join(work, 'empty');
mkdirSync(empty);
const bogus = path.join(work, 'bogus');
mkdirSync(bogus);
writeFileSync(path.join(bogus, 'a.png'), 'not a png at all');

const CASES: [string[], RegExp][] = [
  [['--objective', 'score'], /--objective must be one of eps, x0, v, got "score"/],
  [['--schedule', 'quadratic'], /--schedule must be one of linear, scaled-linear, cosine, sigmoid, got "quadratic"/],
  [['--timesteps', '0'], /--timesteps must be a positive integer, got "0"/],
  [['--beta-start', '1.5'], /--beta-start must be a number in \(0, 1\), got "1\.5"/],
  [['--beta-start', '0.02', '--beta-end', '0.0001'], /linear betas must not decrease, got betaStart 0\.02 > betaEnd 0\.0001/],
  [['--schedule', 'cosine', '--beta-end', '0.02'], /--beta-start and --beta-end set the ends of a linear or scaled-linear schedule; the cosine schedule has none/],
  [['--betas', '0.1,abc,0.3'], /--betas 0\.1,abc,0\.3: expected a comma-separated list of numbers in \(0, 1\)/],
  [['--betas', '0.1,0.3,0.2'], /custom betas must not decrease, but beta at t=2 \(0\.2\) is below beta at t=1 \(0\.3\)/],
  [['--betas', '0.1,0.2', '--timesteps', '10'], /--betas gives the whole schedule; it cannot be combined with --timesteps/],
  [['--zero-terminal-snr'], /a zero-terminal-SNR schedule cannot be trained with the eps objective.*use --objective v \(or x0\)/],
  [['--loss-weight', 'snr'], /--loss-weight must be one of simple, min-snr, got "snr"/],
  [['--min-snr-gamma', '3'], /--min-snr-gamma needs --loss-weight min-snr/],
  [['--loss-weight', 'min-snr', '--min-snr-gamma', '-1'], /--min-snr-gamma must be a positive number, got "-1"/],
  [['--offset-noise', '1'], /--offset-noise must be a number in \[0, 1\), got "1"/],
  [['--ema-decay', '1'], /--ema-decay must be a number in \[0, 1\), got "1"/],
  [['--ema-decay', 'high'], /--ema-decay must be a number in \[0, 1\), got "high"/],
  [['--lr-schedule', 'step'], /--lr-schedule must be one of constant, cosine, got "step"/],
  [['--min-lr', '1e-5'], /--min-lr is the floor of the cosine schedule; add --lr-schedule cosine/],
  [['--lr-schedule', 'cosine', '--min-lr', '0.1'], /minLr 0\.1 is above the learning rate 0\.001/],
  [['--warmup-steps', '-5'], /--warmup-steps must be a non-negative integer, got "-5"|unknown option '-5'/],
  [['--grad-clip', 'NaN'], /--grad-clip must be a number in \[0, Infinity\], got "NaN"/],
  [['--cond-drop-prob', '0.2'], /--cond-drop-prob needs --class-cond/],
  [['--class-cond', '--cond-drop-prob', '1'], /--cond-drop-prob must be a number in \[0, 1\), got "1"/],
  [['--channels', '2'], /--channels must be one of 1, 3, got "2"/],
  [['--preset', 'ddpm', '--image-size', '30'], /ddpm: image size 30 is not divisible by 4.*use 28 or 32/],
  [['--preset', 'unet'], /--preset must be one of dli02, dli03, ddpm, got "unet"/],
  [['--data', path.join(work, 'nowhere')], /--data .*nowhere: no such folder/],
  [['--data', flat, '--class-cond'], /--class-cond: .*flat has 0 subfolders; class-conditional training needs one subfolder per class/],
];

/**
 * Runs `ddpm train` in this process (loading libtorch once, not per case) and returns what it
 * printed or threw. The guard flags keep a refusal that regressed to a run down to one step.
 */
async function trainInProcess(args: string[]): Promise<string> {
  let err = '';
  const p = program();
  for (const c of [p, ...p.commands]) c.configureOutput({ writeErr: (s) => { err += s; }, writeOut: () => {} });
  try {
    await p.parseAsync(['node', 'ddpm', 'train', ...args, '--max-steps', '1', '--limit', '64', '--no-sample-grids', '--threads', '1']);
  } catch (e) {
    err += e instanceof CommanderError ? '' : (e as Error).message;
  }
  return err;
}

for (const [i, [flags, re]] of CASES.entries()) {
  test(`ddpm train ${flags.map((f) => (f.startsWith(work) ? path.basename(f) : f)).join(' ')} is refused before anything is written`, async () => {
    const out = path.join(work, `run-${i}`);
    const err = await trainInProcess(['--out', out, ...flags]);
    assert.match(err, re);
    assert.ok(!existsSync(out), 'the run folder was not created');
  });
}

test('the ddpm command itself exits non-zero on a refused flag and prints the reason', () => {
  const out = path.join(work, 'run-process');
  const r = ddpm('train', '--out', out, '--zero-terminal-snr');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /^ddpm: config: a zero-terminal-SNR schedule cannot be trained with the eps objective/);
  assert.ok(!existsSync(out));
});

test('ddpm train --data on an empty folder or a folder with a fake PNG names the folder or the file, and keeps nothing half-made', async () => {
  assert.match(await trainInProcess(['--out', path.join(work, 'run-empty'), '--data', empty]), /empty.*no images/i);
  assert.match(await trainInProcess(['--out', path.join(work, 'run-bogus'), '--data', bogus]), /a\.png.*PNG signature/);
  for (const run of ['run-empty', 'run-bogus']) assert.ok(!existsSync(path.join(work, run)), `${run} was not created`);
});
