// SPDX-License-Identifier: GPL-2.0-only
// Record mode: the op that stands for a call takes the kernel's errno and outputs as its expect, and every
// difference from the model's answer is said.
import { describe, expect, it } from 'vitest';
import type { TraceOp } from '../../../src/events/trace.js';
import { kernelAnswer } from '../../../src/server/kernel-answer.js';
import type { CallOutcome } from '../../../src/server/kernel-answer.js';

const MACHINE = new Set(['process', 'mmap']);
const EINVAL = 22;
const ENOENT = 2;

function mapOps(expect: unknown): TraceOp[] {
  return [
    { op: 'process', pid: '7', uid: 0, memlock: 'unlimited', cap_ipc_lock: true, expect: { errno: 'ok' } },
    { op: 'ioas_map', ioas: 'ioas1', pid: '7', uptr: 0x10000n, length: 4096n, iova: null, expect },
  ] as unknown as TraceOp[];
}

/** Program memory: the kernel wrote iova 0x5000 at 0x100 + 32. */
function memory(): (pid: number, addr: bigint, length: number) => Buffer | null {
  const struct = Buffer.alloc(40);
  struct.writeBigUInt64LE(0x5000n, 32);
  return (_pid, addr, length) =>
    addr >= 0x100n && addr + BigInt(length) <= 0x128n
      ? struct.subarray(Number(addr - 0x100n), Number(addr - 0x100n) + length)
      : null;
}

function outcome(over: Partial<CallOutcome>): CallOutcome {
  return {
    ops: [],
    machineOps: MACHINE,
    modelErr: 0,
    kernel: { ret: 0, errno: 0 },
    captured: [],
    outputs: [{ field: 'iova', pid: 7, addr: 0x100n + 32n, length: 8 }],
    read: memory(),
    ...over,
  };
}

describe('kernelAnswer', () => {
  it('gives the result op the kernel`s output, and says where the model chose another', () => {
    const ops = mapOps({ errno: 'ok', iova: 0x6000n });
    const v = kernelAnswer(outcome({ ops }));
    expect(v).toEqual({ resultOp: 1, disagreements: ['iova: the kernel 0x5000, the model 0x6000'] });
    expect((ops[1] as { expect: unknown }).expect).toEqual({ errno: 'ok', iova: 0x5000n });
  });

  it('gives it the kernel`s errno, without outputs, when the kernel refused what the model did', () => {
    const ops = mapOps({ errno: 'ok', iova: 0x6000n });
    const v = kernelAnswer(outcome({ ops, kernel: { ret: -1, errno: EINVAL } }));
    expect(v.disagreements).toEqual(['the kernel answered EINVAL, the model ok']);
    expect((ops[1] as { expect: unknown }).expect).toEqual({ errno: 'EINVAL' });
  });

  it('cannot carry an answer when the model failed before any op: says so, changes nothing', () => {
    const ops = mapOps({ errno: 'ok' }).slice(0, 1);
    const v = kernelAnswer(outcome({ ops, modelErr: ENOENT }));
    expect(v).toEqual({
      resultOp: null,
      disagreements: [
        'the kernel answered ok, the model ENOENT',
        'no op of the trace stands for this call: the recording cannot carry the kernel`s answer',
      ],
    });
    expect((ops[0] as { expect: unknown }).expect).toEqual({ errno: 'ok' });
  });

  it('compares the other bytes the model would have written with what the kernel wrote', () => {
    const model = Buffer.alloc(40);
    model.writeUInt32LE(3, 8);
    model.writeBigUInt64LE(0x5000n, 32);
    const v = kernelAnswer(
      outcome({ ops: mapOps({ errno: 'ok', iova: 0x5000n }), captured: [{ pid: 7, addr: 0x100n, data: model }] }),
    );
    expect(v.disagreements).toEqual(['the kernel wrote 0x00 at 0x108 of process 7, the model would have written 0x03']);
  });
});
