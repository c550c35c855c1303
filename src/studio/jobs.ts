// The studio's heavy jobs: one training and one generation at a time, each in its own process
// (child_process.fork) so the server answers while they run. A job's events are kept so a page
// that subscribes late (or reconnects) catches up.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { GenerateFrame, JobInfo, JobKind, TrainProgress } from './protocol.js';
import type { GenerateJobInput, ParentMessage, TrainJobInput, WorkerMessage } from './ipc.js';
import { RequestError } from './validate.js';

export type JobEvent =
  | { event: 'progress'; data: TrainProgress | GenerateFrame }
  | { event: 'done'; data: JobInfo }
  | { event: 'error'; data: { error: string } };

interface Job {
  info: JobInfo;
  child: ChildProcess | null;
  /** What a late subscriber is sent: every frame of a generation, the last progress of a training. */
  replay: JobEvent[];
  listeners: Set<(e: JobEvent) => void>;
  grid?: Buffer;
  gif?: Buffer;
  stderr: string;
}

const ENDED = new Set(['done', 'stopped', 'failed']);
/** Generations whose grid and GIF stay in memory (a GIF of 200 frames of 64 images is megabytes). */
const KEEP_GENERATIONS = 4;
/** The end of a worker's stderr kept for the message of a crash. */
const STDERR_TAIL = 2000;

const WORKERS: Record<JobKind, URL> = {
  train: new URL('./train-worker.js', import.meta.url),
  generate: new URL('./generate-worker.js', import.meta.url),
};

export class Jobs {
  readonly #jobs = new Map<string, Job>();
  #count = 0;
  /** Set by close(): a job started during its grace period would outlive the server. */
  #closing = false;

  /** threads: libtorch threads of every job, a server setting (not a request field). */
  constructor(private readonly threads: number) {}

  /** The job of `kind` that has not ended, if any. */
  active(kind: JobKind): JobInfo | null {
    for (const j of this.#jobs.values()) if (j.info.kind === kind && !ENDED.has(j.info.state)) return j.info;
    return null;
  }

  get(id: string): Job {
    const j = this.#jobs.get(id);
    if (!j) throw new RequestError(404, `no job "${id}" (job ids are given by POST /api/train and /api/generate; jobs are forgotten when the studio restarts)`, 'id');
    return j;
  }

  /** Starts a job in a worker process; 409 naming the running job when one of this kind is busy. */
  start(kind: JobKind, run: string, input: Omit<TrainJobInput, 'threads'> | Omit<GenerateJobInput, 'threads'>): JobInfo {
    if (this.#closing) throw new RequestError(503, 'the studio is shutting down and starts no new jobs; start `ddpm studio` again');
    const busy = this.active(kind);
    if (busy) {
      const what = kind === 'train' ? 'training' : 'generation';
      throw new RequestError(409, `a ${what} job is already running: ${busy.id} on run "${busy.run}" (${busy.state}); one ${what} job runs at a time, so wait for it to end or stop it (POST /api/jobs/${busy.id}/stop)`);
    }
    const id = `${kind}-${++this.#count}`;
    const info: JobInfo = { id, kind, state: 'running', run, startedAt: new Date().toISOString(), endedAt: null, progress: null };
    const child = fork(fileURLToPath(WORKERS[kind]), [], {
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      // One OpenBLAS thread trains fastest here (README, Speed); it must be set before the library loads.
      env: kind === 'train' ? { ...process.env, OPENBLAS_NUM_THREADS: '1' } : process.env,
    });
    const job: Job = { info, child, replay: [], listeners: new Set(), stderr: '' };
    this.#jobs.set(id, job);
    child.stderr?.on('data', (b: Buffer) => { job.stderr = (job.stderr + b.toString('utf8')).slice(-STDERR_TAIL); });
    child.on('message', (m: WorkerMessage) => this.#onMessage(job, m));
    child.on('error', (e) => this.#end(job, 'failed', `the ${kind} worker could not run: ${e.message}`));
    child.on('close', (code, signal) => {
      job.child = null;
      if (ENDED.has(job.info.state)) return;
      // A generation stopped by a kill ends here; anything else closing early is a crash.
      if (job.info.state === 'stopping' && kind === 'generate') { this.#end(job, 'stopped'); return; }
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const tail = job.stderr.trim().split('\n').slice(-5).join('\n');
      this.#end(job, 'failed', `the ${kind} worker ${how} before finishing${tail ? `: ${tail}` : ''}`);
    });
    this.#send(job, { type: 'start', input: { ...input, threads: this.threads } as TrainJobInput | GenerateJobInput });
    if (kind === 'generate') this.#forgetOldGenerations();
    return info;
  }

  /** Asks a job to stop: training after its current step (it checkpoints), generation at once. A second stop is a no-op. */
  stop(id: string): JobInfo {
    const job = this.get(id);
    if (ENDED.has(job.info.state)) throw new RequestError(409, `job ${id} has already ended (${job.info.state}); there is nothing to stop`, 'id');
    if (job.info.state === 'stopping') return job.info;
    job.info.state = 'stopping';
    if (job.info.kind === 'train') this.#send(job, { type: 'stop' });
    else job.child?.kill('SIGTERM');
    return job.info;
  }

  /** Calls `listener` with the job's events so far, then with each new one; returns the unsubscribe. */
  subscribe(id: string, listener: (e: JobEvent) => void): () => void {
    const job = this.get(id);
    for (const e of job.replay) listener(e);
    if (ENDED.has(job.info.state)) listener(this.#endEvent(job));
    else job.listeners.add(listener);
    return () => job.listeners.delete(listener);
  }

  file(id: string, which: 'grid' | 'gif'): Buffer {
    const job = this.get(id);
    if (job.info.kind !== 'generate') throw new RequestError(404, `job ${id} is a ${job.info.kind} job; only generation jobs have a grid and a trajectory`, 'id');
    const bytes = job[which];
    if (!bytes) {
      const why = job.info.state === 'done' ? 'its files were dropped to save memory (only the newest generations are kept)' : `it is ${job.info.state}`;
      throw new RequestError(job.info.state === 'running' ? 409 : 404, `job ${id} has no ${which === 'grid' ? 'grid.png' : 'trajectory.gif'}: ${why}`, 'id');
    }
    return bytes;
  }

  /** Stops every job: training gets `graceMs` to write its checkpoint, then everything left is killed. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    const live = [...this.#jobs.values()].filter((j) => j.child);
    for (const j of live) {
      if (j.info.kind === 'train' && !ENDED.has(j.info.state)) {
        j.info.state = 'stopping';
        // Without its IPC channel the worker still stops with a checkpoint on SIGINT (train-worker.ts).
        if (j.child?.connected) this.#send(j, { type: 'stop' }); else j.child?.kill('SIGINT');
      } else j.child?.kill('SIGTERM');
    }
    await Promise.all(live.map((j) => new Promise<void>((resolve) => {
      const child = j.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('close', () => { clearTimeout(timer); resolve(); });
    })));
  }

  #send(job: Job, m: ParentMessage): void {
    if (job.child?.connected) job.child.send(m);
  }

  #onMessage(job: Job, m: WorkerMessage): void {
    if (ENDED.has(job.info.state)) return;
    switch (m.type) {
      case 'progress': {
        const p = m.progress;
        job.info.progress = p.kind === 'generate' ? { kind: 'generate', index: p.index, steps: p.steps } : p;
        const e: JobEvent = { event: 'progress', data: p };
        if (p.kind === 'generate') job.replay.push(e); else job.replay = [e];
        for (const l of job.listeners) l(e);
        break;
      }
      case 'done':
        if (m.grid) job.grid = Buffer.from(m.grid);
        if (m.gif) job.gif = Buffer.from(m.gif);
        this.#end(job, m.stopped || job.info.state === 'stopping' ? 'stopped' : 'done');
        break;
      case 'error':
        this.#end(job, 'failed', m.message);
        break;
    }
  }

  #endEvent(job: Job): JobEvent {
    return job.info.state === 'failed' ? { event: 'error', data: { error: job.info.error ?? 'the job failed' } } : { event: 'done', data: job.info };
  }

  #end(job: Job, state: 'done' | 'stopped' | 'failed', error?: string): void {
    if (ENDED.has(job.info.state)) return;
    job.info.state = state;
    job.info.endedAt = new Date().toISOString();
    if (error !== undefined) job.info.error = error;
    const e = this.#endEvent(job);
    for (const l of job.listeners) l(e);
    job.listeners.clear();
  }

  /** Frames of all but the newest generation, and the grid and GIF of all but the newest few, are dropped; their JobInfo stays. */
  #forgetOldGenerations(): void {
    const gens = [...this.#jobs.values()].filter((j) => j.info.kind === 'generate');
    gens.slice(0, -1).forEach((j) => { j.replay = []; });
    for (const j of gens.slice(0, Math.max(0, gens.length - KEEP_GENERATIONS))) {
      delete j.grid;
      delete j.gif;
    }
  }
}
