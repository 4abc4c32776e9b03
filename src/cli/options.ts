// SPDX-License-Identifier: GPL-2.0-only
/**
 * The command-line options, each one a zod schema with the way parseArgs reads it. A command declares its
 * flags as a record of these (defineCommand, command.ts); the same flag is built by the same function in
 * every command, so it is spelled, read and checked the same way everywhere. A bad value is a UsageError
 * (exit 2) that names the flag and what it takes: `--max must be a non-negative integer, got "x"`.
 *
 * The schemas take what parseArgs gives (a string, a boolean, a string array, or nothing) and what a test
 * passes to Command.run directly (the same shapes), and give the command typed values with their defaults.
 */
import { z } from 'zod';
import { DEFAULT_MAX_EVENTS } from '../replay/replayer.js';
import { UsageError } from './errors.js';

/** One flag: how parseArgs reads it, and the schema its raw value goes through. */
export interface Option<T> {
  readonly arg: { readonly type: 'string' | 'boolean'; readonly multiple?: boolean; readonly short?: string };
  readonly schema: z.ZodType<T>;
}

/** A command's flags by name (the name is the flag without its `--`). */
export type Options = Record<string, Option<unknown>>;

/** The parsed values of a command's flags. */
export type OptionValues<O extends Options> = { [K in keyof O]: O[K] extends Option<infer T> ? T : never };

/** A non-negative integer written in decimal or 0x hex, or null. */
function readInt(text: string): number | null {
  const n = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text.slice(2), 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  return Number.isSafeInteger(n) ? n : null;
}

type Ctx = z.core.$RefinementCtx;

function issue(ctx: Ctx, message: string): typeof z.NEVER {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

/** A value parseArgs reads as text; a boolean or a list where one text is expected is refused. */
const oneText = z.string({ error: 'takes one value' });

/** The integer rule, shared by flags and positionals: `must be a non-negative integer, got "x"`. */
function toInt(text: string, ctx: Ctx, bounds: IntBounds): number {
  const n = readInt(text);
  if (n === null) return issue(ctx, `must be a non-negative integer, got "${text}"`);
  if (bounds.min !== undefined && n < bounds.min) return issue(ctx, `must be at least ${bounds.min}, got ${n}`);
  if (bounds.below !== undefined && n >= bounds.below.value)
    return issue(ctx, `must be below ${bounds.below.text}, got ${n}`);
  return n;
}

interface IntBounds {
  min?: number;
  /** An exclusive upper bound and how the message writes it (`2^32`). */
  below?: { value: number; text: string };
}

/** `--flag` alone: true when given. */
export function flag(short?: string): Option<boolean> {
  return {
    arg: short === undefined ? { type: 'boolean' } : { type: 'boolean', short },
    schema: z
      .boolean({ error: 'takes no value' })
      .optional()
      .transform((v) => v === true),
  };
}

/** `--flag TEXT`, with a default (or undefined when absent and none is given). */
export function text(): Option<string | undefined>;
export function text(fallback: string): Option<string>;
export function text(fallback?: string): Option<string | undefined> {
  return { arg: { type: 'string' }, schema: oneText.optional().transform((v) => v ?? fallback) };
}

/** `--flag TEXT` that also reads as `-S TEXT`; undefined when absent. */
export function shortText(short: string): Option<string | undefined> {
  return { arg: { type: 'string', short }, schema: oneText.optional() };
}

/** `--flag N`: a non-negative integer (decimal or 0x hex), the default when absent. */
export function int(fallback: number, bounds?: IntBounds): Option<number>;
export function int(fallback: null, bounds?: IntBounds): Option<number | null>;
export function int(fallback: number | null, bounds: IntBounds = {}): Option<number | null> {
  return {
    arg: { type: 'string' },
    schema: oneText.optional().transform((v, ctx) => (v === undefined ? fallback : toInt(v, ctx, bounds))),
  };
}

/** `--flag A,B --flag C`: every value, split at commas, empty items dropped. */
export function list(): Option<string[]> {
  return {
    arg: { type: 'string', multiple: true },
    schema: z
      .union([z.string(), z.array(z.string())], { error: 'takes text values' })
      .optional()
      .transform((v) => listOf(v)),
  };
}

/** `--flag A,B` given once: its comma-separated items (undefined when absent). */
export function commaList(): Option<string[] | undefined> {
  return {
    arg: { type: 'string' },
    schema: oneText.optional().transform((v) => (v === undefined ? undefined : listOf(v))),
  };
}

function listOf(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((v) => v.split(',')).filter((s) => s.length > 0);
}

/** `--flag WORD`, one of `choices` (undefined when absent). */
export function choice<const C extends readonly [string, ...string[]]>(choices: C): Option<C[number] | undefined> {
  const said = choices.map((c) => `"${c}"`).join(' or ');
  return {
    arg: { type: 'string' },
    schema: oneText
      .optional()
      .transform((v, ctx): C[number] | undefined =>
        v === undefined ? undefined : choices.includes(v) ? v : issue(ctx, `must be ${said}, got "${v}"`),
      ),
  };
}

/** `--flag PAGES:INDEX`: an iopt_pages id and an index in it. */
export function pagesIndex(): Option<{ pages: number; index: number } | undefined> {
  return {
    arg: { type: 'string' },
    schema: oneText.optional().transform((v, ctx) => {
      if (v === undefined) return undefined;
      const m = /^(\w+):(\w+)$/.exec(v);
      if (!m) return issue(ctx, `takes PAGES:INDEX (e.g. 3:17), got "${v}"`);
      const pages = readInt(m[1] ?? '');
      const index = readInt(m[2] ?? '');
      if (pages === null || index === null)
        return issue(ctx, `takes PAGES:INDEX, non-negative integers (e.g. 3:17), got "${v}"`);
      return { pages, index };
    }),
  };
}

// The flags several commands share, built once so that they are the same everywhere.

/** --db FILE, --json, --help / -h: every command takes them (main.ts reads them). */
export const COMMON_OPTIONS = { db: text(), json: flag(), help: flag('h') };

/**
 * --variant V --fix F... --without F... (resolved by variantFromArgs, src/cli/commands/replay.ts). A spec
 * that names no variant is the library's BadInputError (field "variant"), not a usage error: variant specs
 * are also read from trace tags and run labels.
 */
export const VARIANT_OPTIONS = { variant: text(), fix: list(), without: list() };

/** --fail-nth N: fail the Nth fault point of the replay (absent: none fails). */
export const failNth = (): Option<number | null> => int(null);

/** --max-events N: the most events a replay may emit (0 = no limit). */
export const maxEvents = (): Option<number> => int(DEFAULT_MAX_EVENTS);

/** A count that must be at least 1 (`--ops`, `--iterations`, `--max-tests`). */
export function positive(fallback: number): Option<number>;
export function positive(fallback: null): Option<number | null>;
export function positive(fallback: number | null): Option<number | null> {
  return fallback === null ? int(null, { min: 1 }) : int(fallback, { min: 1 });
}

/**
 * A positional argument that is a non-negative integer (a run id, a seq), by the same rule as the
 * integer flags: `RUN must be a non-negative integer, got "x"`.
 */
export function intArg(value: unknown, what: string): number {
  const text = String(value ?? '');
  const n = readInt(text);
  if (n === null) throw new UsageError(`${what} must be a non-negative integer, got "${text}"`);
  return n;
}

/**
 * The raw values of a command line (parseArgs's, or what a test passes) through the schemas of `options`
 * and the common ones. Unknown flags are refused by name; a bad value is refused with its flag and what
 * the flag takes. Messages are `--FLAG ...` lines, several joined by `; `.
 */
export function parseOptions<O extends Options>(
  command: { name: string; usage: string },
  options: O,
  values: Record<string, unknown>,
): OptionValues<O> {
  const all: Options = { ...COMMON_OPTIONS, ...options };
  const shape = Object.fromEntries(Object.entries(all).map(([name, o]) => [name, o.schema]));
  const result = z.strictObject(shape).safeParse(values);
  if (result.success) return result.data as OptionValues<O>;
  const unknown = result.error.issues.flatMap((i) => (i.code === 'unrecognized_keys' ? i.keys : []));
  if (unknown.length > 0) {
    const names = unknown.map((k) => `--${k}`).join(', ');
    throw new UsageError(`${command.name}: unknown option ${names}\nusage: ${command.usage}`);
  }
  throw new UsageError(result.error.issues.map((i) => `--${String(i.path[0] ?? '?')} ${i.message}`).join('; '));
}
