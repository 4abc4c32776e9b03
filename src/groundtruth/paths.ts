// SPDX-License-Identifier: GPL-2.0-only
/**
 * Where the ground-truth kernel lives: a cache outside the repository (nothing of the kernel tree may
 * enter it), `$IOPTRACE_CACHE` or `~/.cache/ioptrace`, one folder per upstream kernel release.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../lib/paths.js';

/** Debian's package of the kernel sources this ground truth is built from. */
export const SOURCE_PACKAGE = 'linux-source-6.12';
export const SOURCE_TARBALL = '/usr/src/linux-source-6.12.tar.xz';
/** The folder the tarball unpacks into. */
export const SOURCE_TOPDIR = 'linux-source-6.12';

export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['IOPTRACE_CACHE'];
  if (explicit !== undefined && explicit.length > 0) return join(explicit, 'kernel');
  return join(env['HOME'] ?? homedir(), '.cache', 'ioptrace', 'kernel');
}

/** "6.12.118-1~deb12u1" -> "6.12.118": the upstream release, the cache folder's name. */
export function upstreamRelease(packageVersion: string): string {
  const m = /^(\d+\.\d+(?:\.\d+)?)/.exec(packageVersion);
  if (!m?.[1]) throw new Error(`cannot read an upstream release from package version "${packageVersion}"`);
  return m[1];
}

/** The files of ours that the build uses, in the repository. */
export function nativeFile(folder: string, name: string): string {
  return join(packageRoot(), 'native', folder, name);
}
