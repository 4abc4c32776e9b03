// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace kernel build`: the ground-truth kernel. Debian's linux-source-6.12 tarball is unpacked into
 * the cache once per package version; the kernel is configured from tinyconfig plus our fragment
 * (native/kernel/iommufd-test.config) and built out of tree into a folder named by the package version
 * and the fragment's hash. A finished build leaves a stamp, so the next call costs one stat.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePackages, installedVersion } from './apt.js';
import { ToolError, runTool } from './exec.js';
import { buildKey, kconfigMismatches, parseKconfig } from './kconfig.js';
import { SOURCE_PACKAGE, SOURCE_TARBALL, SOURCE_TOPDIR, cacheRoot, nativeFile, upstreamRelease } from './paths.js';

export interface Say {
  (msg: string): void;
}

export interface SourceTree {
  packageVersion: string;
  release: string;
  /** cacheRoot()/RELEASE */
  dir: string;
  /** The unpacked kernel tree. */
  tree: string;
}

export interface KernelBuild {
  packageVersion: string;
  release: string;
  key: string;
  bzImage: string;
  bytes: number;
  /** Seconds the build that made this image took (from its stamp when cached). */
  buildSeconds: number;
  /** True when this call found the image already built. */
  cached: boolean;
}

const STAMP = 'ioptrace-kernel.json';
const CONFIGURED = '.ioptrace-configured';
const EXTRACTED = '.ioptrace-extracted';

/** Packages installed and the tarball unpacked into the cache (once per package version). */
export async function prepareSource(say: Say): Promise<SourceTree> {
  const root = cacheRoot();
  mkdirSync(root, { recursive: true });
  await ensurePackages(join(root, 'apt.log'), say);
  const packageVersion = installedVersion(SOURCE_PACKAGE);
  if (packageVersion === undefined) throw new ToolError(`${SOURCE_PACKAGE} is not installed`);
  const release = upstreamRelease(packageVersion);
  const dir = join(root, release);
  const srcDir = join(dir, 'src');
  const tree = join(srcDir, SOURCE_TOPDIR);
  const marker = join(srcDir, EXTRACTED);
  if (!existsSync(marker) || readFileSync(marker, 'utf8') !== packageVersion) {
    if (!existsSync(SOURCE_TARBALL))
      throw new ToolError(`${SOURCE_TARBALL} is missing although ${SOURCE_PACKAGE} is installed`);
    say(`unpacking ${SOURCE_TARBALL} into ${srcDir}`);
    rmSync(srcDir, { recursive: true, force: true });
    mkdirSync(srcDir, { recursive: true });
    await runTool('tar', ['xJf', SOURCE_TARBALL, '-C', srcDir], {
      log: join(dir, 'extract.log'),
      nice: true,
      what: `unpacking ${SOURCE_TARBALL}`,
    });
    writeFileSync(marker, packageVersion);
  }
  return { packageVersion, release, dir, tree };
}

function formatSeconds(s: number): string {
  return s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(1)}s`;
}

/** A heartbeat for long make runs: how many files were compiled so far, at most every `everyMs`. */
function makeProgress(say: Say, label: string, everyMs = 30_000): { onLine: (l: string) => void; count: () => number } {
  const t0 = Date.now();
  let steps = 0;
  let last = t0;
  return {
    onLine(line: string) {
      if (!/^\s+(CC|AS|LD|AR|HOSTCC|OBJCOPY)\s/.test(line)) return;
      steps++;
      const now = Date.now();
      if (now - last >= everyMs) {
        last = now;
        say(`${label}: ${steps} steps done, ${formatSeconds((now - t0) / 1000)} elapsed (last: ${line.trim()})`);
      }
    },
    count: () => steps,
  };
}

export async function buildKernel(say: Say, opts: { jobs?: number } = {}): Promise<KernelBuild> {
  const src = await prepareSource(say);
  const fragmentPath = nativeFile('kernel', 'iommufd-test.config');
  const fragmentText = readFileSync(fragmentPath, 'utf8');
  const key = buildKey(src.packageVersion, fragmentText);
  const out = join(src.dir, `build-${key}`);
  const stampPath = join(out, STAMP);
  const bzImage = join(out, 'arch', 'x86', 'boot', 'bzImage');
  if (existsSync(stampPath) && existsSync(bzImage)) {
    const stamp = JSON.parse(readFileSync(stampPath, 'utf8')) as KernelBuild;
    return { ...stamp, bzImage, bytes: statSync(bzImage).size, cached: true };
  }
  mkdirSync(out, { recursive: true });
  const log = join(out, 'build.log');
  const t0 = Date.now();
  const configured = join(out, CONFIGURED);
  if (!existsSync(configured) || readFileSync(configured, 'utf8') !== key) {
    say(`configuring ${src.release}: tinyconfig + ${fragmentPath}`);
    const cfg = { cwd: src.tree, log: join(out, 'config.log') };
    await runTool('make', [`O=${out}`, 'tinyconfig'], { ...cfg, what: 'make tinyconfig' });
    await runTool('scripts/kconfig/merge_config.sh', ['-m', '-O', out, join(out, '.config'), fragmentPath], {
      ...cfg,
      what: 'merging the config fragment',
    });
    await runTool('make', [`O=${out}`, 'olddefconfig'], { ...cfg, what: 'make olddefconfig' });
    const bad = kconfigMismatches(parseKconfig(fragmentText), parseKconfig(readFileSync(join(out, '.config'), 'utf8')));
    if (bad.length)
      throw new ToolError(
        `the kernel config does not hold what ${fragmentPath} asks (unmet Kconfig dependencies?): ${bad
          .map((m) => `${m.option} wanted ${m.wanted}, got ${m.got}`)
          .join('; ')}`,
      );
    writeFileSync(configured, key);
  }
  const jobs = opts.jobs ?? 2;
  say(`building bzImage (make -j${jobs} under nice; log ${log}); about 10 minutes on 2 cores`);
  const progress = makeProgress(say, 'kernel build');
  await runTool('make', [`O=${out}`, `-j${jobs}`, 'bzImage'], {
    cwd: src.tree,
    log,
    nice: true,
    onLine: progress.onLine,
    what: 'the kernel build',
  });
  if (!existsSync(bzImage)) throw new ToolError(`make finished but ${bzImage} is missing; log: ${log}`);
  const buildSeconds = (Date.now() - t0) / 1000;
  const result: KernelBuild = {
    packageVersion: src.packageVersion,
    release: src.release,
    key,
    bzImage,
    bytes: statSync(bzImage).size,
    buildSeconds,
    cached: false,
  };
  writeFileSync(stampPath, `${JSON.stringify(result, null, 2)}\n`);
  say(`kernel built in ${formatSeconds(buildSeconds)}: ${bzImage} (${result.bytes} bytes)`);
  return result;
}

export { formatSeconds };
