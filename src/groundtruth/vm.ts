// SPDX-License-Identifier: GPL-2.0-only
/**
 * One boot of the ground-truth kernel under QEMU (software emulation, no KVM): the initramfs runs each
 * planned program once and prints markers on the serial console; this reads the console back into
 * per-program output and exit status, the boot time, and the kernel log's WARN and BUG reports.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildInitramfs } from './initramfs.js';
import type { ExtraFile, PlannedProgram } from './initramfs.js';
import { ToolError } from './exec.js';

export interface VmOptions {
  bzImage: string;
  programs: readonly PlannedProgram[];
  /** Data files for the programs, in /tests. */
  files?: readonly ExtraFile[];
  memoryMb?: number;
  /** Kill the VM after this long (default 15 minutes: software emulation on a loaded machine is slow). */
  timeoutMs?: number;
  /**
   * On a timeout, hand back what the console had (completed false) instead of failing, when the VM had
   * booted: a batch runner keeps the traces that finished and reruns the others.
   */
  partialOnTimeout?: boolean;
}

export interface ProgramRun {
  name: string;
  /** The program's exit status as the init saw it; undefined when the VM died before it ended. */
  exitStatus: number | undefined;
  output: string;
  /** Guest uptime seconds at its start and end. */
  startedAt: number;
  endedAt: number | undefined;
}

export interface KernelReport {
  /** `WARNING: ... at FILE:LINE FUNC...` or `kernel BUG at ...`, as logged. */
  line: string;
  /** The function the report names (the WARN's site), when the line names one. */
  fn: string | undefined;
  /** Which program was running when it was logged (by guest time), when known. */
  during: string | undefined;
}

export interface VmResult {
  booted: boolean;
  /** The whole run reached the final marker (every program ended, the log was printed). */
  completed: boolean;
  release: string | undefined;
  hugepages: number | undefined;
  /** Guest uptime at /init, seconds: the kernel's boot time under emulation. */
  bootSeconds: number | undefined;
  /** Host wall time from QEMU's start to its exit. */
  wallSeconds: number;
  runs: ProgramRun[];
  kmsg: string[];
  reports: KernelReport[];
  console: string;
}

const MARK = '@@IOPTRACE-';

function uptimeOf(line: string): number | undefined {
  const m = /uptime=([0-9.]+)/.exec(line);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** A /dev/kmsg record "pri,seq,usec,flags;text" -> [usec, text]. */
function kmsgRecord(line: string): [number, string] | undefined {
  const m = /^(\d+),(\d+),(\d+),[^;]*;(.*)$/.exec(line);
  return m?.[3] === undefined || m[4] === undefined ? undefined : [Number(m[3]), m[4]];
}

/** WARN and BUG reports of the kernel log; `fn` from "at file:line function+0x../0x.." when present. */
export function kernelReports(kmsg: readonly string[], runs: readonly ProgramRun[]): KernelReport[] {
  const out: KernelReport[] = [];
  for (const raw of kmsg) {
    const rec = kmsgRecord(raw);
    const text = rec ? rec[1] : raw;
    if (!/^(WARNING:|kernel BUG at|BUG:)/.test(text)) continue;
    const fn = / at [^ ]+:\d+ ([A-Za-z0-9_.]+)\+0x/.exec(text)?.[1];
    const seconds = rec ? rec[0] / 1e6 : undefined;
    const during =
      seconds === undefined
        ? undefined
        : runs.find((r) => seconds >= r.startedAt && (r.endedAt === undefined || seconds <= r.endedAt))?.name;
    out.push({ line: text, fn, during });
  }
  return out;
}

/** Reads the serial console of a boot (markers from native/kernel/init.sh). */
export function parseConsole(console: string, wallSeconds: number): VmResult {
  const lines = console.replace(/\r/g, '').split('\n');
  const result: VmResult = {
    booted: false,
    completed: false,
    release: undefined,
    hugepages: undefined,
    bootSeconds: undefined,
    wallSeconds,
    runs: [],
    kmsg: [],
    reports: [],
    console,
  };
  let current: ProgramRun | undefined;
  let outputLines: string[] = [];
  let inKmsg = false;
  for (const line of lines) {
    const at = line.indexOf(MARK);
    if (at < 0) {
      if (inKmsg) result.kmsg.push(line);
      else if (current) outputLines.push(line);
      continue;
    }
    const marker = line.slice(at + MARK.length);
    // A marker may follow a program's output that did not end with a newline.
    if (at > 0 && current) outputLines.push(line.slice(0, at));
    const [kind, name] = marker.split(' ');
    if (kind === 'BOOTED') {
      result.booted = true;
      result.release = /release=(\S+)/.exec(marker)?.[1];
      const hp = /hugepages=(\d+)/.exec(marker)?.[1];
      result.hugepages = hp === undefined ? undefined : Number(hp);
      result.bootSeconds = uptimeOf(marker);
    } else if (kind === 'BEGIN' && name) {
      current = { name, exitStatus: undefined, output: '', startedAt: uptimeOf(marker) ?? 0, endedAt: undefined };
      outputLines = [];
      result.runs.push(current);
    } else if (kind === 'END' && current) {
      const rc = /rc=(\d+)/.exec(marker)?.[1];
      current.exitStatus = rc === undefined ? undefined : Number(rc);
      current.endedAt = uptimeOf(marker);
      current.output = outputLines.join('\n');
      current = undefined;
    } else if (kind === 'KMSG-BEGIN') inKmsg = true;
    else if (kind === 'KMSG-END') inKmsg = false;
    else if (kind === 'DONE') result.completed = true;
  }
  if (current) current.output = outputLines.join('\n');
  result.reports = kernelReports(result.kmsg, result.runs);
  return result;
}

export function qemuArgs(bzImage: string, initrd: string, memoryMb: number): string[] {
  return [
    '-kernel',
    bzImage,
    '-initrd',
    initrd,
    // loglevel=3 keeps the kernel's own chatter off the console; init prints the whole log at the end.
    // no_timer_check: under emulation on a loaded host the IO-APIC timer check times out and panics.
    '-append',
    'console=ttyS0 loglevel=3 panic=-1 no_timer_check',
    '-nographic',
    '-no-reboot',
    '-m',
    `${memoryMb}M`,
    '-smp',
    '1',
  ];
}

export async function runVm(opts: VmOptions): Promise<VmResult> {
  const work = mkdtempSync(join(tmpdir(), 'ioptrace-vm-'));
  try {
    const initrd = join(work, 'initramfs.cpio.gz');
    writeFileSync(initrd, buildInitramfs(opts.programs, opts.files ?? []));
    const args = qemuArgs(opts.bzImage, initrd, opts.memoryMb ?? 512);
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    const timeoutMs = opts.timeoutMs ?? 15 * 60_000;
    const status = await new Promise<{ code: number | null; timedOut: boolean }>((resolve, reject) => {
      const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.stdout.on('data', (c: Buffer) => chunks.push(c));
      child.stderr.on('data', (c: Buffer) => chunks.push(c));
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new ToolError(`cannot run qemu-system-x86_64: ${err.message}`));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, timedOut });
      });
    });
    const result = parseConsole(Buffer.concat(chunks).toString('utf8'), (Date.now() - t0) / 1000);
    if (status.timedOut && !result.completed && !(opts.partialOnTimeout === true && result.booted))
      throw new ToolError(
        `the VM did not finish within ${Math.round(timeoutMs / 1000)} s${result.booted ? '' : ' (it never reached /init)'}; last console lines:\n${result.console.split('\n').slice(-15).join('\n')}`,
      );
    if (!result.booted)
      throw new ToolError(
        `the VM exited (status ${status.code}) before /init ran; last console lines:\n${result.console.split('\n').slice(-15).join('\n')}`,
      );
    return result;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
