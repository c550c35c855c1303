// What an option declaration is, and the words every refusal of one uses. The declarations themselves
// live with the layer that owns the option (samplers/options.ts, train/options.ts); the command line
// (cli/args.ts), the studio (studio/requests.ts) and config.json validation (train/config.ts) read them.
//
// The schema is zod's (v4): one typed object carries the type and the range, and its JSON Schema
// (z.toJSONSchema) gives the "expected" words of every message, so they cannot drift from the check.
import * as z from 'zod';

export interface OptionDecl<S extends z.ZodType = z.ZodType> {
  /** camelCase key: the field of a studio request, of SamplerOptions and of the flags object. */
  name: string;
  /** The command-line flag with its argument, e.g. '--steps <k>'; a bare '--flag' is a switch. */
  flag: string;
  /** The words of --help, without the default (which is added from the declaration's default). */
  help: string;
  /** The default in words, where it depends on the run or on other options (else the default value is shown). */
  defaultHelp?: string;
  /** Type and range of a value (a caller may narrow it further, e.g. steps to at most T: schema.max(T)). */
  schema: S;
}

export function option<S extends z.ZodType>(o: OptionDecl<S>): OptionDecl<S> { return o; }

/** The flag without its argument: '--steps'. */
export function flagName(o: OptionDecl): string { return o.flag.split(/[\s,]+/).find((p) => p.startsWith('--')) ?? o.flag; }

const range = (lo: number | undefined, hi: number | undefined, loOpen: boolean, hiOpen: boolean): string => `${loOpen ? '(' : '['}${lo ?? -Infinity}, ${hi ?? Infinity}${hiOpen ? ')' : ']'}`;
const HUGE = 2 ** 52;

/** What a schema accepts, in words: "a positive integer", "a number in [0, 1)", "one of ddpm, ddim". */
export function expected(schema: z.ZodType): string {
  const j = z.toJSONSchema(schema, { unrepresentable: 'any' }) as {
    type?: string; description?: string; enum?: unknown[]; const?: unknown; minimum?: number; maximum?: number; exclusiveMinimum?: number; exclusiveMaximum?: number; anyOf?: { type?: string }[];
  };
  if (j.const !== undefined) return show(j.const);
  if (j.enum) return `one of ${j.enum.join(', ')}`;
  const lo = j.exclusiveMinimum ?? j.minimum;
  const hi = j.exclusiveMaximum ?? j.maximum;
  const bounded = hi !== undefined && Math.abs(hi) < HUGE;
  if (j.type === 'integer') {
    if (!bounded && lo === 1 && j.exclusiveMinimum === undefined) return 'a positive integer';
    if (!bounded && lo === 0 && j.exclusiveMinimum === undefined) return 'a non-negative integer';
    return `an integer in ${range(lo, bounded ? hi : undefined, j.exclusiveMinimum !== undefined, j.exclusiveMaximum !== undefined)}`;
  }
  if (j.type === 'number') {
    if (lo === undefined && !bounded) return 'a finite number';
    if (lo === 0 && j.exclusiveMinimum !== undefined && !bounded) return 'a positive number';
    return `a number in ${range(lo, bounded ? hi : undefined, j.exclusiveMinimum !== undefined, j.exclusiveMaximum !== undefined)}`;
  }
  if (j.type === 'boolean') return 'true or false';
  // A patterned string (e.g. --device) says its pattern in its description.
  if (j.type === 'string') return j.description ?? 'a string';
  return 'a valid value';
}

/** A value as a message shows it: numbers bare, text quoted, the rest as short JSON. */
export function show(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (v === undefined) return 'nothing';
  try {
    const s = JSON.stringify(v);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(v);
  }
}

/** `${label} must be <expected>, got <value>`, or null when the value passes. */
export function refusal(schema: z.ZodType, value: unknown, label: string): string | null {
  return schema.safeParse(value).success ? null : `${label} must be ${expected(schema)}, got ${show(value)}`;
}

/**
 * A flag's text as the schema's type: integers from digits only (so "1e3" and "2.5" are refused as
 * integers rather than rounded), numbers from any finite numeral, enums and strings as given. The
 * value still has to pass the schema; the refusal quotes the text as typed.
 */
export function fromText(schema: z.ZodType, text: string, label: string): { value: unknown } | { error: string } {
  const type = (z.toJSONSchema(schema, { unrepresentable: 'any' }) as { type?: string }).type;
  let v: unknown = text;
  if (type === 'integer') v = /^\s*-?\d+\s*$/.test(text) ? Number(text) : NaN;
  else if (type === 'number') v = text.trim() === '' ? NaN : Number(text);
  const r = schema.safeParse(v);
  return r.success ? { value: r.data } : { error: `${label} must be ${expected(schema)}, got "${text}"` };
}
