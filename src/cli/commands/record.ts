// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace record [-o FILE] -- PROGRAM ARGS...`: run a program against the real kernel's /dev/iommu and
 * write the trace of what it did, with the kernel's answers as the expectations.
 *
 * The preload library passes every call through to the kernel and tells the recorder about it (before,
 * to decode the arguments; after, with the kernel's answer). The model decodes each call into the trace's
 * ops exactly as `ioptrace run` does (the same Session writes both traces), so replaying the recording
 * shows where the model and that kernel disagree; the recorder also says so as it happens.
 *
 * IOPTRACE_RECORD_KERNEL_SOCKET, the socket of a running `ioptrace run` (its IOPTRACE_SOCK), makes that
 * emulator stand in for the kernel: how record mode is tested on machines without /dev/iommu.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTraceText } from '../../replay/parse.js';
import { InternalError, NotFoundError } from '../../lib/errors.js';
import { UsageError } from '../errors.js';
import { Session } from '../../server/session.js';
import { RecordServer } from '../../server/record-server.js';
import type { CommandOutput } from '../command.js';
import { defineCommand } from '../command.js';
import { VARIANT_OPTIONS, shortText, text } from '../options.js';
import { toJson } from '../output.js';
import { variantFromArgs } from './replay.js';
import { preloadLibrary, waitExit } from './run.js';

/** The environment variable that points record mode at an emulator instead of the real /dev/iommu. */
export const KERNEL_SOCKET_ENV = 'IOPTRACE_RECORD_KERNEL_SOCKET';
export const DEVICE = '/dev/iommu';
const DEFAULT_OUT = 'ioptrace-record.trace';

/** Where the calls go: the emulator's socket when the variable names one, else the real device. */
function kernelOf(env: NodeJS.ProcessEnv): string | null {
  const socket = env[KERNEL_SOCKET_ENV];
  if (socket !== undefined && socket !== '') {
    let isSocket = false;
    try {
      isSocket = statSync(socket).isSocket();
    } catch {
      // reported below
    }
    if (!isSocket)
      throw new NotFoundError(
        `${KERNEL_SOCKET_ENV}=${socket} is not a socket: it must name the IOPTRACE_SOCK of a running \`ioptrace run\``,
        'socket',
        socket,
      );
    return socket;
  }
  if (!existsSync(DEVICE))
    throw new NotFoundError(
      `${DEVICE} does not exist: record needs a kernel with iommufd (CONFIG_IOMMUFD), or ${KERNEL_SOCKET_ENV} set to the socket of a running \`ioptrace run\` standing in for the kernel`,
      'device',
      DEVICE,
    );
  return null;
}

export const recordCommand = defineCommand({
  name: 'record',
  summary: 'run a program against the real /dev/iommu and record its trace, with the kernel`s answers',
  usage:
    'ioptrace record [-o FILE] [--variant V] [--fix FLAG]... [--without FLAG]... [--json-out FILE] -- PROGRAM ARGS...',
  help: [
    `Every /dev/iommu call of the program goes to the kernel; the trace (default ${DEFAULT_OUT}) holds the ops`,
    'the model decodes from them, each with the kernel`s answer as its `expect`, and (where /proc/PID/pagemap',
    'shows PFNs, as it does to root) the physical pages of each mapped range as `mmap` `pfns`. The model of',
    '--variant decodes the calls; where it answers otherwise than the kernel, a line on stderr says so.',
    `${KERNEL_SOCKET_ENV}=SOCKET sends the calls to a running \`ioptrace run\` (the IOPTRACE_SOCK its program`,
    'sees) instead of the kernel. Exit status: the program`s.',
  ],
  options: { ...VARIANT_OPTIONS, output: shortText('o'), 'json-out': text() },
  passThrough: true,
  async run(positionals, values, env): Promise<CommandOutput> {
    const [program, ...args] = positionals;
    if (program === undefined) throw new UsageError(`usage: ${this.usage}`);
    const { variant, fixes } = variantFromArgs(values);
    const kernelSocket = kernelOf(process.env);
    const library = preloadLibrary();
    if (!existsSync(library))
      throw new UsageError(`${library} is missing: build it with \`npm run build:native\` (needs a C compiler)`);
    const out = values.output ?? DEFAULT_OUT;

    const session = new Session({
      variant,
      fixes,
      traceVersion: 1,
      // The kernel recorded is a host of today (5.19 or later): its GUP unshares on read-only pins.
      gupUnshareReadPins: true,
      kernelAnswers: true,
      preamble: [
        `# written by ioptrace record: the ops a live program issued, with what ${kernelSocket === null ? 'the kernel' : 'the emulator standing in for the kernel'} answered`,
      ],
    });
    const server = new RecordServer(session, (line) => env.stderr.write(`ioptrace: model disagrees: ${line}\n`));
    const dir = mkdtempSync(join(tmpdir(), 'ioptrace-record-'));
    let exit: { status: number; signal: string | null };
    try {
      await server.listen(join(dir, 'sock'));
      const preload = process.env['LD_PRELOAD'];
      const childEnv: NodeJS.ProcessEnv = {
        ...process.env,
        LD_PRELOAD: preload ? `${library}:${preload}` : library,
        IOPTRACE_RECORD_SOCK: join(dir, 'sock'),
      };
      // Under record mode the library reads the kernel's socket from KERNEL_SOCKET_ENV only.
      delete childEnv['IOPTRACE_SOCK'];
      const child = spawn(program, args, { stdio: 'inherit', env: childEnv });
      try {
        exit = await waitExit(child);
      } catch (err) {
        throw new UsageError(`cannot run ${program}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
    if (server.error) throw new InternalError(`recording ${program}: ${server.error.stack ?? server.error.message}`);

    const { traceText, summary } = session.finish();
    // The recording must be a trace `ioptrace replay` takes: a parse error here is the recorder's bug.
    parseTraceText(traceText, out, { allowEmpty: true });
    await writeFile(out, traceText);
    const unrecorded = Object.fromEntries([...server.unrecorded].sort());
    const ioctls = Object.values(summary.ioctls).reduce((a, b) => a + b, 0);
    const ops = traceText.split('\n').filter((l) => l.startsWith('{"op"')).length;
    const json = {
      trace: out,
      program: [program, ...args],
      kernel: kernelSocket ?? 'device',
      variant,
      exit_status: exit.status,
      signal: exit.signal,
      contexts: summary.contexts,
      ioctls: summary.ioctls,
      ops,
      disagreements: server.disagreements,
      unrecorded,
      unserved: summary.unserved,
    };
    const jsonOut = values['json-out'];
    if (jsonOut !== undefined) await writeFile(jsonOut, `${toJson(json)}\n`);
    const lines = [
      `ioptrace: recorded ${program} against ${kernelSocket === null ? DEVICE : `the emulator at ${kernelSocket}`}: exit ${exit.status}, ${ioctls} ioctls, ${ops} ops, written to ${out}`,
      server.disagreements.length
        ? `ioptrace: the model (${variant}) answered ${server.disagreements.length} times otherwise than the kernel`
        : `ioptrace: the model (${variant}) answered every call as the kernel did`,
      ...Object.entries(unrecorded).map(([what, n]) => `ioptrace: not recorded (the kernel served it): ${what} x${n}`),
    ];
    env.stderr.write(`${lines.join('\n')}\n`);
    return { exitCode: exit.status, json, text: [] };
  },
});
