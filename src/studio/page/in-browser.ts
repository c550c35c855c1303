// The Generate view's "in this browser" path: the run's checkpoint exported to ONNX by the server
// (GET /api/runs/:run/model.onnx), sampled here with the exported page's code (samplers/onnx-model.ts
// sampleOnnx on onnxruntime-web, opened by web/page/ort-session.ts), so no libtorch worker runs. The
// noise is Philox (samplers/philox.ts), so a seed gives what `ddpm sample --model` gives on the export.
import { readOnnxMetadata, onnxModelInfo, sampleOnnx, CLASSIFIER_NEEDS_LIBTORCH, type OnnxModelInfo } from '../../samplers/onnx-model.js';
import type { SamplerName } from '../../samplers/sample.js';
import { makeGrid } from '../../viz/grid.js';
import { OrtTensor, createSession, image8DataUrl, paintingBetweenCalls } from '../../web/page/ort-session.js';
import type { GenerateFrame } from '../protocol.js';
import { StudioError, report } from './api.js';

/** The final grid's upscale, as `ddpm sample --grid` (--scale 4) and the exported page. */
const RESULT_SCALE = 4;
/** The frames' width on screen, as the server's frames (generate-worker.ts). */
const DISPLAY_PX = 256;

export interface BrowserRequest {
  run: string; checkpoint?: string; sampler: string; steps?: number; eta?: number; guidance?: number; class?: number; seed: number; count: number;
  /** Refused here: classifier guidance runs on the server (libtorch). */
  classifier?: string;
}
export interface BrowserResult { grid: string; backend: string; seconds: number }

interface Opened { session: Awaited<ReturnType<typeof createSession>>; info: OnnxModelInfo }
const opened = new Map<string, Promise<Opened>>();

async function open(run: string, checkpoint: string | undefined): Promise<Opened> {
  const url = `/api/runs/${encodeURIComponent(run)}/model.onnx${checkpoint ? `?checkpoint=${encodeURIComponent(checkpoint)}` : ''}`;
  let p = opened.get(url);
  if (!p) {
    p = (async () => {
      const res = await fetch(url);
      if (!res.ok) {
        const body = await res.json().catch(() => null) as { error?: string; field?: string } | null;
        throw new StudioError(`GET ${url}: ${body?.error ?? `HTTP ${res.status}`}`, res.status, body?.field);
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      const info = onnxModelInfo(readOnnxMetadata(bytes, `${run} (exported)`), `${run} (exported)`);
      // WASM: WebGPU's float results differ from the CPU's, and this path promises ddpm sample --model's images.
      return { session: await createSession(bytes, 'wasm', new URL('/ort/', location.href).href), info };
    })();
    opened.set(url, p);
    p.catch(() => opened.delete(url));
  }
  return p;
}

/** Samples as the request says, calling `onFrame` after each step; the finished grid as a PNG data URL. */
export async function generateInBrowser(req: BrowserRequest, onFrame: (f: GenerateFrame) => void): Promise<BrowserResult> {
  if (req.classifier !== undefined) {
    const e = new Error(`In this browser: ${CLASSIFIER_NEEDS_LIBTORCH}`);
    report(e);
    throw e;
  }
  let o: Opened;
  try {
    o = await open(req.run, req.checkpoint);
  } catch (e) {
    report(e);
    throw e;
  }
  const { info, session } = o;
  const { channels: c, imageSize: size, numClasses: K } = info;
  const n = req.count;
  const labels = K > 0 && req.guidance !== undefined ? Array.from({ length: n }, (_, i) => req.class ?? i % K) : undefined;
  const nrow = labels && req.class === undefined ? Math.min(n, K) : Math.ceil(Math.sqrt(n));
  const scale = Math.max(1, Math.round(DISPLAY_PX / size));
  const grid = (v: Float32Array): string => image8DataUrl(makeGrid(v, n, c, size, size, { nrow, scale }));
  // A frame shows the x_t its step was fed, as the server's frames do: the previous step's output, and
  // for the first step x_T = sqrt(abar_T) x0_hat + sqrt(1 - abar_T) eps_hat (Ho et al. 2020, eq. 4),
  // which holds for the step's own x0_hat and eps_hat (eps is re-derived when x0 is clipped).
  let fed: Float32Array | null = null;
  const t0 = performance.now();
  const x = await sampleOnnx(paintingBetweenCalls(session.session), OrtTensor, info, {
    n, seed: req.seed, sampler: req.sampler as SamplerName,
    ...(req.steps !== undefined ? { steps: req.steps } : {}),
    ...(req.eta !== undefined ? { eta: req.eta } : {}),
    ...(labels ? { labels, guidance: req.guidance ?? 0 } : {}),
    onStep: (st) => {
      if (!fed) {
        const ab = info.terms.alphaBar[st.t]!;
        const [a, b] = [Math.sqrt(ab), Math.sqrt(1 - ab)];
        fed = st.x0.data.map((x0, i) => a * x0 + b * st.eps.data[i]!);
      }
      onFrame({ kind: 'generate', index: st.index, steps: st.steps, t: st.t, tPrev: st.tPrev, sigma: st.sigma, xt: grid(fed), x0: grid(st.x0.data) });
      fed = Float32Array.from(st.x.data);
    },
  });
  if (!x.data.every(Number.isFinite)) throw new Error('the samples have NaN or infinite values; the model has diverged');
  return { grid: image8DataUrl(makeGrid(x.data, n, c, size, size, { nrow, scale: RESULT_SCALE })), backend: session.backend, seconds: (performance.now() - t0) / 1000 };
}
