// Data-parallel training across processes and machines on c10d (torch.distributed's engine).
export {
  ProcessGroup, DistributedError, initProcessGroup, allReduce, broadcast, barrier, destroyProcessGroup, getRank, getWorldSize,
  availableBackends, BACKENDS, DEFAULT_TIMEOUT_MS, type Backend, type ReduceOp, type InitOptions,
} from './process-group.js';
export { GradientAverager, broadcastCoalesced, planBuckets, BUCKET_BYTES } from './buckets.js';
export { distributedPositions, samplesPerRank, rankRows } from '../data/distributed-sampler.js';
export { readLaunchEnv, launchedAsRank, launchVars, LAUNCH_VARS, type LaunchEnv } from './env.js';
