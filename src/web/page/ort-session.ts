// What the exported page and the studio's "in this browser" switch share around onnxruntime-web:
// opening a session (WebGPU when the browser has it, else WASM, threaded where cross-origin isolation
// allows), letting the page paint between model calls, and drawing an 8-bit grid on a canvas. Both
// then run the one sampler code (samplers/onnx-model.ts sampleOnnx).
import * as ort from 'onnxruntime-web';
import type { OrtSessionLike, OrtTensorCtor } from '../../samplers/onnx-model.js';
import type { Image8 } from '../../io/png.js';

export { ort };
export const OrtTensor = ort.Tensor as unknown as OrtTensorCtor;

/**
 * A session on `bytes` (an exported .onnx), with onnxruntime-web's WASM runtime loaded from
 * `wasmBase` (a folder URL holding the files scripts/build-web.mjs copies). `want` = 'wasm' skips WebGPU.
 */
export async function createSession(bytes: Uint8Array, want: string | null, wasmBase: string): Promise<{ session: ort.InferenceSession; backend: string }> {
  ort.env.wasm.wasmPaths = wasmBase;
  // SharedArrayBuffer, which WASM threads need, exists only on cross-origin isolated pages.
  const isolated = self.crossOriginIsolated;
  const threads = isolated ? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8)) : 1;
  ort.env.wasm.numThreads = threads;
  type AdapterInfo = { vendor?: string; architecture?: string; description?: string };
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<{ info?: AdapterInfo } | null> } }).gpu;
  if (want !== 'wasm' && gpu) {
    try {
      const adapter = await gpu.requestAdapter();
      if (adapter) {
        // Which adapter: Chromium may offer SwiftShader, its Vulkan in software on the CPU, where no GPU is.
        const name = [adapter.info?.vendor, adapter.info?.architecture || adapter.info?.description].filter(Boolean).join(' ');
        return { session: await ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'] }), backend: name ? `WebGPU (${name})` : 'WebGPU' };
      }
    } catch (e) {
      console.warn('WebGPU unavailable, using WASM:', e);
    }
  }
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  return { session, backend: `WASM, ${threads} thread${threads === 1 ? '' : 's'}${isolated ? '' : ' (not cross-origin isolated)'}` };
}

/**
 * The session with a pause for the browser before a model call whenever a frame's time (1/30 s) has
 * passed: onnxruntime-web's WASM provider computes on this thread, and a chain of resolved promises
 * never lets the page paint, so the frames would otherwise appear only at the end.
 */
export function paintingBetweenCalls(session: OrtSessionLike): OrtSessionLike {
  let last = performance.now();
  return {
    inputNames: session.inputNames,
    run: async (feeds) => {
      if (performance.now() - last > 1000 / 30) {
        await new Promise<void>((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
        last = performance.now();
      }
      return session.run(feeds);
    },
  };
}

/** An 8-bit grid drawn on a canvas at its own size (CSS scales it up by `displayScale`, pixelated). */
export function drawImage8(canvas: HTMLCanvasElement, img: Image8, displayScale: number): void {
  canvas.width = img.width;
  canvas.height = img.height;
  canvas.style.width = `${img.width * displayScale}px`;
  canvas.style.height = `${img.height * displayScale}px`;
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new Error('page: no 2D canvas context');
  const rgba = new ImageData(img.width, img.height);
  for (let p = 0; p < img.width * img.height; p++) {
    for (let k = 0; k < 3; k++) rgba.data[p * 4 + k] = img.data[p * img.channels + (img.channels === 1 ? 0 : k)]!;
    rgba.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(rgba, 0, 0);
}

/** The grid as a PNG data URL (through a canvas at its own size). */
export function image8DataUrl(img: Image8): string {
  const canvas = document.createElement('canvas');
  drawImage8(canvas, img, 1);
  return canvas.toDataURL('image/png');
}
