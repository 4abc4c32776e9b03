// SPDX-License-Identifier: GPL-2.0-only
/**
 * Where a recorder takes snapshots: spaced by what a seek costs. A seek loads one snapshot (cost grows with
 * the state) and replays the events after it (cost grows with the gap), and each snapshot costs a write on
 * the live path and its bytes in the database. So small states are snapshotted often (a seek is then mostly
 * a short tail) and large ones rarely, keeping the snapshot bytes per event of log under `bytesPerEvent`;
 * `maxEvents` bounds the replay of any seek whatever the state size.
 *
 * Deterministic: the gap depends only on the seqs and the sizes of the snapshots taken, which depend only on
 * the run.
 */

export interface SpacingOptions {
  /** Fewest events between two snapshots. */
  minEvents: number;
  /** Most events between two snapshots: the bound on the replay of a seek. */
  maxEvents: number;
  /** Snapshot bytes allowed per event of log. */
  bytesPerEvent: number;
}

export const DEFAULT_SPACING: SpacingOptions = { minEvents: 1024, maxEvents: 4096, bytesPerEvent: 32 };

export class SnapshotSpacing {
  private last = 0;
  private gap: number;

  constructor(private readonly options: SpacingOptions = DEFAULT_SPACING) {
    if (!(options.minEvents >= 1 && options.maxEvents >= options.minEvents && options.bytesPerEvent > 0)) {
      throw new RangeError('snapshot spacing needs 1 <= minEvents <= maxEvents and bytesPerEvent > 0');
    }
    this.gap = options.minEvents;
  }

  /** Is a snapshot due after event `seq`? */
  due(seq: number): boolean {
    return seq - this.last >= this.gap;
  }

  /** A snapshot of `bytes` bytes was taken after event `seq`: the next one is due that many bytes' worth later. */
  taken(seq: number, bytes: number): void {
    this.last = seq;
    const { minEvents, maxEvents, bytesPerEvent } = this.options;
    this.gap = Math.min(maxEvents, Math.max(minEvents, Math.ceil(bytes / bytesPerEvent)));
  }
}
