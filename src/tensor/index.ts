export * from './tensor.js';
export * from './functional.js';
export * from './runtime.js';
export { Generator, defaultGenerator, manualSeed } from './generator.js';
export { tidy, keep } from './scope.js';
export { ArgumentError } from './check.js';
export type { DType, AnyTypedArray } from './dtype.js';
export { DTYPE_BYTES, DTYPE_CODE, isFloating } from './dtype.js';
export { LibtorchUnavailableError } from './native.js';
