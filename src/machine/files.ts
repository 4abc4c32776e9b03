// SPDX-License-Identifier: GPL-2.0-only
/**
 * iommufd's files and the processes' descriptors of them (version 2 traces): the parts of fs/file.c,
 * fs/file_table.c and fs/open.c that decide when iommufd's release runs.
 *
 * A struct file (State.openFiles) has f_count references: one per descriptor in any file table
 * (State.fds), plus any the kernel takes itself (an access holds its context's file through
 * iommufd_ctx_get). dup, fork's dup_fd and SCM_RIGHTS take a reference (get_file) and install a descriptor;
 * close takes the descriptor out of the table and drops its reference (fput). The fput that drops the last
 * reference runs the file's release (iommufd_fops_release for a context, the selftest's staccess release
 * for an access); the release is the kernel model's, so this layer is handed it as `release`.
 *
 * Deviations: the model's file tables hold only iommufd files, so the lowest free descriptor a trace does
 * not choose is counted from 3 (stdin, stdout and stderr are taken in every real process); a trace that
 * replays a real program names the real numbers. fput runs the release at once, as the last fput of a
 * task's file does at return to user space (task_work), before the next op.
 */
import { InternalError } from '../lib/errors.js';
import type { FdEntry, OpenFile } from '../state/state.js';
import { EBADF } from './errno.js';
import type { Sim } from './sim.js';

/** What runs when the last reference goes: the kernel's release of that kind of file. */
export type FileRelease = (sim: Sim, file: OpenFile, fn: string) => void;

/** The first descriptor a process gets when the trace names none (0, 1 and 2 are the standard streams). */
export const FIRST_FREE_FD = 3;

export const fileKeyOf = (kind: OpenFile['kind'], object: string): string => `${kind}:${object}`;

const fdKey = (pid: string, fd: number): string => `${pid}:${fd}`;

/** The file table entry of `fd` in `pid`, if open. */
export function fdLookup(sim: Sim, pid: string, fd: number): FdEntry | undefined {
  return sim.state.fds[fdKey(pid, fd)];
}

/** The descriptors of a process, lowest first. */
export function fdsOf(sim: Sim, pid: string): FdEntry[] {
  return Object.values(sim.state.fds)
    .filter((e) => e.pid === pid)
    .sort((a, b) => a.fd - b.fd);
}

/** get_unused_fd_flags: the lowest descriptor of `pid` not in use, from FIRST_FREE_FD. */
export function lowestFreeFd(sim: Sim, pid: string): number {
  let fd = FIRST_FREE_FD;
  while (fdLookup(sim, pid, fd) !== undefined) fd++;
  return fd;
}

/**
 * alloc_file: a new iommufd file with f_count 1, the reference its first descriptor takes over. `holds`:
 * a file this one keeps a reference to until its release (taken here with get_file as `fn`).
 */
export function openFileCreate(
  sim: Sim,
  kind: OpenFile['kind'],
  object: string,
  fn: string,
  holds: string | null = null,
): string {
  const key = fileKeyOf(kind, object);
  if (sim.state.openFiles[key] !== undefined) throw new InternalError(`file ${key} is already open`);
  if (holds !== null) getFile(sim, holds, fn);
  sim.emit({ type: 'OpenFileCreated', v: 1, file: key, kind, object, holds, fn });
  return key;
}

/** get_file: one more reference to a file that is alive. */
export function getFile(sim: Sim, file: string, fn: string): void {
  if (sim.state.openFiles[file] === undefined) throw new InternalError(`get_file of ${file}, which is released`);
  sim.emit({ type: 'OpenFileGot', v: 1, file, fn });
}

/** fput: one reference less; the last one runs the release and frees the struct file. */
export function fput(sim: Sim, file: string, fn: string, release: FileRelease): void {
  if (sim.state.openFiles[file] === undefined) throw new InternalError(`fput of ${file}, which is released`);
  sim.emit({ type: 'OpenFilePut', v: 1, file, fn });
  const after = sim.state.openFiles[file];
  if (after === undefined) throw new InternalError(`file ${file} vanished during fput`);
  if (after.fCount > 0) return;
  release(sim, after, fn);
  sim.emit({ type: 'OpenFileReleased', v: 1, file, fn: releaseFn(after) });
}

/** The kernel function that releases a file of this kind. */
export function releaseFn(file: OpenFile): string {
  return file.kind === 'ctx' ? 'iommufd_fops_release' : 'iommufd_test_staccess_release';
}

/**
 * fd_install at `fd` (the reference is already counted). A descriptor already open there is closed first,
 * as dup2 does.
 */
export function fdInstall(sim: Sim, pid: string, fd: number, file: string, fn: string, release: FileRelease): void {
  if (fdLookup(sim, pid, fd) !== undefined) closeFd(sim, pid, fd, 'do_dup2', release);
  sim.emit({ type: 'FdInstalled', v: 1, pid, fd, file, fn });
}

/** close_fd + filp_close: -EBADF when `fd` is not open in `pid`. */
export function closeFd(sim: Sim, pid: string, fd: number, fn: string, release: FileRelease): number {
  const entry = fdLookup(sim, pid, fd);
  if (entry === undefined) return -EBADF;
  sim.emit({ type: 'FdRemoved', v: 1, pid, fd, file: entry.file, fn });
  fput(sim, entry.file, fn, release);
  return 0;
}

/**
 * dup / dup2 / fcntl(F_DUPFD): a second descriptor of the same file, at `newFd` or the lowest free one.
 * Returns the new descriptor, or -EBADF when `fd` is not open.
 */
export function dupFd(sim: Sim, pid: string, fd: number, newFd: number | null, release: FileRelease): number {
  const entry = fdLookup(sim, pid, fd);
  if (entry === undefined) return -EBADF;
  if (newFd === fd) return fd;
  const target = newFd ?? lowestFreeFd(sim, pid);
  getFile(sim, entry.file, 'dup');
  fdInstall(sim, pid, target, entry.file, 'dup', release);
  return target;
}

/**
 * sendmsg(SCM_RIGHTS) by `pid` and recvmsg by `to`: the message holds its own reference (scm_fp_copy), which
 * the receiver's new descriptor takes over (receive_fd). Returns the receiver's descriptor or -EBADF.
 */
export function sendFd(
  sim: Sim,
  pid: string,
  fd: number,
  to: string,
  newFd: number | null,
  release: FileRelease,
): number {
  const entry = fdLookup(sim, pid, fd);
  if (entry === undefined) return -EBADF;
  const target = newFd ?? lowestFreeFd(sim, to);
  getFile(sim, entry.file, 'scm_fp_copy');
  fdInstall(sim, to, target, entry.file, 'receive_fd', release);
  return target;
}

/** copy_files at fork (dup_fd): the child's table is the parent's, each file one reference more. */
export function dupFdTable(sim: Sim, parent: string, child: string): void {
  for (const entry of fdsOf(sim, parent)) {
    getFile(sim, entry.file, 'dup_fd');
    sim.emit({ type: 'FdInstalled', v: 1, pid: child, fd: entry.fd, file: entry.file, fn: 'dup_fd' });
  }
}

/** exit_files (close_files): every descriptor of the process closed, lowest first. */
export function closeFdTable(sim: Sim, pid: string, release: FileRelease): void {
  for (const entry of fdsOf(sim, pid)) closeFd(sim, pid, entry.fd, 'exit_files', release);
}
