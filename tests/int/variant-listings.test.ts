// SPDX-License-Identifier: GPL-2.0-only
/**
 * One variant syntax everywhere: `replay` takes `v3+FLAG` as bisect, observed and shrink do, a run recorded
 * with `--fix` or `+FLAG` is listed by `runs`, `audit` and `audit --all` with its flags in that syntax, and
 * replay's --help names its default variant.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { auditCommand } from '../../src/cli/commands/audit.js';
import { replayCommand } from '../../src/cli/commands/replay.js';
import { runsCommand } from '../../src/cli/commands/runs.js';
import { parseCommandArgs, type Command, type CommandOutput } from '../../src/cli/command.js';
import { BadInputError } from '../../src/lib/errors.js';
import { FIXTURES, tempStore, type TempStore } from '../fixtures/audit/record.js';

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.close();
});

async function run(cmd: Command, ...argv: string[]): Promise<CommandOutput> {
  const { positionals, values } = parseCommandArgs(cmd, [...argv, '--db', t.path]);
  return cmd.run(positionals, values, { db: t.path, json: values['json'] === true, stderr: process.stderr });
}

const TRACE = `${FIXTURES}/unfill-xarray-leak.jsonl`;

describe('one variant syntax', () => {
  it('replays v3+FLAG and v3 --fix FLAG alike, and every listing shows the flags', async () => {
    const a = await run(replayCommand, TRACE, '--variant', 'v3+unfill-xarray-loop');
    const b = await run(replayCommand, TRACE, '--variant', 'v3', '--fix', 'unfill-xarray-loop');
    const c = await run(replayCommand, TRACE, '--variant', 'upstream', '--without', 'carry-end-one');
    const d = await run(replayCommand, TRACE, '--variant', 'v3');
    expect([a.text[0], b.text[0], c.text[0], d.text[0]].map((l) => l?.replace(/: \d+ ops.*/, ''))).toEqual([
      `run 1: ${TRACE} on v3+unfill-xarray-loop`,
      `run 2: ${TRACE} on v3+unfill-xarray-loop`,
      `run 3: ${TRACE} on upstream-carry-end-one`,
      `run 4: ${TRACE} on v3`,
    ]);
    // The same flags, the same run.
    const digest = (o: CommandOutput): unknown => (o.json as { digest: string; flags: string[] }).digest;
    expect(digest(a)).toBe(digest(b));
    expect(digest(a)).not.toBe(digest(d));
    expect((a.json as { flags: string[] }).flags).toEqual(['unfill-xarray-loop']);

    const runs = await run(runsCommand);
    expect(runs.text.slice(2).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
      ['1', 'complete', 'v3+unfill-xarray-loop'],
      ['2', 'complete', 'v3+unfill-xarray-loop'],
      ['3', 'complete', 'upstream-carry-end-one'],
      ['4', 'complete', 'v3'],
    ]);
    const runsJson = (await run(runsCommand, '--json')).json as { id: number; label: string; flags: string[] }[];
    expect(runsJson.map((r) => [r.id, r.label, r.flags.length])).toEqual([
      [1, 'v3+unfill-xarray-loop', 1],
      [2, 'v3+unfill-xarray-loop', 1],
      [3, 'upstream-carry-end-one', 31],
      [4, 'v3', 0],
    ]);

    const all = (await run(auditCommand, '--all', '--json')).json as { runs: { run: number; variant: string }[] };
    expect(all.runs.map((r) => [r.run, r.variant])).toEqual([
      [1, 'v3+unfill-xarray-loop'],
      [2, 'v3+unfill-xarray-loop'],
      [3, 'upstream-carry-end-one'],
      [4, 'v3'],
    ]);
    const allText = (await run(auditCommand, '--all')).text;
    expect(allText[2]?.split(/\s+/).slice(0, 3)).toEqual(['1', TRACE, 'v3+unfill-xarray-loop']);
    expect((await run(auditCommand, '2')).text[0]).toBe(
      `run 2: ${TRACE} on v3+unfill-xarray-loop: 143 ledger lines over 14 ops`,
    );
  });

  it('refuses a bad spec as bad input, naming the part that is wrong', async () => {
    await expect(run(replayCommand, TRACE, '--variant', 'v3+unfill')).rejects.toThrow(
      new BadInputError(
        'variant "v3+unfill": "+unfill" is not +FLAG or -FLAG with a known flag (ioptrace variants lists them)',
        { field: 'variant' },
      ),
    );
    await expect(run(replayCommand, TRACE, '--fix', 'nope')).rejects.toThrow('unknown fix flag "nope"');
  });

  it("names replay's default variant in its help", () => {
    expect(replayCommand.usage).toContain('[--variant V]');
    expect(replayCommand.help[0]).toBe(
      '--variant V: v3, merged, upstream or a kernel release (v6.12, v6.12.y; default upstream), then +FLAG / -FLAG to add or remove fixes,',
    );
  });
});
