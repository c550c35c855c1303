// Tensors to and from safetensors files: the bridge between the byte-level reader/writer and the engine.
import { type Tensor, type DType, tensor, DTYPE_BYTES } from '../tensor/index.js';
import { type ParsedSafetensors, type RawTensor, type SafetensorsDtype, parseSafetensors, readSafetensorsFile, serializeSafetensors, SafetensorsError } from './safetensors.js';

const TO_SAFE: Partial<Record<DType, SafetensorsDtype>> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_SAFE: Partial<Record<SafetensorsDtype, DType>> = Object.fromEntries(Object.entries(TO_SAFE).map(([k, v]) => [v, k]));

export function toRaw(t: Tensor, name: string): RawTensor {
  const dtype = TO_SAFE[t.dtype];
  if (!dtype) throw new Error(`cannot save tensor "${name}" of dtype ${t.dtype} as safetensors`);
  const data = t.dataSync();
  return { dtype, shape: t.shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function fromRaw(r: RawTensor, name: string, source: string): Tensor {
  const dtype = FROM_SAFE[r.dtype];
  if (!dtype) throw new SafetensorsError(source, `dtype ${r.dtype} is not supported by ddpm-ts`, name);
  const expected = r.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
  if (r.data.byteLength !== expected) throw new SafetensorsError(source, `holds ${r.data.byteLength} bytes, expected ${expected}`, name);
  // Copy into an aligned buffer: views into the file are generally unaligned for typed arrays.
  const bytes = r.data.slice();
  return tensorOfBytes(bytes, r.shape, dtype);
}

function tensorOfBytes(bytes: Uint8Array, shape: number[], dtype: DType): Tensor {
  const buf = bytes.buffer as ArrayBuffer;
  switch (dtype) {
    case 'float32': return tensor(new Float32Array(buf), shape);
    case 'float64': return tensor(new Float64Array(buf), shape);
    case 'int64': return tensor(new BigInt64Array(buf), shape);
    case 'int32': return tensor(new Int32Array(buf), shape);
    case 'int16': return tensor(new Int16Array(buf), shape);
    case 'int8': return tensor(new Int8Array(buf), shape);
    case 'uint8': return tensor(bytes, shape);
    case 'bool': return tensor(bytes, shape, { dtype: 'bool' });
    default: throw new Error(`loading ${dtype} tensors is not supported`);
  }
}

export function serializeTensors(tensors: Map<string, Tensor>, metadata?: Record<string, string>): Buffer {
  const raw: Record<string, RawTensor> = {};
  for (const [k, t] of tensors) raw[k] = toRaw(t, k);
  return serializeSafetensors(raw, metadata);
}

/** Every tensor of parsed safetensors (validated whole before any tensor is made). */
function tensorsOf(parsed: ParsedSafetensors, source: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const tensors = new Map<string, Tensor>();
  for (const [k, r] of parsed.tensors) tensors.set(k, fromRaw(r, k, source));
  return { tensors, metadata: parsed.metadata };
}

/** Reads every tensor of a safetensors file. */
export function loadTensors(path: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  return tensorsOf(readSafetensorsFile(path), path);
}

/** Every tensor of safetensors bytes (serializeTensors' output); `source` names them in errors. */
export function parseTensors(bytes: Uint8Array, source: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  return tensorsOf(parseSafetensors(bytes, source), source);
}
