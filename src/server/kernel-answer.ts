// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace record`: a call's ops, decoded by the model, take the kernel's answer as their `expect`.
 *
 * The op whose result was the call's result (the last iommufd op the call wrote, when the model's answer
 * came from it) gets the kernel's errno and, on success, the outputs the kernel wrote to the program's
 * memory. Each `mmap` op gets the physical layout the kernel pinned, where /proc/PID/pagemap shows it.
 * Where the model would have answered otherwise (another errno, other output bytes) the verdict says so:
 * that is what replaying the recording will show as a mismatch, said as it happens.
 */
import { ERRNO_NAMES } from '../events/trace.js';
import type { ErrnoName, Expectation, TraceOp } from '../events/trace.js';
import { errnoName } from '../machine/errno.js';
import { pushAll } from '../lib/arrays.js';
import type { CapturedWrite } from './user-memory.js';
import { physicalRuns } from './user-memory.js';

/** What the kernel answered: the ioctl's return value and errno (0: none). */
export interface KernelAnswer {
  ret: number;
  errno: number;
}

/** Where the kernel writes an output the trace's `expect` holds. */
export interface KernelOutput {
  field: 'iova' | 'unmapped' | 'data';
  pid: number;
  addr: bigint;
  length: number;
}

export interface KernelVerdict {
  /** Index, among the call's ops, of the op that stands for the call; null when none does. */
  resultOp: number | null;
  /** Where the model answered otherwise than the kernel, one sentence each. */
  disagreements: string[];
}

export interface CallOutcome {
  /** The ops the call wrote, in order; patched in place. */
  ops: TraceOp[];
  machineOps: ReadonlySet<string>;
  /** The model's answer to the call: 0 or an errno. */
  modelErr: number;
  kernel: KernelAnswer;
  /** What the model would have copied to the program. */
  captured: readonly CapturedWrite[];
  outputs: readonly KernelOutput[];
  read: (pid: number, addr: bigint, length: number) => Buffer | null;
}

const nameOf = (errno: number): string => (errno === 0 ? 'ok' : (errnoName(errno) ?? 'ok'));
const show = (value: unknown): string =>
  typeof value === 'bigint' ? `0x${value.toString(16)}` : value === undefined ? 'nothing' : String(value);

export function kernelAnswer(outcome: CallOutcome): KernelVerdict {
  const { ops, kernel, outputs } = outcome;
  const disagreements: string[] = [];
  for (const op of ops) {
    if (op.op !== 'mmap') continue;
    const runs = physicalRuns(Number(op.pid), op.addr, op.length);
    if (runs !== null) (op as { pfns: [number, number][] | null }).pfns = runs;
  }

  const modelName = nameOf(outcome.modelErr);
  const kernelName = nameOf(kernel.errno);
  if (modelName !== kernelName) disagreements.push(`the kernel answered ${kernelName}, the model ${modelName}`);

  let resultOp: number | null = null;
  for (let i = ops.length - 1; i >= 0 && resultOp === null; i--) {
    const op = ops[i] as TraceOp & { expect?: Expectation };
    if (outcome.machineOps.has(op.op) || op.op === 'fault' || op.expect === undefined) continue;
    // Only an op whose result was the model's answer stands for the call (a failure before any op has none).
    if (op.expect.errno === modelName) resultOp = i;
    else break;
  }
  const expressible = kernelName === 'ok' || (ERRNO_NAMES as readonly string[]).includes(kernelName);
  if (resultOp !== null && !expressible) {
    disagreements.push(`the trace format has no errno ${kernelName}: line keeps the model's answer`);
  } else if (resultOp !== null) {
    const op = ops[resultOp] as TraceOp & { expect: Expectation };
    const expect: Expectation = { errno: kernelName as ErrnoName | 'ok' };
    for (const out of kernel.errno === 0 ? outputs : []) {
      const bytes = outcome.read(out.pid, out.addr, out.length);
      if (bytes === null) continue;
      const value = out.field === 'data' ? bytes.toString('hex') : bytes.readBigUInt64LE(0);
      (expect as unknown as Record<string, unknown>)[out.field] = value;
      const modelValue = (op.expect as unknown as Record<string, unknown>)[out.field];
      if (outcome.modelErr === 0 && modelValue !== value)
        disagreements.push(`${out.field}: the kernel ${show(value)}, the model ${show(modelValue)}`);
    }
    op.expect = expect;
  } else if (modelName !== kernelName) {
    disagreements.push('no op of the trace stands for this call: the recording cannot carry the kernel`s answer');
  }

  if (kernel.errno === 0 && outcome.modelErr === 0) pushAll(disagreements, otherBytes(outcome));
  return { resultOp, disagreements };
}

/** Bytes the kernel wrote otherwise than the model would have, outside the outputs compared by field. */
function otherBytes(outcome: CallOutcome): string[] {
  const out: string[] = [];
  const compared = (pid: number, addr: bigint): boolean =>
    outcome.outputs.some((o) => o.pid === pid && addr >= o.addr && addr < o.addr + BigInt(o.length));
  for (const w of outcome.captured) {
    const now = outcome.read(w.pid, w.addr, w.data.length);
    if (now === null) continue;
    const at = w.data.findIndex((b, i) => b !== now[i] && !compared(w.pid, w.addr + BigInt(i)));
    if (at < 0) continue;
    const addr = w.addr + BigInt(at);
    out.push(
      `the kernel wrote 0x${(now[at] ?? 0).toString(16).padStart(2, '0')} at 0x${addr.toString(16)} of process ${w.pid}, the model would have written 0x${(w.data[at] ?? 0).toString(16).padStart(2, '0')}`,
    );
  }
  return out;
}
