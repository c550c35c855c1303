// Finds and loads Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747; MIT licence).
// Search order (README, `ddpm train --data`): --data DIR, then $FASHION_MNIST_DIR, then Debian's
// dataset-fashion-mnist folder.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadImagesAndLabels, type ImagesAndLabels } from './idx.js';

export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The four official files, without their .gz suffix. */
export const FASHION_MNIST_FILES = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
} as const;
const ALL_FILES = [
  FASHION_MNIST_FILES.train.images, FASHION_MNIST_FILES.train.labels,
  FASHION_MNIST_FILES.test.images, FASHION_MNIST_FILES.test.labels,
];

/** Label i is FASHION_MNIST_CLASSES[i] (the dataset's README). */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);

export interface LocateOptions {
  /** Only this folder is searched when given (the CLI's --data). */
  dir?: string;
  /** Defaults to process.env; $FASHION_MNIST_DIR is read from it. */
  env?: NodeJS.ProcessEnv;
  /** Last resort folder; defaults to Debian's. Injectable so tests do not depend on the host. */
  defaultDir?: string;
}

export class FashionMnistError extends Error {
  override name = 'FashionMnistError';
}

/** The path of `base.gz` or raw `base` in dir (gz first: that is what the download writes). */
export function fashionMnistFile(dir: string, base: string): string | undefined {
  for (const name of [`${base}.gz`, base]) {
    const p = join(dir, name);
    if (existsSync(p) && statSync(p).isFile()) return p;
  }
  return undefined;
}

function missingIn(dir: string): string[] {
  return ALL_FILES.filter((b) => fashionMnistFile(dir, b) === undefined).map((b) => `${b}[.gz]`);
}

function howToGet(dir: string): string {
  return `get them with \`ddpm data download fashion-mnist --dir ${dir}\` or \`apt install dataset-fashion-mnist\``;
}

/** The folder holding all four Fashion-MNIST files; throws naming what is missing where. */
export function locateFashionMnist(opts: LocateOptions = {}): string {
  if (opts.dir !== undefined) {
    const dir = resolve(opts.dir);
    const missing = missingIn(dir);
    if (missing.length === 0) return dir;
    throw new FashionMnistError(
      `Fashion-MNIST not found in ${dir} (given as the data folder): missing ${missing.join(', ')}; ` +
      `expected the four IDX files, .gz or raw. Hint: ${howToGet(dir)}`,
    );
  }
  const env = opts.env ?? process.env;
  const envDir = env['FASHION_MNIST_DIR'];
  // A set variable is explicit like --data: falling back past it would silently train on other files.
  if (envDir !== undefined && envDir !== '') {
    const dir = resolve(envDir);
    const missing = missingIn(dir);
    if (missing.length === 0) return dir;
    throw new FashionMnistError(
      `Fashion-MNIST not found in $FASHION_MNIST_DIR=${dir}: missing ${missing.join(', ')}; ` +
      `expected the four IDX files, .gz or raw. Hint: ${howToGet(dir)}, or unset FASHION_MNIST_DIR`,
    );
  }
  const dir = resolve(opts.defaultDir ?? DEFAULT_FASHION_MNIST_DIR);
  const missing = missingIn(dir);
  if (missing.length === 0) return dir;
  const found = missing.length === ALL_FILES.length ? 'none of the files' : `missing ${missing.join(', ')}`;
  throw new FashionMnistError(
    `Fashion-MNIST not found: no --data folder, $FASHION_MNIST_DIR unset, and ${dir} has ${found}. ` +
    `Hint: ${howToGet('DIR')} (then pass --data DIR or set FASHION_MNIST_DIR=DIR)`,
  );
}

export interface FashionMnist extends ImagesAndLabels {
  classNames: readonly string[];
  /** The folder the files were read from. */
  dir: string;
}

export function loadFashionMnist(split: 'train' | 'test', opts: LocateOptions = {}): FashionMnist {
  const names = FASHION_MNIST_FILES[split];
  if (names === undefined) {
    throw new FashionMnistError(`loadFashionMnist: unknown split ${JSON.stringify(split)}; expected 'train' or 'test'`);
  }
  const dir = locateFashionMnist(opts);
  // Should a file vanish after locate, readIdxFile reports the raw path it could not read.
  const images = fashionMnistFile(dir, names.images) ?? join(dir, names.images);
  const labels = fashionMnistFile(dir, names.labels) ?? join(dir, names.labels);
  const data = loadImagesAndLabels(images, labels, { numClasses: FASHION_MNIST_CLASSES.length });
  return { ...data, classNames: FASHION_MNIST_CLASSES, dir };
}
