import { describe, expect, it } from 'vitest';
import { digestHex } from '../../../src/lib/digest.js';
import { recomputeDigest } from '../../../src/state/state.js';
import { ForwardSeeker, stateAt } from '../../../src/timetravel/state-at.js';
import { verifyRebuild } from '../../../src/timetravel/rebuild.js';
import { MemorySource } from '../../../src/timetravel/source.js';
import { BadRangeError, InternalError } from '../../../src/lib/errors.js';
import { scriptedRun } from '../../support/recorded-runs.js';

describe('stateAt', () => {
  const run = scriptedRun({ snapshotEvery: 16 });
  const count = run.events.length;

  it('records a run of 307 events in 25 ops with a snapshot every 16 events', () => {
    expect(count).toBe(307);
    expect(run.source.opCount()).toBe(25);
    expect(run.source.snapshotSeqs()).toEqual(Array.from({ length: 19 }, (_, i) => (i + 1) * 16));
  });

  it('gives the live state and its digest at every seq, from snapshot + tail', async () => {
    for (let seq = 0; seq <= count; seq++) {
      const s = await stateAt(run.source, seq);
      expect(s, `seq ${seq}`).toEqual(run.live[seq]);
      expect(digestHex(s.digest)).toBe(run.recorder.digests[seq]);
    }
  });

  it('gives from snapshot + tail exactly what a full replay from seq 0 gives', async () => {
    for (let seq = 0; seq <= count; seq += 7) {
      expect(await stateAt(run.source, seq)).toEqual(await stateAt(run.plain, seq));
    }
  });

  it('keeps the incremental digest equal to one recomputed from scratch at every seq', async () => {
    for (let seq = 0; seq <= count; seq += 5) {
      const s = await stateAt(run.source, seq);
      expect(digestHex(recomputeDigest(s))).toBe(digestHex(s.digest));
    }
  });

  it('returns a private state: mutating one seek does not change the next', async () => {
    const a = await stateAt(run.source, 40);
    a.counts.warns = 99;
    expect((await stateAt(run.source, 40)).counts.warns).toBe(0);
  });

  it('refuses a seq outside the run with a usage error naming the range', async () => {
    await expect(stateAt(run.source, 308)).rejects.toThrow(
      new BadRangeError('seq 308 is outside the run (0..307)', 'seq', 308, 0, 307),
    );
    await expect(stateAt(run.source, -1)).rejects.toThrow(BadRangeError);
  });

  it('refuses a snapshot whose state does not match its recorded digest', async () => {
    const blob = await run.source.snapshotAtOrBefore(32);
    if (blob === undefined) throw new Error('no snapshot');
    const forged = new MemorySource(run.events, run.recorder.opOfEvent, [{ ...blob, digest: '0000000000000000' }]);
    await expect(stateAt(forged, 40)).rejects.toThrow(
      new InternalError('snapshot at seq 32 decodes to digest ' + blob.digest + ', recorded 0000000000000000'),
    );
  });
});

describe('ForwardSeeker', () => {
  const run = scriptedRun({ snapshotEvery: 16 });

  it('moves forward through ascending seqs and matches the live state at each', async () => {
    const seeker = new ForwardSeeker(run.source);
    for (const seq of [0, 3, 3, 17, 18, 100, 101, 250, 307]) {
      expect(await seeker.seek(seq)).toEqual(run.live[seq]);
      expect(seeker.seq).toBe(seq);
    }
  });

  it('refuses to move backward', async () => {
    const seeker = new ForwardSeeker(run.source);
    await seeker.seek(50);
    await expect(seeker.seek(49)).rejects.toThrow(InternalError);
  });
});

describe('verifyRebuild', () => {
  const run = scriptedRun({ snapshotEvery: 16 });

  it('rebuilds the run with the digest recorded live after every op and at every snapshot', async () => {
    const report = await verifyRebuild(run.source);
    expect(report).toMatchObject({ ok: true, events: 307, ops: 25, snapshots: 19, mismatch: null });
    expect(report.state).toEqual(run.live[307]);
  });

  it('names the first op whose recorded digest the rebuild does not reproduce', async () => {
    const ops = (await run.source.ops(0, 24)).map((o) => (o.index === 7 ? { ...o, digest: 'ffffffffffffffff' } : o));
    const forged = new MemorySource(run.events, run.recorder.opOfEvent, [], ops);
    const span = ops[7];
    expect((await verifyRebuild(forged)).mismatch).toEqual({
      what: 'op-digest',
      op: 7,
      seq: span?.lastSeq,
      recorded: 'ffffffffffffffff',
      rebuilt: run.recorder.digests[span?.lastSeq ?? 0],
    });
  });
});
