// Fuzzer for the addon's boundary (native/addon.cc): every exported entry point is called with
// values that are not what it expects (undefined, null, numbers, strings, plain objects, arrays,
// typed arrays, functions, a bigint, a symbol, handles of the other kind, disposed handles), first
// one argument position at a time, then with every argument drawn at random. Contract per call:
// it returns, or it throws an Error whose message starts with the entry point's name. A crash
// (segfault, abort) kills the process, so run it in a child process (test/native-boundary.test.ts).
// Usage: node dist/tools/fuzz-native.js [--seed N] [--random N] [--trace]
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { native, nativeEntryPoints } from '../src/tensor/native.js';
import { Rng } from './fuzz.js';

export interface NativeFuzzOptions {
  seed?: number;
  /** Calls per entry point with every argument random. */
  random?: number;
  /** Writes each entry point's name to stderr before fuzzing it (the last line names a crash). */
  trace?: boolean;
}

export interface NativeFuzzSummary {
  entryPoints: number;
  calls: number;
  returned: number;
  refused: number;
  /** Calls that threw something else than an Error naming the entry point. */
  failures: string[];
  /** How many refusals were TypeErrors from the argument readers and handle tags. */
  typeErrors: number;
}

/** The most arguments any entry point reads (convTranspose2d reads 8). */
const MAX_ARITY = 8;

type Pool = { values: unknown[]; names: string[] };

// Fresh each round: an entry point may dispose, resize or detach what it is given.
function makePool(): Pool {
  const t = native.zeros([2, 3], 6); // float32
  const i = native.zeros([2, 3], 4); // int64
  const gone = native.ones([2], 6);
  native.dispose(gone);
  const g = native.newGenerator(7);
  const entries: [string, unknown][] = [
    ['undefined', undefined], ['null', null], ['0', 0], ['-1', -1], ['2.5', 2.5], ['NaN', NaN], ['true', true],
    ['"x"', 'x'], ['"cpu"', 'cpu'], ['{}', {}], ['[]', []], ['[1, 2]', [1, 2]], ['[null]', [null]], ['["a"]', ['a']],
    ['Float32Array(2)', new Float32Array(2)], ['function', () => 1], ['2n', 2n], ['symbol', Symbol('s')],
    ['tensor', t], ['int64 tensor', i], ['disposed tensor', gone], ['generator', g], ['[tensor, generator]', [t, g]],
    ['[tensor, disposed]', [t, gone]], ['{ handle: tensor }', { handle: t }],
  ];
  return { values: entries.map((e) => e[1]), names: entries.map((e) => e[0]) };
}

export function runNativeFuzz(o: NativeFuzzOptions = {}): NativeFuzzSummary {
  const rng = new Rng(o.seed ?? 1);
  const randomCalls = o.random ?? 40;
  const ops = nativeEntryPoints().sort();
  const s: NativeFuzzSummary = { entryPoints: ops.length, calls: 0, returned: 0, refused: 0, failures: [], typeErrors: 0 };
  const call = (op: string, args: unknown[], describe: () => string): void => {
    s.calls++;
    try {
      native[op]!(...args);
      s.returned++;
    } catch (e) {
      if (e instanceof Error && e.message.startsWith(`${op}: `)) {
        s.refused++;
        if (e instanceof TypeError) s.typeErrors++;
      } else {
        s.failures.push(`${op}(${describe()}) threw ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
      }
    }
  };
  const gradWas = native.isGradEnabled() as boolean;
  const threadsWere = native.getNumThreads() as number;
  const cachingWas = (native.allocatorStats() as { active: boolean }).active;
  for (const op of ops) {
    if (o.trace) writeSync(2, `fuzz-native: ${op}\n`);
    for (let p = 0; p < MAX_ARITY; p++) {
      const pool = makePool();
      for (let k = 0; k < pool.values.length; k++) {
        const args = new Array<unknown>(p + 1).fill(undefined);
        args[p] = pool.values[k];
        call(op, args, () => `argument ${p} = ${pool.names[k]}`);
      }
    }
    for (let r = 0; r < randomCalls; r++) {
      const pool = makePool();
      const n = rng.int(MAX_ARITY + 1);
      const picks = Array.from({ length: n }, () => rng.int(pool.values.length));
      call(op, picks.map((k) => pool.values[k]), () => picks.map((k) => pool.names[k]).join(', '));
    }
    // Inference-mode scopes the fuzzed calls opened, innermost first (exit refuses once none is open).
    for (;;) {
      try {
        native.exitInferenceMode();
      } catch {
        break;
      }
    }
    native.setGradEnabled(gradWas);
    native.setNumThreads(threadsWere);
    native.setCachingAllocator(cachingWas);
  }
  return s;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const num = (flag: string, dflt: number): number => {
    const k = argv.indexOf(flag);
    return k < 0 ? dflt : Number(argv[k + 1]);
  };
  const s = runNativeFuzz({ seed: num('--seed', 1), random: num('--random', 40), trace: argv.includes('--trace') });
  console.log(JSON.stringify(s));
  process.exitCode = s.failures.length > 0 || s.entryPoints === 0 ? 1 : 0;
}
