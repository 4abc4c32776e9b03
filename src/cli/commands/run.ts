// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace run -- PROGRAM ARGS...`: run an unmodified program with /dev/iommu served by the model.
 *
 * The program's stdout and stderr are its own; ioptrace writes only to stderr (findings as they happen,
 * then a summary), and to stdout only with --json. The exit status is the program's (128 + signal number
 * when a signal ended it). The trace the run wrote is then replayed into the database like any other
 * trace, and that replay must end on the digest the live run ended on: that is what makes the stored run,
 * and --trace-out, stand for what the program did.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTraceText } from '../../replay/parse.js';
import { recordReplay } from '../../replay/record.js';
import { openStore } from '../../store/index.js';
import { InternalError } from '../../lib/errors.js';
import { UsageError } from '../errors.js';
import { packageRoot } from '../../lib/paths.js';
import { GRANTABLE_CAPS, Session } from '../../server/session.js';
import { SessionServer } from '../../server/server.js';
import { createDebugfs } from '../../server/fail-nth.js';
import { toJson } from '../output.js';
import type { CommandOutput } from '../command.js';
import { defineCommand } from '../command.js';
import { VARIANT_OPTIONS, list, text } from '../options.js';
import { findingLines, replaySummary, variantFromArgs } from './replay.js';

/** How long descriptors inherited by descendants may outlive the program before the run ends anyway. */
const DRAIN_MS = 2000;

export function preloadLibrary(): string {
  return join(packageRoot(), 'native/build/libioptrace-preload.so');
}

export function waitExit(child: ReturnType<typeof spawn>): Promise<{ status: number; signal: string | null }> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      const signo = signal ? (constants.signals[signal] ?? 0) : 0;
      resolve({ status: code ?? 128 + signo, signal });
    });
  });
}

async function drain(server: SessionServer): Promise<void> {
  const until = Date.now() + DRAIN_MS;
  while (server.openContexts > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
}

export const runCommand = defineCommand({
  name: 'run',
  summary: 'run a program with /dev/iommu served by the model, and store the run',
  usage:
    'ioptrace run [--variant V] [--fix FLAG]... [--without FLAG]... [--grant-cap CAP]... [--trace-out FILE] [--json-out FILE] [--db FILE] -- PROGRAM ARGS...',
  help: [
    'The program runs with libioptrace-preload.so preloaded: its opens of /dev/iommu become contexts of the',
    'model and its iommufd ioctls are served by it. The exit status is the program`s; findings go to stderr.',
    '--trace-out writes the trace the program produced (version 4), which `ioptrace replay` reproduces.',
    `--grant-cap CAP (${GRANTABLE_CAPS.join(' or ')}): the model takes every process to have CAP besides the`,
    'capabilities /proc/PID/status shows (to compare with a kernel that ran the program with more of them).',
  ],
  options: { ...VARIANT_OPTIONS, 'trace-out': text(), 'json-out': text(), 'grant-cap': list() },
  passThrough: true,
  async run(positionals, values, env): Promise<CommandOutput> {
    const [program, ...args] = positionals;
    if (program === undefined) throw new UsageError(`usage: ${this.usage}`);
    const { variant, fixes } = variantFromArgs(values);
    const grantCaps = values['grant-cap'].map((cap) => {
      const known = GRANTABLE_CAPS.find((c) => c === cap.toUpperCase());
      if (known === undefined) throw new UsageError(`--grant-cap ${cap}: one of ${GRANTABLE_CAPS.join(', ')}`);
      return known;
    });
    const library = preloadLibrary();
    if (!existsSync(library))
      throw new UsageError(`${library} is missing: build it with \`npm run build:native\` (needs a C compiler)`);

    const dir = mkdtempSync(join(tmpdir(), 'ioptrace-run-'));
    const socketPath = join(dir, 'sock');
    // The program's /sys/kernel/debug: the fault attributes' knobs (the library redirects it there).
    const debugfs = join(dir, 'debugfs');
    createDebugfs(debugfs);
    const session = new Session({
      variant,
      fixes,
      grantCaps,
      onFinding: (line) => env.stderr.write(`${line}\n`),
    });
    const server = new SessionServer(session);
    let exit: { status: number; signal: string | null };
    try {
      await server.listen(socketPath);
      const preload = process.env['LD_PRELOAD'];
      const child = spawn(program, args, {
        stdio: 'inherit',
        env: {
          ...process.env,
          LD_PRELOAD: preload ? `${library}:${preload}` : library,
          IOPTRACE_SOCK: socketPath,
          IOPTRACE_DEBUGFS: debugfs,
        },
      });
      try {
        exit = await waitExit(child);
      } catch (err) {
        throw new UsageError(`cannot run ${program}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      await drain(server);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
    if (server.error) throw new InternalError(`serving ${program}: ${server.error.stack ?? server.error.message}`);

    const { result: live, traceText, summary } = session.finish();
    const traceOut = values['trace-out'];
    const tracePath = traceOut ?? `run:${program}`;
    if (traceOut !== undefined) await writeFile(traceOut, traceText);
    const trace = parseTraceText(traceText, tracePath, { allowEmpty: true });
    const store = await openStore(env.db);
    let stored;
    try {
      stored = await recordReplay(store, trace, { tracePath, traceText, variant, fixes });
    } finally {
      await store.close();
    }
    if (stored.result.digest !== live.digest)
      throw new InternalError(
        `the stored replay of the run ended on digest ${stored.result.digest}, the live run on ${live.digest}`,
      );

    const json = {
      ...replaySummary(stored.run, stored.head, stored.result),
      program: [program, ...args],
      exit_status: exit.status,
      granted_caps: grantCaps,
      signal: exit.signal,
      contexts: summary.contexts,
      ioctls: summary.ioctls,
      unserved: summary.unserved,
    };
    const jsonOut = values['json-out'];
    if (jsonOut !== undefined) await writeFile(jsonOut, `${toJson(json)}\n`);
    const unserved = Object.entries(summary.unserved);
    const r = stored.result;
    const report = [
      `ioptrace: run ${stored.run}: ${program} on ${variant}: exit ${exit.status}, ${Object.values(summary.ioctls).reduce((a, b) => a + b, 0)} ioctls, ${r.ops.length} ops, ${r.events} events, digest ${r.digest}`,
      ...(grantCaps.length
        ? [`ioptrace: capabilities granted besides the processes' own: ${grantCaps.join(', ')}`]
        : []),
      r.violations.length + r.warns.length
        ? `ioptrace: ${r.violations.length} violations, ${r.warns.length} WARNs:`
        : 'ioptrace: no violation, no WARN',
      ...findingLines(r).map((l) => `ioptrace: ${l.trim()}`),
      ...(unserved.length
        ? [
            `ioptrace: not served (answered as a kernel without them): ${unserved.map(([n, c]) => `${n} x${c}`).join(', ')}`,
          ]
        : []),
    ];
    env.stderr.write(`${report.join('\n')}\n`);
    return { exitCode: exit.status, json, text: [] };
  },
});
