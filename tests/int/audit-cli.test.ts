// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace audit` as a command: outputs, exit codes and bad arguments, on a real database file. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { auditCommand } from '../../src/cli/commands/audit.js';
import { COMMANDS } from '../../src/cli/commands/index.js';
import { parseCommandArgs } from '../../src/cli/command.js';
import type { CommandOutput } from '../../src/cli/command.js';
import { UsageError } from '../../src/cli/errors.js';
import { NotFoundError } from '../../src/lib/errors.js';
import { FIXTURES, recordTrace, tempStore, type TempStore } from '../fixtures/audit/record.js';

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.close();
});

async function audit(...argv: string[]): Promise<CommandOutput> {
  const { positionals, values } = parseCommandArgs(auditCommand, [...argv, '--db', t.path]);
  return auditCommand.run(positionals, values, { db: t.path, json: values['json'] === true, stderr: process.stderr });
}

describe('ioptrace audit', () => {
  it('is registered', () => {
    expect(COMMANDS.filter((c) => c.name === 'audit')).toEqual([auditCommand]);
  });

  it('exits 1 with the broken rules, their ops and lines, and the ledger in --json', async () => {
    const run = await recordTrace(t.store, `${FIXTURES}/unfill-xarray-leak.jsonl`, 'v3');
    const out = await audit(String(run), '--json');
    expect(out.exitCode).toBe(1);
    const json = out.json as {
      rules: { rule: string; ok: boolean; op: number | null; line: number | null }[];
      ledger: unknown[];
    };
    expect(json.rules.map((r) => [r.rule, r.ok, r.op, r.line])).toEqual([
      ['ledger-equals-state', false, 11, 21],
      ['npinned-equals-pins', false, 9, 19],
      ['charged-equals-pinned', true, null, null],
      ['counters-move-together', true, null, null],
      ['zero-after-teardown', false, 13, 23],
    ]);
    expect(json.ledger).toHaveLength(80);
    expect(out.text.slice(0, 3)).toEqual([
      `run ${run}: ${FIXTURES}/unfill-xarray-leak.jsonl on v3: 80 ledger lines over 14 ops`,
      '3 of 5 rules broken; the run also has 25 violations (pin_leak x20, invariant x2, accounting_mismatch x3) and 2 WARNs:',
      '  BROKEN  ledger-equals-state     at op 11 (line 21, ioas_unmap): last_npinned:2: ledger 63, state 0; npinned:2: ledger 63, state 0',
    ]);
  });

  it('exits 0 when the books balance, and prints the ledger as CSV', async () => {
    const run = await recordTrace(t.store, `${FIXTURES}/unfill-xarray-leak.jsonl`, 'upstream');
    const text = await audit(String(run));
    expect([text.exitCode, text.text[1]]).toEqual([0, 'the books balance: all 5 rules hold, no violation, no WARN']);
    const csv = await audit(String(run), '--csv', '--pages', '2');
    expect(csv.exitCode).toBe(0);
    expect(csv.text[0]).toBe('seq,op,line,type,counter,owner,pages,delta,value,fn,pfn,mm');
    expect(csv.text.slice(1).every((l) => l.split(',')[6] === '2')).toBe(true);
    expect(csv.text.at(-1)).toMatch(/,mm\.pinned_vm,1,2,-64,0,do_update_pinned,,$/);
  });

  it('writes the HTML report with --html and says where', async () => {
    const run = await recordTrace(t.store, `${FIXTURES}/unfill-xarray-leak.jsonl`, 'v3');
    const file = join(t.dir, 'report.html');
    const out = await audit(String(run), '--html', file);
    expect(out.exitCode).toBe(1);
    expect(out.text).toEqual([
      `wrote ${file}: run ${run}, 80 ledger lines, 3 rules broken (ledger-equals-state at op 11, npinned-equals-pins at op 9, zero-after-teardown at op 13)`,
    ]);
    expect(readFileSync(file, 'utf8')).toMatch(/^<!DOCTYPE html>/);
  });

  it('summarizes every run with --all', async () => {
    await recordTrace(t.store, `${FIXTURES}/unfill-xarray-leak.jsonl`, 'upstream');
    await recordTrace(t.store, `${FIXTURES}/unfill-xarray-leak.jsonl`, 'v3');
    const out = await audit('--all', '--json');
    expect(out.exitCode).toBe(1);
    const rows = (out.json as { runs: { run: number; ok: boolean; final: Record<string, number> }[] }).runs;
    expect(rows.map((r) => [r.run, r.ok, r.final['npinned'], r.final['user.locked_vm']])).toEqual([
      [1, true, 0, 0],
      [2, false, 63, 63],
    ]);
    const text = await audit('--all');
    expect(text.text.at(-1)).toBe('1 of 2 runs do not balance');
    expect(text.text[3]).toMatch(
      /^2 .* ledger-equals-state \(11\), npinned-equals-pins \(9\), zero-after-teardown \(13\)$/,
    );
  });

  it('refuses bad arguments with a UsageError, an unknown run with a NotFoundError (both exit 2)', async () => {
    const run = String(await recordTrace(t.store, `${FIXTURES}/unfill-xarray-leak.jsonl`, 'upstream'));
    await expect(audit(run, '--json', '--csv')).rejects.toThrow(UsageError);
    await expect(audit()).rejects.toThrow(UsageError);
    await expect(audit('--all', run)).rejects.toThrow(UsageError);
    await expect(audit(run, '--pages', 'two')).rejects.toThrow(
      new UsageError('--pages must be a non-negative integer, got "two"'),
    );
    await expect(audit('42')).rejects.toThrow(
      new NotFoundError(`no run 42 in ${t.path} (ioptrace runs lists them)`, 'run', 42),
    );
    const nowhere = join(t.dir, 'no', 'such', 'x.html');
    await expect(audit(run, '--html', nowhere)).rejects.toThrow(new UsageError(`cannot write ${nowhere}: ENOENT`));
    expect(existsSync(nowhere)).toBe(false);
  });
});

describe('ioptrace audit of a run with violations that touch no counter', () => {
  it('never says the books balance, and draws the flat counters of a short run', async () => {
    const run = await recordTrace(t.store, 'replays/bad-free.jsonl', 'v3');
    const text = await audit(String(run));
    expect([text.exitCode, text.text[1]]).toEqual([
      0,
      `the accounting rules hold (all 5), but the run has 3 violations (bad_free, mmput_underflow, double_free): see ioptrace log ${run} --type ViolationDetected`,
    ]);
    const file = join(t.dir, 'bad-free.html');
    const html = await audit(String(run), '--html', file);
    expect(html.text).toEqual([
      `wrote ${file}: run ${run}, 0 ledger lines, the accounting rules hold (all 5), but the run has 3 violations (bad_free, mmput_underflow, double_free): see ioptrace log ${run} --type ViolationDetected`,
    ]);
    const page = readFileSync(file, 'utf8');
    expect(page).not.toContain('the books balance');
    expect(page).toContain(
      '<div class="verdict broken">the accounting rules hold (all 5), but the run has 3 violations',
    );
    expect(page.match(/<polyline class="series"/g)).toHaveLength(6);
    // 12 ops (setup, 10 trace ops, teardown): a marker per op for each of the 6 counters
    expect(page.match(/<circle class="point"/g)).toHaveLength(72);
    expect(page).toContain('no counter moved in this run: every counter stays at 0 through its 12 ops');
  });
});
