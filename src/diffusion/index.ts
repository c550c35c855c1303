export * from './schedule.js';
export * from './process.js';
export * from './loss.js';
export * from './objectives.js';
export * from './classifier-loss.js';
export * from './distillation.js';
export * from './likelihood.js';
export * from './variance.js';
