export * from './step.js';
export * from './timesteps.js';
export * from './denoiser.js';
export * from './ddpm.js';
export * from './ddim.js';
export * from './dpm-solver.js';
export * from './pc.js';
export * from './sample.js';
