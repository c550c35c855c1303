// The plain description of an ONNX model that the graph builder (onnx-graph.ts) produces and the file
// format (io/onnx.ts) encodes: names, shapes, attributes and typed arrays, no tensors and no protobuf.

export type OnnxElemType = 'float32' | 'int64' | 'bool';

/** A constant tensor of the graph (an initializer): its values in row-major order. */
export interface OnnxInitializer { name: string; type: OnnxElemType; dims: number[]; data: Float32Array | BigInt64Array | Uint8Array }

/** An attribute, tagged with its ONNX kind (an int and a float of the same value are different attributes). */
export type OnnxAttribute = { i: number } | { f: number } | { s: string } | { ints: number[] } | { floats: number[] };

export interface OnnxNode { name: string; opType: string; inputs: string[]; outputs: string[]; attributes: Record<string, OnnxAttribute> }

/** A graph input or output: its element type and shape, a string naming a symbolic (dynamic) dimension. */
export interface OnnxValueInfo { name: string; type: OnnxElemType; shape: (number | string)[] }

export interface OnnxGraphData {
  name: string;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
}

export interface OnnxModelData {
  /** ONNX IR version (8 goes with opset 17: ONNX 1.12). */
  irVersion: number;
  /** Version of the default ("ai.onnx") operator set. */
  opset: number;
  producerName: string;
  producerVersion: string;
  graph: OnnxGraphData;
  /** metadata_props: string keys to string values. */
  metadata: Record<string, string>;
}
