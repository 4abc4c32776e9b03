// SPDX-License-Identifier: GPL-2.0-only
/**
 * The ops of file lifetime (version 2 traces): fork, close, dup, send_fd, and what open, access_create and
 * exit do beyond version 1 (descriptors, and the release of files at exit).
 */
import type { TraceOpOf } from '../events/trace.js';
import { exitProcess } from '../machine/mm.js';
import { forkProcess } from '../machine/fork.js';
import {
  closeFd,
  closeFdTable,
  dupFd,
  fdInstall,
  fileKeyOf,
  lowestFreeFd,
  openFileCreate,
  sendFd,
} from '../machine/files.js';
import type { Sim } from '../machine/sim.js';
import { EBADF } from '../machine/errno.js';
import { releaseFile } from './teardown.js';

/** The outcome of a lifetime op: kernel-style rc and the descriptor it produced, if any. */
export interface LifetimeOutcome {
  rc: number;
  outputs: Record<string, unknown>;
}

const done = (rc: number, fd?: number): LifetimeOutcome => ({ rc, outputs: fd === undefined ? {} : { fd } });

/** open in version 2: the context's file, installed at `fd` (or the lowest free descriptor) of the caller. */
export function openContextFile(sim: Sim, op: TraceOpOf<'open'>): LifetimeOutcome {
  const file = openFileCreate(sim, 'ctx', op.ctx, 'iommufd_fops_open');
  const fd = op.fd ?? lowestFreeFd(sim, op.pid);
  fdInstall(sim, op.pid, fd, file, 'do_sys_open', releaseFile);
  return done(0, fd);
}

/**
 * CREATE_ACCESS in version 2, after the access was created: its anonymous file, which holds the context's
 * file (iommufd_access_create takes iommufd_ctx_get), installed in the caller.
 */
export function openAccessFile(sim: Sim, op: TraceOpOf<'access_create'>, ctx: string): LifetimeOutcome {
  const pid = sim.current.pid;
  if (pid === null) return done(-EBADF);
  const file = openFileCreate(sim, 'access', op.access, 'iommufd_access_create', fileKeyOf('ctx', ctx));
  const fd = op.fd ?? lowestFreeFd(sim, pid);
  fdInstall(sim, pid, fd, file, 'iommufd_test_create_access', releaseFile);
  return done(0, fd);
}

/**
 * do_exit in version 2: exit_mm (the address space goes unless someone holds it), then exit_files: each
 * descriptor closed with no mm (current->mm is already NULL), so a context released here unpins remotely.
 */
export function exitWithFiles(sim: Sim, pid: string): LifetimeOutcome {
  const proc = sim.state.processes[pid];
  if (proc === undefined || proc.exited) return done(0);
  exitProcess(sim, pid);
  sim.current = { pid, mm: null };
  closeFdTable(sim, pid, releaseFile);
  return done(0);
}

export function lifetimeOp(
  sim: Sim,
  op: TraceOpOf<'fork'> | TraceOpOf<'close'> | TraceOpOf<'dup'> | TraceOpOf<'send_fd'>,
): LifetimeOutcome {
  switch (op.op) {
    case 'fork':
      return done(forkProcess(sim, op.pid, op.child));
    case 'close':
      return done(closeFd(sim, op.pid, op.fd, 'close_fd', releaseFile));
    case 'dup': {
      const fd = dupFd(sim, op.pid, op.fd, op.new_fd ?? null, releaseFile);
      return fd < 0 ? done(fd) : done(0, fd);
    }
    case 'send_fd': {
      const fd = sendFd(sim, op.pid, op.fd, op.to, op.new_fd ?? null, releaseFile);
      return fd < 0 ? done(fd) : done(0, fd);
    }
  }
}
