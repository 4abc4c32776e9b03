// SPDX-License-Identifier: GPL-2.0-only
/**
 * A CLI command: a typed function from parsed arguments to data and an exit code. Commands never print
 * and never exit; main.ts does both, so tests call commands directly.
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

export interface CommandOutput {
  /** 0 clean, 1 findings (violations, unmet expectations, broken rules), 2 bad input. */
  exitCode: number;
  /** What `--json` prints. */
  json: unknown;
  /** What a person reads. */
  text: string[];
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Extra help lines after the usage. */
  help: string[];
  options: OptionSpec;
  /**
   * The first positional starts a command line of its own (`run -- PROGRAM ARGS`): it and everything after
   * it are positionals, never parsed as options, with or without a `--` before them.
   */
  passThrough?: boolean;
  run(positionals: string[], values: Record<string, unknown>, env: CommandEnv): Promise<CommandOutput>;
}

export interface CommandEnv {
  /** The database path: --db, else IOPTRACE_DB, else ./ioptrace.db. */
  db: string;
  json: boolean;
  stderr: NodeJS.WriteStream;
}

export const COMMON_OPTIONS: OptionSpec = {
  db: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
};

export function parseCommandArgs(
  cmd: Command,
  argv: string[],
): { positionals: string[]; values: Record<string, unknown> } {
  let own = argv;
  let rest: string[] = [];
  if (cmd.passThrough) {
    const specs = { ...COMMON_OPTIONS, ...cmd.options };
    const takesValue = (token: string): boolean => {
      const name = token.startsWith('--')
        ? token.slice(2)
        : Object.keys(specs).find((k) => specs[k]?.short === token.slice(1));
      return !token.includes('=') && name !== undefined && specs[name]?.type === 'string';
    };
    let i = 0;
    while (i < argv.length && argv[i] !== '--' && argv[i]?.startsWith('-')) i += takesValue(argv[i] ?? '') ? 2 : 1;
    own = argv.slice(0, i);
    rest = argv.slice(argv[i] === '--' ? i + 1 : i);
  }
  try {
    const { positionals, values } = parseArgs({
      args: own,
      options: { ...COMMON_OPTIONS, ...cmd.options },
      allowPositionals: true,
      strict: true,
    });
    return { positionals: [...positionals, ...rest], values: values };
  } catch (err) {
    throw new UsageError(
      `${cmd.name}: ${(err as Error).message.replace(/\. To specify.*$/s, '')}\nusage: ${cmd.usage}`,
    );
  }
}

/** A non-negative integer argument (decimal or 0x hex), or a UsageError naming it. */
export function intArg(value: unknown, what: string): number {
  const text = String(value ?? '');
  const n = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text.slice(2), 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} must be a non-negative integer, got "${text}"`);
  return n;
}

export function listArg(value: unknown): string[] {
  if (value === undefined) return [];
  const items = Array.isArray(value) ? value : [value];
  return items.flatMap((v) => String(v).split(',')).filter((s) => s.length > 0);
}
