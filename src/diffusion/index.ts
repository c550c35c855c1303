export * from './schedule.js';
export * from './process.js';
export * from './loss.js';
export * from './objectives.js';
export * from './classifier-loss.js';
export * from './distillation.js';
