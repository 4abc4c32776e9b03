// SPDX-License-Identifier: GPL-2.0-only
/**
 * The kernel's own iommufd selftests, built from the same source package as the kernel: the uAPI
 * headers come from `make headers` of that tree, the five names the tests use and those headers lack
 * come from our compatibility header (native/compat/iommufd-compat.h, force-included), and the programs
 * are linked statically because the initramfs has no C library.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTool } from './exec.js';
import type { Say, SourceTree } from './kernel-build.js';
import { nativeFile } from './paths.js';

export const SELFTEST_PROGRAMS = ['iommufd', 'iommufd_fail_nth'] as const;
export type SelftestProgram = (typeof SELFTEST_PROGRAMS)[number];

export interface SelftestBuild {
  dir: string;
  programs: Record<SelftestProgram, string>;
  cached: boolean;
}

/** The sanitised uAPI headers of the package's tree (`make headers`), once per package version. */
export async function uapiHeaders(src: SourceTree, say: Say): Promise<string> {
  const out = join(src.dir, 'hdr-build');
  const include = join(out, 'usr', 'include');
  const marker = join(out, '.ioptrace-headers');
  if (existsSync(marker) && readFileSync(marker, 'utf8') === src.packageVersion) return include;
  mkdirSync(out, { recursive: true });
  say(`installing the uAPI headers of ${src.release} (make headers) into ${include}`);
  await runTool('make', [`O=${out}`, 'headers'], {
    cwd: src.tree,
    log: join(out, 'headers.log'),
    nice: true,
    what: 'make headers',
  });
  writeFileSync(marker, src.packageVersion);
  return include;
}

/**
 * Build the selftests; `linkStatic` for the VM (its initramfs has no C library), dynamic for the model's
 * runs on this machine (the preload library needs the dynamic loader).
 */
export async function buildSelftests(src: SourceTree, say: Say, linkStatic = true): Promise<SelftestBuild> {
  const include = await uapiHeaders(src, say);
  const compat = nativeFile('compat', 'iommufd-compat.h');
  const key = createHash('sha256')
    .update(`${src.packageVersion}\n${readFileSync(compat, 'utf8')}`)
    .digest('hex')
    .slice(0, 16);
  const dir = join(src.dir, linkStatic ? `selftests-${key}` : `selftests-dynamic-${key}`);
  const programs = Object.fromEntries(SELFTEST_PROGRAMS.map((p) => [p, join(dir, p)])) as Record<
    SelftestProgram,
    string
  >;
  if (SELFTEST_PROGRAMS.every((p) => existsSync(programs[p]))) return { dir, programs, cached: true };
  mkdirSync(dir, { recursive: true });
  const testDir = join(src.tree, 'tools', 'testing', 'selftests', 'iommu');
  for (const p of SELFTEST_PROGRAMS) {
    say(`compiling the ${p} selftest (gcc${linkStatic ? ' -static' : ''}, -include ${compat})`);
    // The flags of the selftests' own lib.mk, plus our header and static linking.
    await runTool(
      'gcc',
      [
        '-Wall',
        '-O2',
        '-Wno-unused-function',
        '-D_GNU_SOURCE=',
        '-isystem',
        include,
        '-include',
        compat,
        ...(linkStatic ? ['-static'] : []),
        '-o',
        `${programs[p]}.tmp`,
        `${p}.c`,
      ],
      { cwd: testDir, log: join(dir, 'build.log'), nice: true, what: `compiling ${p}` },
    );
    await runTool('mv', [`${programs[p]}.tmp`, programs[p]], { log: join(dir, 'build.log'), what: 'mv' });
  }
  return { dir, programs, cached: false };
}

/** Our own C programs for the VM (native/groundtruth/NAME.c), compiled statically, keyed by their source. */
export async function buildNativeProgram(src: SourceTree, name: string): Promise<string> {
  const source = nativeFile('groundtruth', `${name}.c`);
  const key = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 16);
  const dir = join(src.dir, 'native');
  const out = join(dir, `${name}-${key}`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  await runTool('gcc', ['-Wall', '-Werror', '-O2', '-static', '-o', `${out}.tmp`, source], {
    log: join(dir, 'build.log'),
    nice: true,
    what: `compiling ${source}`,
  });
  await runTool('mv', [`${out}.tmp`, out], { log: join(dir, 'build.log'), what: 'mv' });
  return out;
}
