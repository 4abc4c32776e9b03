// SPDX-License-Identifier: GPL-2.0-only
/**
 * A CLI command: a typed function from parsed arguments to data and an exit code. Commands never print
 * and never exit; main.ts does both, so tests call commands directly.
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';
import { COMMON_OPTIONS, parseOptions } from './options.js';
import type { OptionValues, Options } from './options.js';

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

/** The parseArgs shape of a set of options. */
function argSpec(options: Options): OptionSpec {
  return Object.fromEntries(Object.entries(options).map(([name, o]) => [name, { ...o.arg }]));
}

export const COMMON_ARGS: OptionSpec = argSpec(COMMON_OPTIONS);

/** What a command declares: its text, its flags (options.ts) and its body, which gets the parsed flags. */
export interface CommandDefinition<O extends Options> {
  name: string;
  summary: string;
  usage: string;
  help: string[];
  options: O;
  passThrough?: boolean;
  run(
    this: CommandDefinition<O>,
    positionals: string[],
    options: OptionValues<O>,
    env: CommandEnv,
  ): Promise<CommandOutput>;
}

/**
 * A command from its definition: its run parses the raw flag values (a command line's, or a test's) with
 * the zod schemas of its options before the body sees them, so a bad or unknown flag never reaches it.
 */
export function defineCommand<O extends Options>(def: CommandDefinition<O>): Command {
  return {
    name: def.name,
    summary: def.summary,
    usage: def.usage,
    help: def.help,
    options: argSpec(def.options),
    ...(def.passThrough === undefined ? {} : { passThrough: def.passThrough }),
    // async: a refused flag is a rejected promise, as every other failure of a command is.
    async run(positionals, values, env) {
      return def.run.call(def, positionals, parseOptions(def, def.options, values), env);
    },
  };
}

export function parseCommandArgs(
  cmd: Command,
  argv: string[],
): { positionals: string[]; values: Record<string, unknown> } {
  let own = argv;
  let rest: string[] = [];
  if (cmd.passThrough) {
    const specs = { ...COMMON_ARGS, ...cmd.options };
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
      options: { ...COMMON_ARGS, ...cmd.options },
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

export { intArg } from './options.js';
