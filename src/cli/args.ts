// Option parsers: each refuses bad input with a message naming the option, the value and what is expected.
import path from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import type * as z from 'zod';
import { fromText, type OptionDecl } from '../options/declare.js';

/**
 * A commander option from its one declaration (samplers/options.ts, train/options.ts): the flag, its
 * help with the default appended, and a parser that refuses in the schema's words.
 */
export function declared<S extends z.ZodType>(d: OptionDecl<S>, o: { default?: z.output<S>; defaultHelp?: string; help?: string } = {}): Option {
  const words = o.help ?? d.help;
  const defaultHelp = o.defaultHelp ?? (o.default === undefined ? d.defaultHelp : undefined);
  // commander prints "(default: ...)" itself for a default value; the words alone otherwise.
  const opt = new Option(d.flag, defaultHelp !== undefined && o.default === undefined ? `${words} (default: ${defaultHelp})` : words);
  const label = d.flag.split(' ')[0]!;
  opt.argParser((v: string) => {
    const r = fromText(d.schema, v, label);
    if ('error' in r) throw new InvalidArgumentError(r.error);
    return r.value as z.output<S>;
  });
  if (o.default !== undefined) opt.default(o.default, o.defaultHelp ?? String(o.default));
  return opt;
}

export function positiveInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got "${v}"`);
    return n;
  };
}

export function nonNegativeInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
}

export function positiveNumber(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got "${v}"`);
    return n;
  };
}

export function choice<T extends string>(name: string, allowed: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(allowed as readonly string[]).includes(v)) throw new InvalidArgumentError(`${name} must be one of ${allowed.join(', ')}, got "${v}"`);
    return v as T;
  };
}

/** Threads default to the machine's cores, capped: libtorch gains little beyond that here. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(8, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 2));
}

/** A finite number in [min, max] (either end may be open). */
export function numberInRange(name: string, min: number, max: number, o: { minOpen?: boolean; maxOpen?: boolean } = {}): (v: string) => number {
  const range = `${o.minOpen ? '(' : '['}${min}, ${max}${o.maxOpen ? ')' : ']'}`;
  return (v) => {
    const n = Number(v);
    const ok = v.trim() !== '' && Number.isFinite(n) && (o.minOpen ? n > min : n >= min) && (o.maxOpen ? n < max : n <= max);
    if (!ok) throw new InvalidArgumentError(`${name} must be a number in ${range}, got "${v}"`);
    return n;
  };
}

export function finiteNumber(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got "${v}"`);
    return n;
  };
}

/** Refuses an output file whose extension the command cannot write, before any work is done. */
export function checkExt(option: string, file: string, allowed: string[]): void {
  const ext = path.extname(file).toLowerCase();
  if (!allowed.includes(ext)) throw new Error(`${option} ${file}: the file must end in ${allowed.join(' or ')}, got "${ext || '(no extension)'}"`);
}
