import { describe, expect, it } from 'vitest';
import { planText } from '../../../src/groundtruth/initramfs.js';
import { parseConsole, qemuArgs } from '../../../src/groundtruth/vm.js';

// A console as native/kernel/init.sh prints it (serial lines end in \r\n).
const CONSOLE = [
  'SeaBIOS (version 1.16.2)',
  'Booting from ROM..',
  '@@IOPTRACE-BOOTED release=6.12.118 hugepages=128 uptime=2.31',
  '@@IOPTRACE-BEGIN mm_warn uptime=2.40',
  'child mapped',
  'parent attached@@IOPTRACE-END mm_warn rc=0 uptime=2.95',
  '@@IOPTRACE-BEGIN crasher uptime=3.00',
  'partial',
  '@@IOPTRACE-END crasher rc=139 uptime=3.10',
  '@@IOPTRACE-KMSG-BEGIN',
  '6,1,0,-;Linux version 6.12.118',
  '4,200,2900000,-;WARNING: CPU: 0 PID: 41 at drivers/iommu/iommufd/pages.c:1119 pfn_reader_destroy+0x5a/0x60',
  '4,201,2900001,-;Modules linked in:',
  '0,300,9000000,-;kernel BUG at mm/somewhere.c:12!',
  '@@IOPTRACE-KMSG-END',
  '@@IOPTRACE-DONE uptime=3.50',
  'reboot: Restarting system',
].join('\r\n');

describe('parseConsole', () => {
  it('splits the console into programs, exit statuses, guest times and the kernel log', () => {
    const r = parseConsole(CONSOLE, 12.5);
    expect(r.booted).toBe(true);
    expect(r.completed).toBe(true);
    expect(r.release).toBe('6.12.118');
    expect(r.hugepages).toBe(128);
    expect(r.bootSeconds).toBe(2.31);
    expect(r.wallSeconds).toBe(12.5);
    expect(r.runs).toEqual([
      { name: 'mm_warn', exitStatus: 0, output: 'child mapped\nparent attached', startedAt: 2.4, endedAt: 2.95 },
      { name: 'crasher', exitStatus: 139, output: 'partial', startedAt: 3, endedAt: 3.1 },
    ]);
    expect(r.kmsg).toHaveLength(4);
    expect(r.reports).toEqual([
      {
        line: 'WARNING: CPU: 0 PID: 41 at drivers/iommu/iommufd/pages.c:1119 pfn_reader_destroy+0x5a/0x60',
        fn: 'pfn_reader_destroy',
        during: 'mm_warn',
      },
      { line: 'kernel BUG at mm/somewhere.c:12!', fn: undefined, during: undefined },
    ]);
  });

  it('reports a VM that died mid-program: no end marker, not completed', () => {
    const r = parseConsole(
      '@@IOPTRACE-BOOTED release=6.12.118 hugepages=0 uptime=1\n@@IOPTRACE-BEGIN t uptime=1.5\nout\n',
      3,
    );
    expect(r.completed).toBe(false);
    expect(r.runs).toEqual([{ name: 't', exitStatus: undefined, output: 'out\n', startedAt: 1.5, endedAt: undefined }]);
  });

  it('boots without KVM, without reboot, with the console on the first UART', () => {
    const args = qemuArgs('/k/bzImage', '/k/initrd', 512);
    expect(args).toContain('-no-reboot');
    expect(args).toContain('-nographic');
    expect(args).not.toContain('-enable-kvm');
    expect(args[args.indexOf('-append') + 1]).toMatch(/^console=ttyS0 /);
    expect(args[args.indexOf('-m') + 1]).toBe('512M');
  });
});

describe('planText', () => {
  it('lists programs with arguments, one a line, and refuses names the init could not run safely', () => {
    expect(
      planText([
        { name: 'iommufd', file: '/x' },
        { name: 'mm', file: '/y', args: ['--mode=vfio'] },
      ]),
    ).toBe('iommufd\nmm --mode=vfio\n');
    expect(() => planText([{ name: 'a b', file: '/x' }])).toThrow('bad program name for the VM: "a b"');
    expect(() => planText([{ name: 'a', file: '/x', args: ['$(reboot)'] }])).toThrow(
      'argument "$(reboot)" of a needs quoting',
    );
    expect(() =>
      planText([
        { name: 'a', file: '/x' },
        { name: 'a', file: '/y' },
      ]),
    ).toThrow('program "a" is planned twice');
  });
});
