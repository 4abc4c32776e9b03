// SPDX-License-Identifier: GPL-2.0-only
/**
 * The ioptrace command line. The one place that prints, catches and exits: errors become one clear line
 * on stderr and an exit code (2 for the user's input: usage, not found, bad range, bad input, trace,
 * budget; 3 for a failure of ioptrace or what it drives: store, tool, internal). With --json, an error is
 * also printed on stdout as {"error":{"kind","message","line","field"},"exitCode"}, so a script reading
 * stdout always gets JSON.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventBudgetError, TraceError } from '../replay/errors.js';
import { packageRoot } from '../lib/paths.js';
import { BadInputError, BadRangeError, InternalError, NotFoundError } from '../lib/errors.js';
import { StoreError } from '../store/index.js';
import { ToolError } from '../groundtruth/exec.js';
import { UsageError } from './errors.js';
import type { Command, CommandEnv } from './command.js';
import { parseCommandArgs } from './command.js';
import { toJson } from './output.js';
import { COMMANDS } from './commands/index.js';
import { maxOf } from '../lib/arrays.js';

function helpText(): string {
  const width = maxOf(
    COMMANDS.map((c) => c.name.length),
    0,
  );
  return [
    'ioptrace: replay, time-travel and audit traces of the kernel iommufd PFN storage (iopt_pages)',
    '',
    'usage: ioptrace <command> [options]   (every command takes --help, --json and --db FILE)',
    '       ioptrace --version',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'The database is ./ioptrace.db unless --db or IOPTRACE_DB names another: a SQLite file, or a',
    'postgres://user:password@host:port/database URL for a store on a PostgreSQL server.',
  ].join('\n');
}

function commandHelp(cmd: Command): string {
  return [`usage: ${cmd.usage}`, '', cmd.summary, ...(cmd.help.length ? ['', ...cmd.help] : [])].join('\n');
}

/** The version of package.json (`ioptrace --version`). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** What `--json` prints on stdout for an error. */
export interface JsonError {
  error: { kind: string; message: string; line: number | null; field: string | null };
  exitCode: number;
}

/** An error as its exit code, its stderr text and its JSON object. */
function classify(err: unknown): { exitCode: number; text: string; json: JsonError } {
  const make = (
    kind: string,
    exitCode: number,
    message: string,
    text: string,
    line: number | null = null,
    field: string | null = null,
  ) => ({
    exitCode,
    text,
    json: { error: { kind, message, line, field }, exitCode },
  });
  if (err instanceof TraceError) {
    const first = err.issues[0];
    return make('trace', 2, err.message, err.message, first?.line ?? null, first?.field ?? null);
  }
  if (err instanceof EventBudgetError) return make('budget', 2, err.message, err.message, err.line);
  if (err instanceof NotFoundError) return make('not-found', 2, err.message, err.message);
  if (err instanceof BadRangeError) return make('bad-range', 2, err.message, err.message);
  if (err instanceof BadInputError) return make('bad-input', 2, err.message, err.message, err.line, err.field);
  if (err instanceof UsageError) return make('usage', 2, err.message, err.message);
  if (err instanceof InternalError) return make('internal', 3, err.message, `internal error: ${err.message}`);
  // StoreError: the database; ToolError: an external tool (apt, make, gcc, qemu) with its log's tail.
  if (err instanceof StoreError) return make('store', 3, err.message, err.message);
  if (err instanceof ToolError) return make('tool', 3, err.message, err.message);
  if (err instanceof Error) return make('internal', 3, err.message, `internal error: ${err.stack ?? err.message}`);
  return make('internal', 3, String(err), `internal error: ${String(err)}`);
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${helpText()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`ioptrace ${version()}\n`);
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  try {
    if (!cmd) throw new UsageError(`unknown command "${name}" (run ioptrace --help)`);
    const { positionals, values } = parseCommandArgs(cmd, rest);
    if (values['help'] === true) {
      process.stdout.write(`${commandHelp(cmd)}\n`);
      return 0;
    }
    const env: CommandEnv = {
      db: typeof values['db'] === 'string' ? values['db'] : (process.env['IOPTRACE_DB'] ?? './ioptrace.db'),
      json: values['json'] === true,
      stderr: process.stderr,
    };
    const out = await cmd.run(positionals, values, env);
    process.stdout.write(env.json ? `${toJson(out.json)}\n` : out.text.length ? `${out.text.join('\n')}\n` : '');
    return out.exitCode;
  } catch (err) {
    const { exitCode, text, json } = classify(err);
    process.stderr.write(`ioptrace: ${text}\n`);
    if (rest.includes('--json')) process.stdout.write(`${toJson(json)}\n`);
    return exitCode;
  }
}
