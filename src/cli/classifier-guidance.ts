// --classifier and --classifier-scale of `ddpm sample` and `ddpm eval`: the classifier run opened,
// checked against the diffusion run it is to guide, and made into the samplers' ClassifierGuidance.
import type { Tensor, Device } from '../tensor/index.js';
import type { RunConfig } from '../train/config.js';
import { loadClassifier, checkClassifierFits } from '../train/classifier.js';
import { classifierGradient, type ClassifierGuidance } from '../samplers/index.js';

export interface ClassifierGuidanceFlags { classifier?: string; classifierScale?: number }

/** The scale when --classifier is given without one: the classifier's own p(y | x_t), unsharpened. */
export const DEFAULT_CLASSIFIER_SCALE = 1;

/** Refusals that need nothing loaded: a scale without a classifier, a classifier without a class to guide toward. */
export function checkClassifierFlags(cmd: string, f: ClassifierGuidanceFlags, classGiven: boolean): void {
  if (f.classifierScale !== undefined && f.classifier === undefined) throw new Error(`${cmd}: --classifier-scale ${f.classifierScale} needs --classifier DIR (a run of \`ddpm train-classifier\`)`);
  if (f.classifier !== undefined && !classGiven) {
    throw new Error(`${cmd}: --classifier guides every image toward a class; give --class C (or a list, e.g. --class 0,1,2,3,4,5,6,7,8,9)`);
  }
}

export interface OpenClassifier {
  numClasses: number;
  scale: number;
  checkpoint: string;
  /** The guidance toward `labels` (one per image). */
  guidance(labels: readonly number[]): ClassifierGuidance<Tensor>;
  dispose(): void;
}

/** The classifier run of --classifier for diffusion run `runDir`, refused when it was trained for other images or another schedule. */
export function openClassifier(f: ClassifierGuidanceFlags, run: RunConfig, runDir: string, device: Device): OpenClassifier | null {
  if (f.classifier === undefined) return null;
  const { config, classifier, checkpoint } = loadClassifier(f.classifier);
  try {
    checkClassifierFits(config, f.classifier, run, runDir);
  } catch (e) {
    classifier.dispose();
    throw e;
  }
  if (device !== 'cpu') classifier.to(device);
  const gradLogProb = classifierGradient((x, t) => classifier.forward(x, t), device);
  const numClasses = classifier.numClasses;
  const scale = f.classifierScale ?? DEFAULT_CLASSIFIER_SCALE;
  return { numClasses, scale, checkpoint, guidance: (labels) => ({ scale, numClasses, labels, gradLogProb }), dispose: () => classifier.dispose() };
}
