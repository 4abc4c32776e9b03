import { describe, expect, it } from 'vitest';

import { describeEvent } from '../../../src/events/describe.js';
import { byteSize, count, hex } from '../../../src/lib/format.js';

describe('number formatting', () => {
  it('writes addresses and PFNs in hex, counts in decimal, sizes in units', () => {
    expect([hex(0x40006), hex(-16n), count(256), count(7n)]).toEqual(['0x40006', '-0x10', '256', '7']);
    expect([
      byteSize(1n << 40n),
      byteSize(4096n),
      byteSize(100n),
      byteSize(1536n * 1024n * 1024n),
      byteSize(1025n),
    ]).toEqual(['1 TiB', '4 KiB', '100 bytes', '1536 MiB', '1.0 KiB (0x401)']);
  });

  it('shows pfn runs as hex PFN and decimal count, and a kernel thread caller as kthread', () => {
    expect(
      describeEvent({ type: 'OpFinished', v: 1, op: 3, errno: null, result: { pfns: [[262400, 256]] } } as never),
    ).toBe('OpFinished op=3 errno=null result={pfns:[[0x40100,256]]}');
    expect(describeEvent({ type: 'OpStarted', v: 1, op: 8, line: 33, name: 'access_pin', caller: null })).toBe(
      'OpStarted op=8 line=33 name=access_pin caller=kthread',
    );
    expect(
      describeEvent({
        type: 'VmaMapped',
        v: 1,
        mm: 1,
        vpn: 0x7f0000000,
        npages: 2,
        writable: true,
        huge: '4K',
        runs: [[0x40000, 2]],
      } as never),
    ).toBe('VmaMapped mm=1 vpn=0x7f0000000 npages=2 writable=true huge=4K runs=[[0x40000,2]]');
  });
});
