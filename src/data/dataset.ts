// Opening the images a run is trained and measured on, as its configuration describes them: the
// Fashion-MNIST training or test split, or a folder of PNG/JPEG images (which has no test split, so
// its first images serve both), as float32 (N, C, S, S) tensors in [-1, 1] at the run's size.
// `ddpm train` and the studio's training (through train()), `ddpm likelihood` and the evaluation
// images all open a dataset here.
import { tensor, type Tensor } from '../tensor/index.js';
import { loadFashionMnist, type LocateOptions } from './fashion-mnist.js';
import { loadImageFolder, imageFolderTensors } from './image-folder.js';
import { prepareImages } from './transforms.js';

/** What a run's config says about its data. */
export interface DatasetSpec {
  kind: 'fashion-mnist' | 'folder';
  /** The image folder of a 'folder' dataset (a LocateOptions.dir given to openDataset takes precedence). */
  dir: string;
  /** The model's image channels (Fashion-MNIST is grey: 1). */
  channels: number;
  /** The model's image size: images are resized to size x size. */
  imageSize: number;
  /** Only the first N images (null: all). */
  limit: number | null;
  /** Classes the run was configured for (0: unconditional); a folder must have exactly as many. */
  numClasses: number;
}

/** The parts of a run's config (train/config.ts RunConfig) that say where its images are. */
export interface RunDataConfig {
  model: { imageChannels: number; imageSize: number; numClasses?: number };
  train: { dataset?: 'fashion-mnist' | 'folder'; data: string; limit: number | null };
}

/** The dataset a run's config describes (Fashion-MNIST unless train.dataset is 'folder'). */
export function datasetSpec(config: RunDataConfig): DatasetSpec {
  return {
    kind: config.train.dataset ?? 'fashion-mnist', dir: config.train.data, channels: config.model.imageChannels,
    imageSize: config.model.imageSize, limit: config.train.limit, numClasses: config.model.numClasses ?? 0,
  };
}

export interface Dataset {
  /** (N, C, S, S) float32 in [-1, 1] */
  images: Tensor;
  /** (N,) int64 class indices, or null when the data has none. */
  labels: Tensor | null;
  classNames: readonly string[] | null;
  /** The folder the images came from. */
  dataDir: string;
}

/**
 * The images of `spec`: Fashion-MNIST's `split`, or the image folder (either split). `data.dir`
 * overrides where the images are looked for (the CLI's --data).
 */
export function openDataset(spec: DatasetSpec, split: 'train' | 'test', data: LocateOptions = {}): Dataset {
  const { channels: c, imageSize: size, limit } = spec;
  if (spec.kind === 'folder') {
    const dir = data.dir ?? spec.dir;
    const f = loadImageFolder(dir, { channels: c as 1 | 3, imageSize: size });
    const { images, labels } = imageFolderTensors(f, limit ?? undefined);
    if (spec.numClasses > 0 && f.classNames?.length !== spec.numClasses) {
      images.dispose();
      labels?.dispose();
      throw new Error(`${dir} has ${f.classNames?.length ?? 0} classes (subfolders with images), but the run was configured for ${spec.numClasses}`);
    }
    return { images, labels, classNames: f.classNames, dataDir: dir };
  }
  if (c !== 1) throw new Error(`Fashion-MNIST is grey, but the model has ${c} image channels; use --channels 1, or --data with a folder of colour images`);
  const ds = loadFashionMnist(split, data);
  const n = limit === null ? ds.count : Math.min(limit, ds.count);
  const images = prepareImages(ds.images.subarray(0, n * ds.height * ds.width), { n, c: 1, h: ds.height, w: ds.width }, size);
  const labels = tensor(BigInt64Array.from(ds.labels.subarray(0, n), (v) => BigInt(v)), [n], { dtype: 'int64' });
  return { images, labels, classNames: ds.classNames, dataDir: ds.dir };
}
