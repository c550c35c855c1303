// What the views share: the server's options, navigation between tabs, and a "runs changed" signal
// (a training started or finished, so run lists elsewhere refresh).
import type { Options } from '../protocol.js';
import { guard } from './api.js';

export type ViewId = 'runs' | 'train' | 'generate' | 'forward';

export interface View {
  readonly el: HTMLElement;
  /** Called each time the tab is shown; `arg` is what `go` passed (e.g. a run name). */
  show(arg?: string): void;
}

/** A view whose `load` runs the first time it is shown, and again each time it is shown with an argument. */
export function lazyView(el: HTMLElement, load: (arg?: string) => Promise<void>): View {
  let loaded = false;
  return {
    el,
    show(arg) {
      if (!loaded || arg) {
        loaded = true;
        guard(() => load(arg));
      }
    },
  };
}

export interface Context {
  options: Options;
  go(view: ViewId, arg?: string): void;
  runsChanged(): void;
  onRunsChanged(listener: () => void): void;
}

/** Fashion-MNIST's label names, for class-conditional runs trained on it. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;
