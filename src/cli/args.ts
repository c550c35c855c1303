// Option parsers: each refuses bad input with a message naming the option, the value and what is expected.
import path from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import * as z from 'zod';
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
  // The label of a refusal is the flag as first written: '-n' of '-n, --n <count>'.
  if (/[<[]/.test(d.flag)) opt.argParser(parsed(d.schema, d.flag.split(/[\s,]+/)[0]!));
  if (o.default !== undefined) opt.default(o.default, o.defaultHelp ?? String(o.default));
  return opt;
}

/**
 * A parser for a flag that only one command has (declared where it is used): the text as the schema's
 * type, refused in the schema's words (options/declare.ts), as every declared flag is.
 */
export function parsed<S extends z.ZodType>(schema: S, label: string): (v: string) => z.output<S> {
  return (v) => {
    const r = fromText(schema, v, label);
    if ('error' in r) throw new InvalidArgumentError(r.error);
    return r.value as z.output<S>;
  };
}

export const positiveInt = (label: string): ((v: string) => number) => parsed(z.int().min(1), label);
export const nonNegativeInt = (label: string): ((v: string) => number) => parsed(z.int().min(0), label);
export const choice = <T extends string>(label: string, allowed: readonly T[]): ((v: string) => T) => parsed(z.enum(allowed as readonly [T, ...T[]]), label) as (v: string) => T;

/** Threads default to the machine's cores, capped: libtorch gains little beyond that here. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(8, (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 2));
}

/** Refuses an output file whose extension the command cannot write, before any work is done. */
export function checkExt(option: string, file: string, allowed: string[]): void {
  const ext = path.extname(file).toLowerCase();
  if (!allowed.includes(ext)) throw new Error(`${option} ${file}: the file must end in ${allowed.join(' or ')}, got "${ext || '(no extension)'}"`);
}
