// ONNX model files: a plain description of a graph to and from ONNX's protobuf encoding, with
// protobufjs and ONNX's own schema (proto/onnx.proto, vendored). Byte-level only: the graph builder
// (nn/onnx-graph.ts) turns modules into that description (nn/onnx-ir.ts); nothing here knows about tensors.
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import type { OnnxAttribute, OnnxElemType, OnnxInitializer, OnnxModelData, OnnxValueInfo } from '../nn/onnx-ir.js';

/** TensorProto.DataType's codes of the element types ddpm-ts writes. */
export const ONNX_ELEM_TYPES: Record<OnnxElemType, number> = { float32: 1, bool: 9, int64: 7 };

let modelType: protobuf.Type | null = null;

/** onnx.ModelProto from the vendored schema, parsed once, with the schema's snake_case field names. */
function modelProto(): protobuf.Type {
  if (!modelType) {
    const file = new URL('../../../proto/onnx.proto', import.meta.url);
    const { root } = protobuf.parse(readFileSync(file, 'utf8'), { keepCase: true });
    modelType = root.lookupType('onnx.ModelProto');
  }
  return modelType;
}

const ATTRIBUTE_TYPES = { f: 1, i: 2, s: 3, floats: 6, ints: 7 } as const;
const TYPE_OF_CODE = new Map(Object.entries(ONNX_ELEM_TYPES).map(([k, v]) => [v, k as OnnxElemType]));

function valueInfo(v: OnnxValueInfo): object {
  return {
    name: v.name,
    type: {
      tensor_type: {
        elem_type: ONNX_ELEM_TYPES[v.type],
        shape: { dim: v.shape.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d })) },
      },
    },
  };
}

function attribute(name: string, a: OnnxAttribute): object {
  const [kind, value] = Object.entries(a)[0] as [keyof typeof ATTRIBUTE_TYPES, unknown];
  const v = kind === 's' ? new TextEncoder().encode(value as string) : value;
  return { name, type: ATTRIBUTE_TYPES[kind], [kind]: v };
}

function initializer(t: OnnxInitializer): object {
  const expected = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== expected) {
    throw new Error(`ONNX initializer ${t.name}: ${t.data.length} values for dims [${t.dims.join(', ')}] (${expected} expected)`);
  }
  // raw_data is little-endian, as typed arrays are on every platform Node runs on.
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name: t.name, dims: t.dims, data_type: ONNX_ELEM_TYPES[t.type], raw_data: raw };
}

/** The protobuf bytes of a model (an .onnx file's content). */
export function encodeOnnx(m: OnnxModelData): Uint8Array {
  const type = modelProto();
  const g = m.graph;
  const message = type.fromObject({
    ir_version: m.irVersion,
    opset_import: [{ domain: '', version: m.opset }],
    producer_name: m.producerName,
    producer_version: m.producerVersion,
    graph: {
      name: g.name,
      node: g.nodes.map((n) => ({
        name: n.name, op_type: n.opType, input: n.inputs, output: n.outputs,
        attribute: Object.entries(n.attributes).map(([k, a]) => attribute(k, a)),
      })),
      initializer: g.initializers.map(initializer),
      input: g.inputs.map(valueInfo),
      output: g.outputs.map(valueInfo),
    },
    metadata_props: Object.entries(m.metadata).map(([key, value]) => ({ key, value })),
  });
  return type.encode(message).finish();
}

interface DecodedValueInfo { name: string; type?: { tensor_type?: { elem_type?: number; shape?: { dim?: { dim_value?: number; dim_param?: string }[] } } } }
interface DecodedAttribute { name: string; type: number; i?: number; f?: number; s?: Uint8Array; ints?: number[]; floats?: number[] }
interface DecodedModel {
  ir_version?: number;
  opset_import?: { domain?: string; version?: number }[];
  producer_name?: string;
  producer_version?: string;
  graph?: {
    name?: string;
    node?: { name?: string; op_type: string; input?: string[]; output?: string[]; attribute?: DecodedAttribute[] }[];
    initializer?: { name: string; dims?: number[]; data_type: number; raw_data?: Uint8Array }[];
    input?: DecodedValueInfo[];
    output?: DecodedValueInfo[];
  };
  metadata_props?: { key: string; value: string }[];
}

function decodeValueInfo(v: DecodedValueInfo, where: string): OnnxValueInfo {
  const t = v.type?.tensor_type;
  const type = TYPE_OF_CODE.get(t?.elem_type ?? -1);
  if (!type) throw new Error(`${where}: ${v.name} has element type ${t?.elem_type}, which ddpm-ts does not read (float32, int64 or bool expected)`);
  return { name: v.name, type, shape: (t?.shape?.dim ?? []).map((d) => d.dim_param ?? d.dim_value ?? '?') };
}

function decodeAttribute(a: DecodedAttribute): OnnxAttribute {
  switch (a.type) {
    case ATTRIBUTE_TYPES.f: return { f: a.f ?? 0 };
    case ATTRIBUTE_TYPES.i: return { i: a.i ?? 0 };
    case ATTRIBUTE_TYPES.s: return { s: new TextDecoder().decode(a.s ?? new Uint8Array()) };
    case ATTRIBUTE_TYPES.floats: return { floats: a.floats ?? [] };
    case ATTRIBUTE_TYPES.ints: return { ints: a.ints ?? [] };
    default: throw new Error(`ONNX attribute ${a.name} has type ${a.type}, which ddpm-ts does not read`);
  }
}

function typedView(type: OnnxElemType, raw: Uint8Array): Float32Array | BigInt64Array | Uint8Array {
  const copy = raw.slice(); // aligned, and independent of the file's buffer
  if (type === 'float32') return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  if (type === 'int64') return new BigInt64Array(copy.buffer, 0, copy.byteLength / 8);
  return copy;
}

/**
 * A model from its protobuf bytes, as far as ddpm-ts writes models: initializers must be in
 * raw_data of the element types above. `source` names the file in errors.
 */
export function decodeOnnx(bytes: Uint8Array, source = 'ONNX model'): OnnxModelData {
  let m: DecodedModel;
  try {
    const type = modelProto();
    m = type.toObject(type.decode(bytes), { longs: Number, bytes: Uint8Array, defaults: false, arrays: true }) as DecodedModel;
  } catch (e) {
    throw new Error(`${source} is not an ONNX model (its protobuf could not be decoded: ${(e as Error).message})`, { cause: e });
  }
  if (!m.graph || m.ir_version === undefined) throw new Error(`${source} is not an ONNX model (no ir_version or graph)`);
  const g = m.graph;
  const opset = m.opset_import?.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx')?.version;
  if (opset === undefined) throw new Error(`${source}: the model imports no default (ai.onnx) operator set`);
  return {
    irVersion: m.ir_version,
    opset,
    producerName: m.producer_name ?? '',
    producerVersion: m.producer_version ?? '',
    metadata: Object.fromEntries((m.metadata_props ?? []).map((p) => [p.key, p.value])),
    graph: {
      name: g.name ?? '',
      inputs: (g.input ?? []).map((v) => decodeValueInfo(v, `${source}: graph input`)),
      outputs: (g.output ?? []).map((v) => decodeValueInfo(v, `${source}: graph output`)),
      nodes: (g.node ?? []).map((n) => ({
        name: n.name ?? '', opType: n.op_type, inputs: n.input ?? [], outputs: n.output ?? [],
        attributes: Object.fromEntries((n.attribute ?? []).map((a) => [a.name, decodeAttribute(a)])),
      })),
      initializers: (g.initializer ?? []).map((t) => {
        const type = TYPE_OF_CODE.get(t.data_type);
        if (!type || !t.raw_data) throw new Error(`${source}: initializer ${t.name} is not raw float32, int64 or bool data (data_type ${t.data_type})`);
        return { name: t.name, type, dims: t.dims ?? [], data: typedView(type, t.raw_data) };
      }),
    },
  };
}
