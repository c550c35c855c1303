// The forward view's data, computed in the server's own process (one image, one qSample: a few ms):
// a Fashion-MNIST training image at the run's size, noised to x_t with a seeded generator, and the
// schedule curves (beta, alphabar, log-SNR) of the run.
import { Generator, tensor, tidy } from '../tensor/index.js';
import { Diffusion, makeSchedule, type ScheduleConfig } from '../diffusion/index.js';
import { FASHION_MNIST_CLASSES, FashionMnistError, loadFashionMnist, type FashionMnist } from '../data/fashion-mnist.js';
import { prepareImages } from '../data/transforms.js';
import { presetDefaults } from '../train/config.js';
import { pngDataUrl } from '../io/png.js';
import { tensorGrid } from '../viz/tensor-grid.js';
import { LIMITS, type ForwardFrame, type ScheduleCurves } from './protocol.js';
import { Fields, RequestError } from './validate.js';

/** Images are drawn about this many pixels wide (a 16x16 image at 4x). */
const DISPLAY_PX = 128;

/** The training split, loaded once per data folder (about 47 MB; parsing it takes a second). */
const datasets = new Map<string, FashionMnist>();

function trainingSet(dataDir: string | undefined): FashionMnist {
  const key = dataDir ?? '';
  let ds = datasets.get(key);
  if (!ds) {
    try {
      ds = loadFashionMnist('train', dataDir !== undefined ? { dir: dataDir } : {});
    } catch (e) {
      if (e instanceof FashionMnistError) throw new RequestError(503, `the forward view needs the Fashion-MNIST training images: ${e.message}`);
      throw e;
    }
    datasets.set(key, ds);
  }
  return ds;
}

export function scheduleCurves(c: ScheduleConfig): ScheduleCurves {
  const s = makeSchedule(c);
  // -Infinity (a zero terminal SNR) has no JSON form; it is sent as null.
  return { T: s.T, kind: c.kind, beta: Array.from(s.beta), alphaBar: Array.from(s.alphaBar), logSnr: Array.from(s.logSnr) };
}

/** What the forward view shows for a run (or, without one, the dli02 preset). */
export interface ForwardSource { schedule: ScheduleConfig; imageSize: number }

export function defaultForwardSource(): ForwardSource {
  const c = presetDefaults('dli02');
  return { schedule: c.schedule, imageSize: c.model.imageSize };
}

const dataUrl = (x: Parameters<typeof tensorGrid>[0], scale: number): string => pngDataUrl(tensorGrid(x, { nrow: 1, padding: 0, scale }));

/** x_0 and x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps of training image `index`, with alphabar_t and SNR(t). */
export function forwardFrame(q: Fields, src: ForwardSource, dataDir: string | undefined): ForwardFrame {
  const terms = makeSchedule(src.schedule);
  const T = terms.T;
  const t = q.int('t', 0, T - 1);
  const seed = q.optInt('seed', 0, LIMITS.maxSeed) ?? 0;
  const ds = trainingSet(dataDir);
  const index = q.int('index', 0, ds.count - 1);
  const size = src.imageSize;
  const scale = Math.max(1, Math.round(DISPLAY_PX / size));
  const d = new Diffusion(terms);
  try {
    const px = ds.height * ds.width;
    const images = tidy(() => {
      const x0 = prepareImages(ds.images.subarray(index * px, (index + 1) * px), { n: 1, c: 1, h: ds.height, w: ds.width }, size); // (1, 1, S, S)
      const xt = d.qSample(x0, tensor(BigInt64Array.of(BigInt(t)), [1], { dtype: 'int64' }), undefined, new Generator(seed)).xt; // (1, 1, S, S)
      return { x0: dataUrl(x0, scale), xt: dataUrl(xt, scale) };
    });
    return {
      index, t, T, alphaBar: terms.alphaBar[t]!, snr: terms.snr[t]!, label: FASHION_MNIST_CLASSES[ds.labels[index]!] ?? String(ds.labels[index]), ...images,
    };
  } finally {
    d.dispose();
  }
}
