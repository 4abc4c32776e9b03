// SPDX-License-Identifier: GPL-2.0-only
/**
 * The Debian packages the ground truth needs, installed when missing. apt-get is asked only for what
 * dpkg says is absent; when apt cannot find a package its lists are refreshed once and the install retried.
 */
import { spawnSync } from 'node:child_process';
import { ToolError, runTool } from './exec.js';
import { SOURCE_PACKAGE } from './paths.js';

/** Package -> why it is needed. */
export const REQUIRED_PACKAGES: Readonly<Record<string, string>> = {
  [SOURCE_PACKAGE]: 'the kernel source tarball in /usr/src',
  'qemu-system-x86': 'qemu-system-x86_64, to boot the kernel',
  'busybox-static': 'the initramfs userland',
  'build-essential': 'gcc and make',
  flex: 'kconfig',
  bison: 'kconfig',
  bc: 'the kernel build',
  'libelf-dev': 'the kernel build (objtool)',
  'libssl-dev': 'the kernel build (certificate tools)',
  cpio: 'the kernel build (kheaders)',
  'xz-utils': 'unpacking the source tarball',
};

/** The installed version of a package, or undefined when it is not installed. */
export function installedVersion(pkg: string): string | undefined {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}\t${Version}', pkg], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const [status, version] = r.stdout.split('\t');
  return status?.endsWith(' installed') && version ? version : undefined;
}

export function missingPackages(pkgs: readonly string[] = Object.keys(REQUIRED_PACKAGES)): string[] {
  return pkgs.filter((p) => installedVersion(p) === undefined);
}

export async function ensurePackages(log: string, say: (msg: string) => void): Promise<void> {
  const missing = missingPackages();
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new ToolError(
      `missing Debian packages: ${missing.join(' ')}; installing them needs root (run: sudo apt-get install -y ${missing.join(' ')})`,
    );
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    runTool('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
      log,
      env,
      what: `apt-get install ${missing.join(' ')}`,
    });
  say(`installing ${missing.join(' ')} (apt-get; log ${log})`);
  try {
    await install();
  } catch (err) {
    say('apt-get install failed; refreshing the package lists (apt-get update) and retrying');
    await runTool('apt-get', ['update'], { log, env, what: 'apt-get update' });
    await install().catch((again: unknown) => {
      throw again instanceof ToolError ? again : err;
    });
  }
  const still = missingPackages();
  if (still.length) throw new ToolError(`apt-get finished but these packages are still missing: ${still.join(' ')}`);
}
