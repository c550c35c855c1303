// The run folders under --runs as the studio shows them: summaries, details, logs, checkpoints and
// sample grids. Every name from a request is checked (checkName) before any path is built from it.
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { RunFolder } from '../io/run.js';
import { readRunConfig as readConfigChecked, runSampling, type RunConfig } from '../train/config.js';
import { samplerDefaults, samplerDefaultsBySampler } from '../samplers/index.js';
import type { CheckpointInfo, LogRow, RunDetail, RunSummary } from './protocol.js';
import { RequestError, checkName } from './validate.js';

/** The folder of run `name` under `runsDir`; 400 for a name that is not one plain segment, 404 when it is no run. */
export function runFolder(runsDir: string, name: unknown, field = 'run'): RunFolder {
  const n = checkName(field, name);
  const run = new RunFolder(path.join(runsDir, n));
  if (!existsSync(run.configPath)) throw new RequestError(404, `no run "${n}" under ${runsDir} (a run folder holds a config.json; GET /api/runs lists them)`, field);
  return run;
}

/** config.json of a run; 500 naming the file when it is half-written or not a run config (the page shows why). */
export function readRunConfig(run: RunFolder): RunConfig {
  try {
    return readConfigChecked(run);
  } catch (e) {
    throw new RequestError(500, (e as Error).message);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isLogRow = (v: unknown): v is LogRow => isObject(v) && typeof v['step'] === 'number' && Number.isFinite(v['step']);

/** Parses log.jsonl text; a last line without its newline is still being written and is left for later. */
export function parseLog(text: string): { rows: LogRow[]; rest: string } {
  const end = text.lastIndexOf('\n');
  const rows: LogRow[] = [];
  for (const line of text.slice(0, end + 1).split('\n')) {
    if (line.trim() === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      // A damaged line (a crash mid-write before atomic appends existed) is skipped, not fatal to the page.
      continue;
    }
    // Valid JSON that is no row (null, a number, an object without a step) is skipped too: callers filter and sort by step.
    if (isLogRow(row)) rows.push(row);
  }
  return { rows, rest: text.slice(end + 1) };
}

export function readLog(run: RunFolder, after = -Infinity): LogRow[] {
  if (!existsSync(run.logPath)) return [];
  return parseLog(readFileSync(run.logPath, 'utf8')).rows.filter((r) => r.step > after);
}

/** Follows log.jsonl by size (fs.watch misses appends on some filesystems): each poll returns the rows added since. */
export class LogTail {
  #offset = 0;
  #rest = '';
  constructor(private readonly file: string) {}

  poll(): LogRow[] {
    if (!existsSync(this.file)) return [];
    const size = statSync(this.file).size;
    // A shorter file is a new log (the run was deleted and trained again): start over.
    if (size < this.#offset) { this.#offset = 0; this.#rest = ''; }
    if (size === this.#offset) return [];
    const buf = Buffer.alloc(size - this.#offset);
    const fd = openSync(this.file, 'r');
    try {
      readSync(fd, buf, 0, buf.length, this.#offset);
    } finally {
      closeSync(fd);
    }
    this.#offset = size;
    const { rows, rest } = parseLog(this.#rest + buf.toString('utf8'));
    this.#rest = rest;
    return rows;
  }
}

export function checkpointInfo({ step, dir }: { step: number; dir: string }): CheckpointInfo {
  let epoch: number | null = null;
  try {
    const state = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as { epoch?: unknown } | null;
    if (typeof state?.epoch === 'number') epoch = state.epoch;
  } catch {
    // Listed as complete, so state.json exists; an unreadable one (or one pruned meanwhile) just leaves the epoch unknown.
  }
  return { name: path.basename(dir), step, epoch, hasEma: existsSync(path.join(dir, 'ema.safetensors')) };
}

export function checkpointInfos(run: RunFolder): CheckpointInfo[] {
  return run.listCheckpoints().map(checkpointInfo);
}

/** The checkpoint folder `name` of a run; 400 for a bad name, 404 when the run has no such complete checkpoint. */
export function checkpointDir(run: RunFolder, name: unknown, field = 'checkpoint'): string {
  const n = checkName(field, name);
  const found = run.listCheckpoints().find((c) => path.basename(c.dir) === n);
  if (!found) {
    const have = checkpointInfos(run).map((c) => c.name);
    throw new RequestError(404, `run ${path.basename(run.root)} has no checkpoint "${n}"; it has ${have.length ? have.join(', ') : 'none yet'}`, field);
  }
  return found.dir;
}

/** The checkpoint folder `name`, or without a name the latest; 409 when the run has none yet. */
export function chosenCheckpoint(run: RunFolder, name: string | undefined, field = 'checkpoint'): string {
  const dir = name !== undefined ? checkpointDir(run, name, field) : run.latestCheckpoint()?.dir;
  if (dir === undefined) throw new RequestError(409, `run ${path.basename(run.root)} has no checkpoint yet (one is written at the end of each epoch, or when training is stopped)`, field);
  return dir;
}

/** PNG grids under samples/, in name order (epoch-001.png, ... sort by epoch). */
export function sampleFiles(run: RunFolder): string[] {
  if (!existsSync(run.samplesDir)) return [];
  return readdirSync(run.samplesDir).filter((f) => f.endsWith('.png') && !f.startsWith('.')).sort();
}

/** The path of one sample grid; 400 for a bad name, 404 when it is not there. */
export function samplePath(run: RunFolder, file: unknown): string {
  const n = checkName('file', file);
  if (!n.endsWith('.png') || !sampleFiles(run).includes(n)) {
    throw new RequestError(404, `run ${path.basename(run.root)} has no sample grid "${n}" under samples/`, 'file');
  }
  return path.join(run.samplesDir, n);
}

function summary(name: string, run: RunFolder, config: RunConfig, trainingRun: string | null): RunSummary {
  const log = readLog(run);
  const last = log[log.length - 1];
  return {
    name,
    preset: config.model.preset,
    imageSize: config.model.imageSize,
    channels: config.model.imageChannels,
    timesteps: config.model.T,
    classConditional: !config.classifier && (config.model.numClasses ?? 0) > 0,
    epochs: config.train.epochs,
    lastStep: last?.step ?? null,
    lastLoss: last?.loss ?? null,
    checkpointCount: run.listCheckpoints().length,
    training: trainingRun === name,
    classifierOf: config.classifier ? path.basename(config.classifier.run) : null,
  };
}

/** Every folder of runsDir with a readable run config.json, by name; others (half-made, foreign, damaged) are left out. */
export function listRuns(runsDir: string, trainingRun: string | null): RunSummary[] {
  if (!existsSync(runsDir)) return [];
  const out: RunSummary[] = [];
  for (const e of readdirSync(runsDir, { withFileTypes: true })) {
    if (!e.isDirectory() || !NAME_OK(e.name)) continue;
    const run = new RunFolder(path.join(runsDir, e.name));
    if (!existsSync(run.configPath)) continue;
    // One run being written, damaged or foreign must not take the list of every other run down with it.
    try {
      out.push(summary(e.name, run, readRunConfig(run), trainingRun));
    } catch {
      continue;
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

const NAME_OK = (n: string): boolean => {
  try {
    checkName('run', n);
    return true;
  } catch {
    return false;
  }
};

export function runDetail(runsDir: string, name: string, trainingRun: string | null): RunDetail {
  const run = runFolder(runsDir, name);
  const config = readRunConfig(run);
  const sampling = runSampling(config);
  return {
    ...summary(name, run, config, trainingRun), config, log: readLog(run), checkpoints: checkpointInfos(run), samples: sampleFiles(run),
    sampling: { own: samplerDefaults(sampling).sampler, bySampler: samplerDefaultsBySampler(sampling) },
  };
}
