// The run-folder layout (README, "What the demo writes"):
//   runs/<name>/config.json, log.jsonl, checkpoints/step-<N>/{model,optimizer}.safetensors + state.json, samples/*.png
// A checkpoint folder appears whole (written under a temp name, then renamed) or not at all.
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cleanStaleTempFiles, writeDirAtomic, writeFileAtomic } from './atomic.js';

export const CHECKPOINT_FILES = ['model.safetensors', 'optimizer.safetensors', 'state.json'] as const;

export class RunFolder {
  constructor(readonly root: string) {}

  get configPath(): string { return path.join(this.root, 'config.json'); }
  get logPath(): string { return path.join(this.root, 'log.jsonl'); }
  get checkpointsDir(): string { return path.join(this.root, 'checkpoints'); }
  get samplesDir(): string { return path.join(this.root, 'samples'); }

  /** Creates the folders; refuses a folder that holds another run unless `allowExisting`. */
  create(allowExisting = false): void {
    if (existsSync(this.configPath) && !allowExisting) {
      throw new Error(`${this.root} already holds a run (config.json exists); choose another --out, or delete it first`);
    }
    mkdirSync(this.checkpointsDir, { recursive: true });
    mkdirSync(this.samplesDir, { recursive: true });
    this.cleanTemps();
  }

  /** Removes temp files and folders that a killed process left behind; returns their names. */
  cleanTemps(): string[] {
    return existsSync(this.checkpointsDir) ? cleanStaleTempFiles(this.checkpointsDir) : [];
  }

  writeConfig(config: unknown): void { writeFileAtomic(this.configPath, `${JSON.stringify(config, null, 2)}\n`); }

  readConfig<T>(): T {
    if (!existsSync(this.configPath)) {
      throw new Error(`${this.root} is not a run folder: ${this.configPath} is missing (train one with \`ddpm train --out ${this.root}\`)`);
    }
    try {
      return JSON.parse(readFileSync(this.configPath, 'utf8')) as T;
    } catch (e) {
      throw new Error(`${this.configPath} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Renames log.jsonl to log-<time>.jsonl before a run restarts from step 0, so the restarted
   * run's log starts clean and the stopped attempt's lines are kept. Returns the new name, if any.
   */
  setAsideLog(): string | undefined {
    if (!existsSync(this.logPath)) return undefined;
    const aside = path.join(this.root, `log-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`);
    renameSync(this.logPath, aside);
    return aside;
  }

  /**
   * Cuts a last log line that a killed process left without its newline: lines appended after it
   * would otherwise join it into one line that is not JSON, which every reader of the log refuses.
   * Returns whether a fragment was cut.
   */
  dropTornLogLine(): boolean {
    if (!existsSync(this.logPath)) return false;
    const text = readFileSync(this.logPath, 'utf8');
    if (text === '' || text.endsWith('\n')) return false;
    truncateSync(this.logPath, Buffer.byteLength(text.slice(0, text.lastIndexOf('\n') + 1), 'utf8'));
    return true;
  }

  appendLog(entry: Record<string, unknown>): void { appendFileSync(this.logPath, `${JSON.stringify(entry)}\n`); }

  checkpointDir(step: number): string { return path.join(this.checkpointsDir, `step-${step}`); }

  /** Complete checkpoints (every file present), oldest first. Temp folders, and one pruned while this reads, are left out. */
  listCheckpoints(): { step: number; dir: string }[] {
    if (!existsSync(this.checkpointsDir)) return [];
    return readdirSync(this.checkpointsDir)
      .map((name) => ({ name, m: /^step-(\d+)$/.exec(name) }))
      .filter((e): e is { name: string; m: RegExpExecArray } => e.m !== null)
      .map((e) => ({ step: Number(e.m[1]), dir: path.join(this.checkpointsDir, e.name) }))
      .filter((c) => statSync(c.dir, { throwIfNoEntry: false })?.isDirectory() === true && CHECKPOINT_FILES.every((f) => existsSync(path.join(c.dir, f))))
      .sort((a, b) => a.step - b.step);
  }

  latestCheckpoint(): { step: number; dir: string } | undefined {
    const all = this.listCheckpoints();
    return all[all.length - 1];
  }

  /** Writes checkpoints/step-<N>/ atomically from named file contents. */
  writeCheckpoint(step: number, files: Record<string, Uint8Array | string>): string {
    const dir = this.checkpointDir(step);
    writeDirAtomic(dir, (tmp) => {
      // writeDirAtomic fsyncs every file and the folder before the rename.
      for (const [name, data] of Object.entries(files)) writeFileSync(path.join(tmp, name), data);
    });
    return dir;
  }
}
