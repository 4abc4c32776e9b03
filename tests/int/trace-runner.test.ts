// SPDX-License-Identifier: GPL-2.0-only
// The trace runner (native/export-c/runner.c) on this machine: /dev/iommu does not exist here, so what is
// checked is the protocol: the C parser reads the compact form back byte for byte (--dump), and a batch of
// memory-only traces runs each trace in its own child with the JSON lines and the status line per trace.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBatch, parseRunnerOutput } from '../../src/groundtruth/compact.js';
import { exportOps } from '../../src/groundtruth/export-c.js';
import { exportableTrace } from '../../src/groundtruth/kernel-fuzz.js';
import { parseKernelOutput } from '../../src/groundtruth/kernel-run.js';
import { parseTraceText } from '../../src/replay/parse.js';

const dir = mkdtempSync(join(tmpdir(), 'ioptrace-runner-'));
const runner = join(dir, 'runner');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(() => {
  execFileSync('cc', ['-Wall', '-Wextra', '-Werror', '-O1', '-o', runner, 'native/export-c/runner.c'], {
    stdio: 'pipe',
  });
});

const rowsOf = (text: string, name = 't') => exportOps(parseTraceText(text, name)).rows;
const batchFile = (name: string, text: string): string => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};

const MEMORY = (value: string) =>
  [
    '{"format":"ioptrace-trace","version":1}',
    '{"op":"process","pid":1}',
    '{"op":"mmap","pid":1,"addr":"0x7f0000000000","length":8192}',
    `{"op":"write","pid":1,"addr":"0x7f0000000ffe","data":"${value}"}`,
    '{"op":"read","pid":1,"addr":"0x7f0000000ffd","length":5}',
    '{"op":"munmap","pid":1,"addr":"0x7f0000000000","length":4096}',
    '{"op":"read","pid":1,"addr":"0x7f0000000fff","length":2}',
  ].join('\n');

describe('the trace runner on the host', () => {
  it('reads the compact form back byte for byte (finding, generated traces, ranges, not-exportable reasons)', () => {
    const finding = 'tests/fixtures/findings/mm-mode-stale-last-npinned.jsonl';
    const traces = [
      { name: 'finding', rows: rowsOf(readFileSync(finding, 'utf8'), finding) },
      { name: 'bad-free', rows: rowsOf(readFileSync('replays/bad-free.jsonl', 'utf8')) },
      ...[11, 12, 13].map((seed) => ({ name: `seed${seed}`, rows: exportOps(exportableTrace(seed, 40).parsed).rows })),
    ];
    const text = encodeBatch(traces);
    expect(execFileSync(runner, ['--dump', batchFile('dump', text)], { encoding: 'utf8' })).toBe(text);
  });

  it('runs each trace in its own child: data read back, a fault after munmap, one status line each', () => {
    const file = batchFile(
      'memory',
      encodeBatch([
        { name: 'one', rows: rowsOf(MEMORY('a1b2c3')) },
        { name: 'two', rows: rowsOf(MEMORY('0f')) },
      ]),
    );
    const out = parseRunnerOutput(execFileSync(runner, ['--timeout', '30', file], { encoding: 'utf8' }));
    expect(out.map((t) => [t.name, t.how, t.status])).toEqual([
      ['one', 'exit', 0],
      ['two', 'exit', 0],
    ]);
    const one = parseKernelOutput(out[0]!.output);
    const two = parseKernelOutput(out[1]!.output);
    expect(one.ended).toBe(true);
    expect(one.ops.map((o) => [o.op, o.name, o.errno, o.data])).toEqual([
      [1, 'process', null, null],
      [2, 'mmap', null, null],
      [3, 'write', null, null],
      [4, 'read', null, '00a1b2c300'],
      [5, 'munmap', null, null],
      [6, 'read', 'EFAULT', null],
    ]);
    // A fresh process per trace: the second trace's memory holds nothing of the first's.
    expect(two.ops.find((o) => o.op === 4)?.data).toBe('000f000000');
  });

  it('refuses a bad batch, naming its line', () => {
    const file = batchFile('bad', 'ioptrace-batch 1\nT a 1\nO K_NOPE 2 x -1 0 0 0 0 0 0 0 - - -\nE\n');
    expect(() => execFileSync(runner, [file], { encoding: 'utf8', stdio: 'pipe' })).toThrow(
      'ioptrace-runner: batch line 3: unknown op kind',
    );
  });
});
