// SPDX-License-Identifier: GPL-2.0-only
/**
 * The benchmark's workload traces, generated from a seed (never read from replays/: sizes must be what
 * the benchmark says). One shape, scaled: a guest process backed by 2 MiB huge pages, an IOAS with a mock
 * and a generic domain, the whole guest mapped (so every page is pinned once, as domain storage), an access
 * that pins and unpins random 1..64 page ranges, then everything unmapped and the process gone.
 *
 * Pins and unpins: `accessOps` access ops, half access_pin and half the access_unpin of a pinned range; at
 * most `window` pins are outstanding, and which of them is unpinned next is random, so unpins do not simply
 * mirror pins. The access always reads PFNs back from a domain (every index is in domains_itree), which is
 * the path a real VMM's mdev takes.
 *
 * Physical layout: `chunkBytes` null is the trace format's default (every 2 MiB page its own physical block,
 * no two adjacent: the most fragmented a huge-page guest can be). A number lays the guest out as physically
 * contiguous chunks of that size (each 1 GiB aligned, with a gap between chunks), as a hugetlb pool
 * reserved at boot tends to be. Either way the process sees 2 MiB huge pages.
 *
 * The probe (B4): `probeAt` puts one ioas_map with neither READ nor WRITE at that op. Upstream's core
 * refuses it (-EINVAL, [up:map-requires-prot]); without that flag it reaches the mock domain, which maps it
 * (the xarray mock) or refuses it with a WARN (the iommupt mock, upstream's). So two runs of one trace on
 * those two variants agree on every op before the probe and differ from it on: a divergence at a chosen op.
 *
 * Vocabulary as the trace format: addresses and lengths in bytes, `index` in 4 KiB pages.
 */

export const PAGE_SIZE = 4096;
export const HUGE_PAGE = 2 * 1024 * 1024;
export const GiB = 1024 * 1024 * 1024;

/** Where the guest lives in the process and in the IOAS; both 2 MiB aligned (1 GiB aligned, in fact). */
const GUEST_UPTR = 0x7f0000000000n;
const GUEST_IOVA = 0x40000000n;
/** The mock's default aperture ends at 2 GiB; the guest needs more, and an attach may give its own. */
const MOCK_APERTURE_LAST = (1n << 48n) - 1n;

export interface GuestOptions {
  /** Bytes of guest memory, a multiple of 2 MiB. */
  guestBytes: number;
  /** access_pin plus access_unpin ops (even: every pin is unpinned). */
  accessOps: number;
  /** Most pages per pin: lengths are uniform in 1..maxPinPages. */
  maxPinPages: number;
  /** Most pins outstanding at once. */
  window: number;
  seed: number;
  /** Physically contiguous chunks of this many bytes (a multiple of 1 GiB); null: every 2 MiB page apart. */
  chunkBytes: number | null;
  /** Trace op number (1-based, as the replayer counts) of the probe; null for none. */
  probeAt: number | null;
  /**
   * 4 KiB pages instead of 2 MiB ones, on the trace format's default layout (every frame apart: the most
   * fragmented a guest can be), in a version 5 trace (allocations, pins, maps and xarray writes in bounded
   * PFN run lists). Needs chunkBytes null.
   */
  smallPages?: boolean;
}

export const DEFAULT_GUEST: GuestOptions = {
  guestBytes: 16 * GiB,
  accessOps: 100_000,
  maxPinPages: 64,
  window: 32,
  seed: 1,
  chunkBytes: GiB,
  probeAt: null,
};

export interface GuestTrace {
  text: string;
  /** Trace ops (the replayer adds setup before them and teardown after them). */
  ops: number;
  accessOps: number;
  /** Pages pinned by access_pin ops, summed. */
  pinnedPages: number;
  /** The probe's op number, if any. */
  probeAt: number | null;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same trace on every machine. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
}

const hex = (n: bigint): string => `"0x${n.toString(16)}"`;

/** Trace ops before the first access op: the first pin is op SETUP_OPS + 1. */
export const SETUP_OPS = 8;
/** Trace ops after the last access op. */
export const TEARDOWN_OPS = 6;

/** First PFN of the chunked layout (4 GiB physical), 1 GiB aligned like every chunk. */
const CHUNK_FIRST_PFN = 0x100000;

/** The `pfns` runs of the chunked layout: chunks 1 GiB aligned, one chunk-sized gap between two chunks. */
export function chunkedLayout(guestBytes: number, chunkBytes: number): [number, number][] {
  if (!(chunkBytes > 0 && chunkBytes % GiB === 0))
    throw new RangeError('chunkBytes must be a positive multiple of 1 GiB');
  const runs: [number, number][] = [];
  const chunkPages = chunkBytes / PAGE_SIZE;
  let pfn = CHUNK_FIRST_PFN;
  for (let left = guestBytes / PAGE_SIZE; left > 0; left -= chunkPages) {
    runs.push([pfn, Math.min(chunkPages, left)]);
    pfn += 2 * chunkPages;
  }
  return runs;
}

/**
 * The guest workload as trace text (JSON Lines with a header).
 *
 * @example guestTrace({ ...DEFAULT_GUEST, guestBytes: GiB, accessOps: 10_000 }).ops  // 10_014
 */
export function guestTrace(options: GuestOptions): GuestTrace {
  const { guestBytes, accessOps, maxPinPages, window, seed, chunkBytes, probeAt } = options;
  if (!(guestBytes > 0 && guestBytes % HUGE_PAGE === 0))
    throw new RangeError('guestBytes must be a positive multiple of 2 MiB');
  if (!(Number.isSafeInteger(accessOps) && accessOps >= 0 && accessOps % 2 === 0))
    throw new RangeError('accessOps must be an even non-negative integer');
  if (!(maxPinPages >= 1 && window >= 1)) throw new RangeError('maxPinPages and window must be at least 1');
  const smallPages = options.smallPages === true;
  if (smallPages && chunkBytes !== null) throw new RangeError('smallPages takes the default layout: chunkBytes null');
  const npages = guestBytes / PAGE_SIZE;
  const len = BigInt(guestBytes);
  const rng = new Rng(seed);
  const lines: string[] = [`{"format":"ioptrace-trace","version":${smallPages ? 5 : 1}}`];
  let ops = 0;
  let probe: number | null = null;
  const push = (line: string): void => {
    lines.push(line);
    ops++;
    if (probeAt !== null && ops + 1 === probeAt) {
      // Two huge pages of the guest once more, at an IOVA past the guest, with no access rights.
      lines.push(
        `{"op":"ioas_map","ioas":"A","pid":1,"uptr":${hex(GUEST_UPTR)},"length":${HUGE_PAGE * 2},"iova":${hex(GUEST_IOVA + len)},"read":false,"write":false}`,
      );
      ops++;
      probe = ops;
    }
  };

  const layout = chunkBytes === null ? '' : `,"pfns":${JSON.stringify(chunkedLayout(guestBytes, chunkBytes))}`;
  push('{"op":"process","pid":1,"memlock":"unlimited"}');
  push(
    `{"op":"mmap","pid":1,"addr":${hex(GUEST_UPTR)},"length":${guestBytes},"huge":"${smallPages ? '4K' : '2M'}"${layout}}`,
  );
  push('{"op":"open","ctx":"vmm","pid":1}');
  push('{"op":"ioas_alloc","ioas":"A"}');
  push(
    `{"op":"domain_attach","domain":"mock","ioas":"A","kind":"mock","aperture":[${hex(1n << 24n)},${hex(MOCK_APERTURE_LAST)}]}`,
  );
  push('{"op":"domain_attach","domain":"generic","ioas":"A","kind":"generic"}');
  push(
    `{"op":"ioas_map","ioas":"A","pid":1,"uptr":${hex(GUEST_UPTR)},"length":${guestBytes},"iova":${hex(GUEST_IOVA)}}`,
  );
  // From version 2 an access is a file: its descriptor is closed rather than the access destroyed.
  const accessFd = 10;
  push(`{"op":"access_create","access":"mdev","ioas":"A"${smallPages ? `,"fd":${accessFd}` : ''}}`);

  const pins = accessOps / 2;
  const outstanding: { iova: bigint; length: number }[] = [];
  let pinned = 0;
  let pinnedPages = 0;
  const unpinOne = (): void => {
    const k = rng.int(0, outstanding.length - 1);
    const item = outstanding[k] as { iova: bigint; length: number };
    outstanding[k] = outstanding[outstanding.length - 1] as { iova: bigint; length: number };
    outstanding.pop();
    push(`{"op":"access_unpin","access":"mdev","iova":${hex(item.iova)},"length":${item.length}}`);
  };
  while (pinned < pins) {
    if (outstanding.length < window && (outstanding.length === 0 || rng.next() < 0.5)) {
      const count = rng.int(1, Math.min(maxPinPages, npages));
      const index = rng.int(0, npages - count);
      const iova = GUEST_IOVA + BigInt(index * PAGE_SIZE);
      const length = count * PAGE_SIZE;
      push(`{"op":"access_pin","access":"mdev","pid":"kthread","iova":${hex(iova)},"length":${length}}`);
      outstanding.push({ iova, length });
      pinned++;
      pinnedPages += count;
    } else {
      unpinOne();
    }
  }
  while (outstanding.length > 0) unpinOne();

  push(smallPages ? `{"op":"close","pid":1,"fd":${accessFd}}` : '{"op":"access_destroy","access":"mdev"}');
  push('{"op":"ioas_unmap","ioas":"A","all":true}');
  push('{"op":"domain_detach","domain":"mock"}');
  push('{"op":"domain_detach","domain":"generic"}');
  push(`{"op":"munmap","pid":1,"addr":${hex(GUEST_UPTR)},"length":${guestBytes}}`);
  push('{"op":"exit","pid":1}');
  return { text: `${lines.join('\n')}\n`, ops, accessOps: pinned * 2, pinnedPages, probeAt: probe };
}
