// SPDX-License-Identifier: GPL-2.0-only
// The benchmark's plan, percentile rule and assembly of results, on fixed measurements (no clock).
import { describe, expect, it } from 'vitest';
import type { AppendMeasurement } from '../../../bench/append.js';
import { GiB, SETUP_OPS } from '../../../bench/generate.js';
import type { ModelMeasurement } from '../../../bench/model.js';
import { accessOpsFor, assemble, makePlan } from '../../../bench/run.js';
import { quantile } from '../../../bench/timing.js';

describe('quantile', () => {
  it('takes the nearest rank: p50 of 1..1000 is 500, p99 is 990', () => {
    const values = Array.from({ length: 1000 }, (_, i) => 1000 - i);
    expect(quantile(values, 0.5)).toBe(500);
    expect(quantile(values, 0.99)).toBe(990);
    expect(quantile(values, 1)).toBe(1000);
  });

  it('handles one sample and refuses no samples or a bad q', () => {
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBeNaN();
    expect(quantile([1, 2], 0)).toBeNaN();
  });
});

describe('makePlan', () => {
  it('runs the issue sizes in full: 16 GiB, 100,000 access ops, 1000 seeks, curve at 100k and 4M events', () => {
    const p = makePlan('full');
    expect(p.guest.guestBytes).toBe(16 * GiB);
    expect(p.guest.accessOps).toBe(100_000);
    expect(p.guest.maxPinPages).toBe(64);
    expect(p.guest.chunkBytes).toBe(GiB);
    expect(p.scattered.map((x) => x.guestBytes)).toEqual([GiB, 16 * GiB, 64 * GiB]);
    expect(p.scattered.map((x) => [x.chunkBytes, x.accessOps])).toEqual([
      [null, 100_000],
      [null, 100_000],
      [null, 100_000],
    ]);
    expect(p.smallPages.map((x) => [x.guestBytes, x.chunkBytes, x.accessOps, x.smallPages])).toEqual([
      [GiB, null, 100_000, true],
      [16 * GiB, null, 100_000, true],
      [64 * GiB, null, 100_000, true],
    ]);
    expect(p.scatteredGuest).toMatchObject({
      guestBytes: 16 * GiB,
      accessOps: 100_000,
      chunkBytes: null,
      probeAt: null,
    });
    expect(p.smallPageGuest).toMatchObject({
      guestBytes: 16 * GiB,
      accessOps: 100_000,
      chunkBytes: null,
      probeAt: null,
      smallPages: true,
    });
    expect(p.seeks).toBe(1000);
    expect(p.curveEvents).toEqual([100_000, 4_000_000]);
  });

  it('scales down for --quick and keeps the probe among the access ops', () => {
    const p = makePlan('quick');
    expect(p.guest.guestBytes).toBe(GiB);
    expect(p.guest.accessOps).toBe(10_000);
    expect(p.curveEvents).toEqual([]);
    expect(p.scattered.map((x) => [x.guestBytes, x.chunkBytes, x.accessOps])).toEqual([
      [GiB, null, 5000],
      [4 * GiB, null, 5000],
    ]);
    expect(p.smallPages.map((x) => [x.guestBytes, x.accessOps])).toEqual([
      [GiB / 4, 5000],
      [GiB, 5000],
    ]);
    for (const plan of [p, makePlan('full'), makePlan('full', 9)]) {
      const at = plan.guest.probeAt ?? 0;
      expect(at).toBeGreaterThanOrEqual(SETUP_OPS + 2);
      expect(at).toBeLessThanOrEqual(SETUP_OPS + plan.guest.accessOps);
    }
    // Pinned once: the probe's op follows from the seed alone.
    expect([makePlan('full').guest.probeAt, makePlan('full', 9).guest.probeAt, p.guest.probeAt]).toEqual([
      82196, 70942, 8227,
    ]);
  });
});

describe('accessOpsFor', () => {
  it('sizes a run for a number of events, always an even number of ops', () => {
    expect(accessOpsFor(100_000, 200, 10)).toBe(9_980);
    expect(accessOpsFor(4_000_000, 3_000, 11.5)).toBe(347_566);
    expect(accessOpsFor(1_000, 5_000, 10)).toBe(2);
  });
});

describe('assemble', () => {
  const append = (
    events: number,
    writerSeconds: number,
    recordSeconds: number,
    rawPerSec: number,
    threadSeconds = 0,
  ): AppendMeasurement => ({
    record: {
      run: 1,
      dbPath: '/x.db',
      events,
      traceOps: 100_014,
      accessOps: 100_000,
      parseSeconds: 1,
      seconds: recordSeconds,
      cpuSeconds: recordSeconds / 2,
      writerSeconds,
      threadSeconds,
      threadCpuSeconds: null,
      threadWaitSeconds: null,
      setupSeconds: 0.5,
      accessSeconds: 40,
      fixedEvents: 1_000,
      mapEvents: 200,
      digest: '0123456789abcdef',
      violations: 0,
      warns: 0,
      mismatches: 0,
      dbBytes: events * 250,
    },
    limit: {
      rows: events,
      seconds: events / rawPerSec,
      cpuSeconds: events / rawPerSec / 2,
      rowsPerSec: rawPerSec,
      payloadBytes: 84,
    },
    meanPayloadBytes: 84,
    peakRssMiB: 300,
    load: 1.5,
  });
  const model = (seconds: number): ModelMeasurement => ({
    traceOps: 100_014,
    events: 1_200_000,
    setupEvents: 2_000,
    parseSeconds: 1,
    seconds,
    cpuSeconds: seconds / 2,
    setupSeconds: 0.5,
    accessSeconds: seconds - 1,
    teardownSeconds: 0.5,
    accessPhaseOps: 100_001,
    peakRssMiB: 200,
    digest: '0123456789abcdef',
    findings: 0,
  });
  const seek = {
    events: 1_200_000,
    seeks: 1000,
    p50Ms: 7,
    p99Ms: 12,
    maxMs: 90,
    meanMs: 8,
    p99CpuMs: 20,
    snapshots: 500,
    load: 1.5,
  };
  const results = assemble(makePlan('full'), {
    guest: {
      append: append(1_200_000, 8, 50, 200_000),
      snapshots: { snapshots: 500, snapshotBytes: 1e6, maxCompressedBytes: 4096, maxStateBytes: 40_000 },
      guestPages: 4_194_304,
    },
    model: model(20),
    rebuild: {
      events: 1_200_000,
      seconds: 24,
      cpuSeconds: 20,
      eventsPerSec: 50_000,
      limit: { rows: 1_200_000, seconds: 4, cpuSeconds: 3, rowsPerSec: 300_000 },
    },
    seek,
    bisect: {
      seconds: 1.5,
      eventsA: 1_200_000,
      eventsB: 1_200_100,
      runB: 2,
      divergenceOp: 5000,
      probeOp: 5000,
      differingOps: 90_000,
      diffLines: 14,
    },
    curve: [{ append: append(100_000, 0.5, 4, 250_000, 0.8), seek: { ...seek, events: 100_000, p99Ms: 10 } }],
    scattered: [
      { ...model(30), accessPhaseOps: 4000, accessSeconds: 0.1 },
      { ...model(30), accessPhaseOps: 4000, accessSeconds: 0.125 },
      { ...model(30), accessPhaseOps: 4000, accessSeconds: 0.16 },
    ],
    smallPages: [
      { ...model(30), accessPhaseOps: 4000, accessSeconds: 0.125, setupEvents: 524_288, setupSeconds: 2 },
      { ...model(30), accessPhaseOps: 4000, accessSeconds: 0.16, setupEvents: 8_388_608, peakRssMiB: 300 },
      { ...model(30), accessPhaseOps: 4000, accessSeconds: 0.2, setupEvents: 33_554_432, peakRssMiB: 480 },
    ],
    scatteredGuest: {
      append: {
        ...append(1_300_000, 9, 60, 200_000),
        record: { ...append(1_300_000, 9, 60, 200_000).record, accessSeconds: 8, mapEvents: 16_384 },
        peakRssMiB: 330,
      },
      snapshots: { snapshots: 600, snapshotBytes: 2e6, maxCompressedBytes: 8192, maxStateBytes: 2_097_152 },
      guestPages: 4_194_304,
    },
    smallPageGuest: {
      append: {
        ...append(1_400_000, 9, 60, 200_000),
        record: { ...append(1_400_000, 9, 60, 200_000).record, accessSeconds: 10, mapEvents: 8_200 },
        peakRssMiB: 640,
      },
      snapshots: { snapshots: 700, snapshotBytes: 2e6, maxCompressedBytes: 8192, maxStateBytes: 1_048_576 },
      guestPages: 4_194_304,
    },
  });

  it('has every id, and the ratios of the issue', () => {
    expect(Object.keys(results)).toEqual(['B1', 'B2', 'B3', 'B4', 'B5', 'B6']);
    expect(results.B1?.figures['storedEventsPerSec']).toBe(150_000);
    expect(results.B1?.ratio).toBe(0.75);
    // The store's slower stage sets the figure: here its writer thread (0.8 s against 0.5 s in the writer).
    expect(results.B1?.curve?.[0]?.figures['storedEventsPerSec']).toBe(125_000);
    // 0.75 at B5's run, but 0.5 at 100k events: the issue holds B1 at every size of the curve.
    expect(results.B1?.figures['curveMinRatio']).toBe(0.5);
    expect(results.B1?.met).toBe(false);
    expect(results.B1?.notes.filter((n) => n.startsWith('goal not met'))).toHaveLength(1);
    expect(results.B3?.figures['curveMaxP99Ms']).toBe(12);
    expect(results.B1?.figures['storePathEventsPerSec']).toBe(40_000);
    expect(results.B2?.ratio).toBe(50_000 / 300_000);
    expect(results.B2?.met).toBe(false);
    expect(results.B3?.met).toBe(true);
    expect(results.B4?.ratio).toBe(0.0625);
    expect(results.B4?.limit).toEqual({ what: 'B2 rebuild of one run', value: 24 });
    expect(results.B4?.met).toBe(true);
    expect(results.B6?.ratio).toBe(2.5);
    expect(results.B6?.figures['storeShareOfB5']).toBe(0.6);
    expect(results.B6?.figures['cpuRatio']).toBe(2.5);
    expect(results.B2?.figures['cpuRatio']).toBe(0.15);
    expect(results.B1?.figures['storePathCpuEventsPerSec']).toBe(80_000);
    expect(results.B1?.figures['storePathCpuRatio']).toBe(0.2);
    expect(results.B6?.met).toBe(false);
  });

  it('reports the scattered layout by guest size in B6, its goals beside the model rate', () => {
    const b6 = results.B6;
    expect(b6?.figures['scatteredAccessOpsPerSec1GiB']).toBe(40_000);
    expect(b6?.figures['scatteredAccessOpsPerSec16GiB']).toBe(32_000);
    expect(b6?.figures['scatteredAccessOpsPerSec64GiB']).toBe(25_000);
    expect(b6?.figures['scatteredAccessOpsPerSec']).toBe(32_000);
    expect(b6?.figures['scatteredFlatness']).toBe(0.625);
    expect(b6?.goal).toBe(
      'accessOpsPerSec >= 30000 and scatteredAccessOpsPerSec >= 30000 and scatteredFlatness >= 0.8 and ' +
        'smallPageAccessOpsPerSec >= 30000 and smallPageFlatness >= 0.8',
    );
    expect(b6?.notes.filter((n) => n.startsWith('goal not met'))).toEqual([
      'goal not met: accessOpsPerSec 5,260, needs >= 30000: 82.5% short',
      'goal not met: scatteredFlatness 0.625, needs >= 0.8: 21.9% short',
      'goal not met: smallPageAccessOpsPerSec 25,000, needs >= 30000: 16.7% short',
      'goal not met: smallPageFlatness 0.625, needs >= 0.8: 21.9% short',
    ]);
    expect(
      results.B5?.notes.some((n) => n.includes('(40,000/s at 1 GiB, 32,000/s at 16 GiB, 25,000/s at 64 GiB)')),
    ).toBe(true);
  });

  it('reports 4 KiB pages with every frame apart by guest size in B6, with the goals of the scattered layout', () => {
    const b6 = results.B6;
    expect(b6?.figures['smallPageAccessOpsPerSec1GiB']).toBe(32_000);
    expect(b6?.figures['smallPageAccessOpsPerSec16GiB']).toBe(25_000);
    expect(b6?.figures['smallPageAccessOpsPerSec64GiB']).toBe(20_000);
    expect(b6?.figures['smallPageAccessOpsPerSec']).toBe(25_000);
    expect(b6?.figures['smallPageFlatness']).toBe(0.625);
    expect(b6?.figures['smallPageSetupEventsPerPage1GiB']).toBe(2);
    expect(b6?.figures['smallPageSetupSeconds1GiB']).toBe(2);
    expect(b6?.figures['smallPagePeakRssMiB64GiB']).toBe(480);
    expect(b6?.notes).toContain(
      '4 KiB pages with every frame apart (trace version 5), without a store: 1 GiB: 32,000 access ops/s, setup 2 s ' +
        'and 2 events per page, peak RSS 200 MiB; 16 GiB: 25,000 access ops/s, setup 0.5 s and 2 events per page, ' +
        'peak RSS 300 MiB; 64 GiB: 20,000 access ops/s, setup 0.5 s and 2 events per page, peak RSS 480 MiB; ' +
        'largest over smallest 0.625 (flat in guest size: >= 0.8)',
    );
  });

  it('measures B5 per guest page', () => {
    const b5 = results.B5;
    expect(b5?.figures['maxStateBytesPerPage']).toBe(40_000 / 4_194_304);
    expect(b5?.figures['mapEventsPerPage']).toBe(200 / 4_194_304);
    expect(b5?.figures['peakRssMiB']).toBe(300);
  });

  it("holds B5 to the issue's access rate and memory with the store on each layout", () => {
    const b5 = results.B5;
    expect(b5?.figures['accessOpsPerSec']).toBe(2_500);
    expect(b5?.figures['scatteredStoreAccessOpsPerSec']).toBe(12_500);
    expect(b5?.figures['scatteredStorePeakRssMiB']).toBe(330);
    expect(b5?.figures['scatteredStoreEvents']).toBe(1_300_000);
    expect(b5?.figures['scatteredStoreMaxStateBytesPerPage']).toBe(0.5);
    expect(b5?.figures['scatteredStoreMapEvents']).toBe(16_384);
    expect(b5?.goal).toBe(
      'peakRssMiB <= 512 and maxStateBytesPerPage <= 1 and mapEventsPerPage <= 0.01 and accessOpsPerSec >= 10000 and ' +
        'scatteredStoreAccessOpsPerSec >= 10000 and scatteredStorePeakRssMiB <= 512 and ' +
        'smallPageStoreAccessOpsPerSec >= 10000 and smallPageStorePeakRssMiB <= 512',
    );
    expect(b5?.notes.filter((n) => n.startsWith('goal not met'))).toEqual([
      'goal not met: accessOpsPerSec 2,500, needs >= 10000: 75% short',
      'goal not met: smallPageStorePeakRssMiB 640, needs <= 512: 25% over',
    ]);
    expect(b5?.met).toBe(false);
    expect(b5?.notes).toContain(
      'scattered layout (every 2 MiB page its own physical block) with the store (16 GiB, 100,000 access ops): ' +
        '12,500 access ops/s, peak RSS 330 MiB, 1,300,000 events, setup 0.5 s, largest stored state 0.5 bytes per ' +
        'guest page, map of the whole guest 16,400 events',
    );
    expect(b5?.figures['smallPageStoreAccessOpsPerSec']).toBe(10_000);
    expect(b5?.figures['smallPageStorePeakRssMiB']).toBe(640);
    expect(b5?.figures['smallPageStoreMaxStateBytesPerPage']).toBe(0.25);
    expect(b5?.notes).toContain(
      '4 KiB pages with every frame apart with the store (16 GiB, 100,000 access ops): 10,000 access ops/s, ' +
        'peak RSS 640 MiB, 1,400,000 events, setup 0.5 s, largest stored state 0.25 bytes per guest page, ' +
        'map of the whole guest 8,200 events',
    );
  });

  it('orders the cost curve by log size, the B5 run among the points', () => {
    expect(results.B1?.curve?.map((p) => p.events)).toEqual([100_000, 1_200_000]);
    expect(results.B1?.curve?.map((p) => p.ratio)).toEqual([0.5, 0.75]);
    expect(results.B3?.curve?.map((p) => p.figures['p99Ms'])).toEqual([10, 12]);
  });
});
