// --classifier and --classifier-scale of `ddpm sample` and `ddpm eval`: the refusals that need nothing
// loaded, and the classifier run opened for the run it is to guide (train/classifier.ts).
import type { Device } from '../tensor/index.js';
import type { RunConfig } from '../train/config.js';
import { openClassifier as open, type OpenClassifier } from '../train/classifier.js';

export interface ClassifierGuidanceFlags { classifier?: string; classifierScale?: number }

/** Refusals that need nothing loaded: a scale without a classifier, a classifier without a class to guide toward. */
export function checkClassifierFlags(cmd: string, f: ClassifierGuidanceFlags, classGiven: boolean): void {
  if (f.classifierScale !== undefined && f.classifier === undefined) throw new Error(`${cmd}: --classifier-scale ${f.classifierScale} needs --classifier DIR (a run of \`ddpm train-classifier\`)`);
  if (f.classifier !== undefined && !classGiven) {
    throw new Error(`${cmd}: --classifier guides every image toward a class; give --class C (or a list, e.g. --class 0,1,2,3,4,5,6,7,8,9)`);
  }
}

/** The classifier of --classifier for diffusion run `runDir`, or null without the flag. */
export function openClassifier(f: ClassifierGuidanceFlags, run: RunConfig, runDir: string, device: Device): OpenClassifier | null {
  return f.classifier === undefined ? null : open(f.classifier, run, runDir, f.classifierScale, device);
}
