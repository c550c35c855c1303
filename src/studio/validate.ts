// Request validation for the studio's API: one helper style (as sharp's, STYLE.md) whose every
// refusal names the field, what was expected and what came, and becomes a 4xx ApiError.
import type * as z from 'zod';
import { LIMITS } from './protocol.js';
import { refusal, show } from '../options/declare.js';

export { show };

/** A refusal the server answers with `status` and `{ error, field }`. */
export class RequestError extends Error {
  override name = 'RequestError';
  constructor(readonly status: number, message: string, readonly field?: string) {
    super(message);
  }
}

export function badRequest(message: string, field?: string): never {
  throw new RequestError(400, message, field);
}

/** A single path segment: letters, digits, '.', '_', '-', not starting with '.', so never '..' or a path. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Refuses anything but a plain name before it reaches the filesystem: '..', '/', '\\', NUL,
 * absolute paths and encoded forms of them (callers pass the decoded segment).
 */
export function checkName(field: string, v: unknown): string {
  if (typeof v !== 'string') badRequest(`${field} must be a name (a string), got ${show(v)}`, field);
  const ok = v.length <= LIMITS.maxNameLength && NAME_RE.test(v);
  if (!ok) {
    badRequest(
      `${field} must be a single name of letters, digits, '.', '_' and '-' (not starting with '.', at most ${LIMITS.maxNameLength} characters), got ${show(v)}; paths and '..' are refused`,
      field,
    );
  }
  return v;
}

const range = (min: number, max: number, minOpen = false, maxOpen = false): string => `${minOpen ? '(' : '['}${min}, ${max}${maxOpen ? ')' : ']'}`;

/**
 * The fields of one JSON object (a request body or a query string), read one by one. Unknown
 * fields are refused up front, so a typo never passes silently as "use the default".
 */
export class Fields {
  /** Query strings carry text: numbers and booleans are parsed from it. */
  constructor(private readonly obj: Record<string, unknown>, allowed: readonly string[], private readonly fromQuery = false) {
    const unknown = Object.keys(obj).filter((k) => !allowed.includes(k));
    if (unknown.length > 0) {
      const first = unknown[0]!;
      badRequest(`unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}; expected only ${allowed.join(', ')}`, first);
    }
  }

  has(name: string): boolean { return this.own(name) !== undefined; }

  /** Own properties only: a body's "constructor" must not find Object.prototype's. */
  private own(name: string): unknown { return Object.hasOwn(this.obj, name) ? this.obj[name] : undefined; }

  private raw(name: string): unknown {
    const v = this.own(name);
    if (!this.fromQuery || typeof v !== 'string') return v;
    if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v)) return Number(v);
    if (v === 'true' || v === 'false') return v === 'true';
    return v;
  }

  private missing(name: string, expected: string): never {
    return badRequest(`${name} is required: ${expected}`, name);
  }

  /**
   * A field checked by an option's declared schema (samplers/options.ts, train/options.ts), narrowed
   * by the caller where the studio allows less (e.g. steps to at most T); the message is the schema's.
   */
  declared<S extends z.ZodType>(name: string, schema: S): z.output<S> | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    const m = refusal(schema, v, name);
    if (m !== null) badRequest(m, name);
    return v as z.output<S>;
  }

  /** A required integer in [min, max]. */
  int(name: string, min: number, max: number): number {
    const v = this.optInt(name, min, max);
    return v ?? this.missing(name, `an integer in ${range(min, max)}`);
  }

  /** An optional integer in [min, max] (undefined when absent). */
  optInt(name: string, min: number, max: number): number | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) badRequest(`${name} must be an integer in ${range(min, max)}, got ${show(v)}`, name);
    return v;
  }

  number(name: string, min: number, max: number, o: { minOpen?: boolean; maxOpen?: boolean; optional?: boolean } = {}): number | undefined {
    const v = this.raw(name);
    const expected = `a number in ${range(min, max, o.minOpen, o.maxOpen)}`;
    if (v === undefined) return o.optional ? undefined : this.missing(name, expected);
    const ok = typeof v === 'number' && Number.isFinite(v) && (o.minOpen ? v > min : v >= min) && (o.maxOpen ? v < max : v <= max);
    if (!ok) badRequest(`${name} must be ${expected}, got ${show(v)}`, name);
    return v as number;
  }

  choice<T extends string>(name: string, allowed: readonly T[]): T;
  choice<T extends string>(name: string, allowed: readonly T[], optional: true): T | undefined;
  choice<T extends string>(name: string, allowed: readonly T[], optional = false): T | undefined {
    const v = this.raw(name);
    const expected = `one of ${allowed.join(', ')}`;
    if (v === undefined) return optional ? undefined : this.missing(name, expected);
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) badRequest(`${name} must be ${expected}, got ${show(v)}`, name);
    return v as T;
  }

  bool(name: string): boolean | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') badRequest(`${name} must be true or false, got ${show(v)}`, name);
    return v;
  }

  name(name: string): string;
  name(name: string, optional: true): string | undefined;
  name(name: string, optional = false): string | undefined {
    const v = this.own(name);
    if (v === undefined) return optional ? undefined : this.missing(name, 'a name of letters, digits, \'.\', \'_\' and \'-\'');
    return checkName(name, v);
  }
}

/** A parsed JSON request body, which must be an object. */
export function parseBody(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    badRequest(`the request body is not valid JSON (${(e as Error).message}); send a JSON object with Content-Type: application/json`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) badRequest(`the request body must be a JSON object, got ${show(v)}`);
  return v as Record<string, unknown>;
}

/** The query parameters as an object; a parameter given twice is refused (which one would win is a guess). */
export function queryObject(params: URLSearchParams): Record<string, unknown> {
  const out = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of params) {
    if (k in out) badRequest(`query parameter ${k} is given more than once; give it once`, k);
    out[k] = v;
  }
  return out;
}
