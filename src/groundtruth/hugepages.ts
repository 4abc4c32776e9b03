// SPDX-License-Identifier: GPL-2.0-only
/**
 * The hugetlb pool of the two sides of the selftest table. The VM's /init fills a pool of 2 MiB pages
 * (native/kernel/init.sh) before the selftests run; the model's column runs the same program on this
 * machine, where a MAP_HUGETLB mmap fails without a pool of its own, so the huge-page variants would
 * fail for want of memory, not for anything iommufd does. The host's pool is raised to the VM's when it is
 * smaller and this process may (root); otherwise the shortfall is said, and becomes the reason of every
 * test that fails under the model for it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { nativeFile } from './paths.js';
import type { Say } from './kernel-build.js';

export const NR_HUGEPAGES_PATH = '/proc/sys/vm/nr_hugepages';

/** The pool size the VM's /init sets (read from the script, so the two cannot drift apart). */
export function vmHugepages(initScript = nativeFile('kernel', 'init.sh')): number {
  const m = /^echo (\d+) > \/proc\/sys\/vm\/nr_hugepages$/m.exec(readFileSync(initScript, 'utf8'));
  if (m?.[1] === undefined) throw new Error(`${initScript}: no line setting /proc/sys/vm/nr_hugepages`);
  return Number(m[1]);
}

export interface HostHugepages {
  /** The VM's pool. */
  vm: number;
  /** The host's pool before and after; null where it could not be read. */
  before: number | null;
  after: number | null;
  /** Why the host's pool stays below the VM's, or null when it does not. */
  shortfall: string | null;
}

const readCount = (path: string): number | null => {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) ? n : null;
  } catch {
    return null;
  }
};

/**
 * Raise the host's pool to the VM's when it is lower: as root by writing the sysctl (the kernel may grant
 * fewer pages than asked when memory is fragmented, so the count is read back), saying so on `say`.
 */
export function matchHostHugepages(say: Say, opts: { path?: string; vm?: number; root?: boolean } = {}): HostHugepages {
  const path = opts.path ?? NR_HUGEPAGES_PATH;
  const vm = opts.vm ?? vmHugepages();
  const root = opts.root ?? process.getuid?.() === 0;
  const before = readCount(path);
  if (before === null) {
    const shortfall = `${path} cannot be read: this kernel has no hugetlb pool (the VM's has ${vm} pages)`;
    say(shortfall);
    return { vm, before, after: null, shortfall };
  }
  if (before >= vm) return { vm, before, after: before, shortfall: null };
  if (!root) {
    const shortfall = `vm.nr_hugepages is ${before}, below the VM's ${vm}, and only root can raise it: the huge-page variants cannot map their memory under the model`;
    say(shortfall);
    return { vm, before, after: before, shortfall };
  }
  try {
    writeFileSync(path, `${vm}\n`);
  } catch (err) {
    const shortfall = `vm.nr_hugepages is ${before}, below the VM's ${vm}, and writing ${path} failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    say(shortfall);
    return { vm, before, after: before, shortfall };
  }
  const after = readCount(path);
  if (after === null || after < vm) {
    const shortfall = `vm.nr_hugepages raised from ${before} but the kernel granted ${after ?? '?'} of the VM's ${vm} pages`;
    say(shortfall);
    return { vm, before, after, shortfall };
  }
  say(
    `set vm.nr_hugepages from ${before} to ${after} (the VM's pool) so the huge-page variants can run under the model`,
  );
  return { vm, before, after, shortfall: null };
}

/**
 * Whether a test of the iommufd selftest maps hugetlb memory: the huge-page variants of the mock-domain
 * and dirty-tracking fixtures, and the two tests that map MAP_HUGETLB themselves.
 */
export const usesHugetlb = (test: string): boolean =>
  /_hugepage\.|_huge\.|\.huge_map$|\.access_domain_destory$/.test(test);
