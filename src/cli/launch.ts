// `ddpm train --nproc-per-node N`: starts N worker processes on this machine and watches them, as
// `torchrun --standalone` (one machine) or `torchrun --nnodes M --node-rank i` (one of M machines)
// does. Each worker is `ddpm train` again with torchrun's variables (src/distributed/env.ts) in its
// environment; the workers form the process group themselves. The launcher only starts, forwards
// signals, and reports: when a worker fails it waits for the others to notice (they stop within
// --dist-timeout, naming the lost rank) and kills any still running after that.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { launchVars } from '../distributed/index.js';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  /** undefined: a free port on this machine (one node only). */
  masterPort: number | undefined;
  /** How long the workers wait for one another (--dist-timeout). */
  timeoutMs: number;
  /** The worker's command line: node's arguments (script and flags), launcher flags removed. */
  workerArgs: string[];
}

/** Flags the launcher consumes; the workers learn the same facts from the environment. */
export const LAUNCHER_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port', '--threads'];

/** argv without the launcher's flags (`--flag value` and `--flag=value` forms). */
export function stripFlags(argv: string[], flags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (flags.includes(a)) { i += 1; continue; }
    if (flags.some((f) => a.startsWith(`${f}=`))) continue;
    out.push(a);
  }
  return out;
}

/** A TCP port free on this machine now (the OS picks it), for a one-machine run's store. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts the workers and resolves to the exit code for the launcher: 0 when all succeeded, else the first failure's. */
export async function launchWorkers(o: LaunchOptions): Promise<number> {
  const worldSize = o.nprocPerNode * o.nnodes;
  const masterPort = o.masterPort ?? await freePort();
  const workers: { rank: number; child: ChildProcess; done: boolean }[] = [];
  for (let local = 0; local < o.nprocPerNode; local++) {
    const rank = o.nodeRank * o.nprocPerNode + local;
    const env = {
      ...process.env,
      ...launchVars({ rank, worldSize, localRank: local, localWorldSize: o.nprocPerNode, masterAddr: o.masterAddr, masterPort }),
    };
    // Its own process group: a Ctrl-C reaches the workers once, through the launcher, so each stops after the same step.
    const child = spawn(process.execPath, [...process.execArgv, ...o.workerArgs], { env, stdio: 'inherit', detached: true });
    workers.push({ rank, child, done: false });
  }
  process.stderr.write(`ddpm train: ${o.nprocPerNode} worker${o.nprocPerNode > 1 ? 's' : ''} of ${worldSize} (ranks ${workers.map((w) => `${w.rank} pid ${w.child.pid}`).join(', ')}), store at ${o.masterAddr}:${masterPort}\n`);
  const forward = (sig: NodeJS.Signals) => (): void => { for (const w of workers) if (!w.done) w.child.kill(sig); };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const killAll = (): void => { for (const w of workers) if (!w.done) w.child.kill('SIGKILL'); };
  process.on('exit', killAll);
  let firstFailure: number | null = null;
  let straggler: NodeJS.Timeout | undefined;
  try {
    await Promise.all(workers.map((w) => new Promise<void>((resolve) => {
      w.child.once('exit', (code, signal) => {
        w.done = true;
        if (code !== 0) {
          const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
          process.stderr.write(`ddpm train: rank ${w.rank} (pid ${w.child.pid}) ${how}\n`);
          if (firstFailure === null) {
            firstFailure = code ?? 1;
            // The others stop by themselves within --dist-timeout; any still running after that (and a margin) is stuck.
            straggler = setTimeout(() => {
              for (const s of workers) {
                if (!s.done) process.stderr.write(`ddpm train: rank ${s.rank} (pid ${s.child.pid}) did not stop within --dist-timeout after rank ${w.rank} failed; killing it\n`);
              }
              killAll();
            }, o.timeoutMs + 30_000);
          }
        }
        resolve();
      });
    })));
  } finally {
    clearTimeout(straggler);
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('exit', killAll);
  }
  return firstFailure ?? 0;
}
