// SPDX-License-Identifier: GPL-2.0-only
/**
 * The ioptrace command line. The one place that prints, catches and exits: errors become one clear line
 * on stderr and an exit code (2 bad input or usage, 3 internal or store failure).
 */
import { TraceError } from '../replay/errors.js';
import { InternalError, UsageError } from '../lib/errors.js';
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
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'The database is ./ioptrace.db unless --db or IOPTRACE_DB names another.',
  ].join('\n');
}

function commandHelp(cmd: Command): string {
  return [`usage: ${cmd.usage}`, '', cmd.summary, ...(cmd.help.length ? ['', ...cmd.help] : [])].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${helpText()}\n`);
    return name === undefined ? 2 : 0;
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
    if (err instanceof TraceError || err instanceof UsageError) {
      process.stderr.write(`ioptrace: ${err.message}\n`);
      return 2;
    }
    if (err instanceof InternalError) {
      process.stderr.write(`ioptrace: internal error: ${err.message}\n`);
      return 3;
    }
    const e = err as Error;
    // StoreError: the database; ToolError: an external tool (apt, make, gcc, qemu) with its log's tail.
    if (e.name === 'StoreError' || e.name === 'ToolError') {
      process.stderr.write(`ioptrace: ${e.message}\n`);
      return 3;
    }
    process.stderr.write(`ioptrace: internal error: ${e.stack ?? String(err)}\n`);
    return 3;
  }
}
