// The launcher's contract, as torchrun's: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR
// and MASTER_PORT in the environment (torch.distributed.run's "environment variable" rendezvous), so
// torchrun-style launchers, Slurm wrappers and Kubernetes training operators can start `ddpm train`.
// Byte-level and tensor-free: this file only reads and checks strings.

export interface LaunchEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
}

export const LAUNCH_VARS = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'] as const;

/** Whether a launcher started this process as one rank of a group (RANK or WORLD_SIZE is set). */
export function launchedAsRank(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.RANK !== undefined || env.WORLD_SIZE !== undefined;
}

/**
 * Reads and checks torchrun's variables. LOCAL_RANK and LOCAL_WORLD_SIZE default to a one-rank-per-
 * machine layout (RANK and 1) when a cluster launcher sets only the global ones.
 */
export function readLaunchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv {
  const int = (name: (typeof LAUNCH_VARS)[number], min: number, fallback?: number): number => {
    const v = env[name];
    if (v === undefined || v === '') {
      if (fallback !== undefined) return fallback;
      throw new Error(`${name} is not set; a launched rank needs ${LAUNCH_VARS.join(', ')} (torchrun's variables), or start it with ddpm train --nproc-per-node N`);
    }
    if (!/^\d+$/.test(v.trim()) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
      throw new Error(`${name}=${JSON.stringify(v)} must be an integer >= ${min}`);
    }
    return Number(v);
  };
  const worldSize = int('WORLD_SIZE', 1);
  const rank = int('RANK', 0);
  if (rank >= worldSize) throw new Error(`RANK=${rank} must be below WORLD_SIZE=${worldSize}`);
  const localWorldSize = int('LOCAL_WORLD_SIZE', 1, 1);
  const localRank = int('LOCAL_RANK', 0, rank % localWorldSize);
  if (localRank >= localWorldSize) throw new Error(`LOCAL_RANK=${localRank} must be below LOCAL_WORLD_SIZE=${localWorldSize}`);
  const masterAddr = env.MASTER_ADDR?.trim() || (worldSize === 1 ? '127.0.0.1' : '');
  if (!masterAddr) throw new Error(`MASTER_ADDR is not set; with WORLD_SIZE=${worldSize} every rank must know where rank 0 listens`);
  const masterPort = int('MASTER_PORT', 1, worldSize === 1 ? 29500 : undefined);
  if (masterPort > 65535) throw new Error(`MASTER_PORT=${masterPort} must be a TCP port in [1, 65535]`);
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort };
}

/** The variables a launcher hands rank `rank` (the inverse of readLaunchEnv). */
export function launchVars(e: LaunchEnv): Record<(typeof LAUNCH_VARS)[number], string> {
  return {
    RANK: String(e.rank), WORLD_SIZE: String(e.worldSize), LOCAL_RANK: String(e.localRank),
    LOCAL_WORLD_SIZE: String(e.localWorldSize), MASTER_ADDR: e.masterAddr, MASTER_PORT: String(e.masterPort),
  };
}
