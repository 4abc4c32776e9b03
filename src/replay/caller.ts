// SPDX-License-Identifier: GPL-2.0-only
/** Who issues an op: the process a trace names as caller, or the one version 1 implies. */
import type { TraceOp } from '../events/trace.js';
import { KTHREAD } from '../machine/sim.js';
import type { Task } from '../machine/sim.js';
import type { State } from '../state/state.js';

/** The task a process name stands for ("kthread": a kernel thread with no mm). */
export function taskOf(state: State, pid: string): Task {
  if (pid === 'kthread') return KTHREAD;
  const proc = state.processes[pid];
  if (!proc) return KTHREAD;
  // exit_mm() clears current->mm: an exited process's task has no address space. (No real call can come
  // from it; the ground-truth runner issues it from another holder of the file, whose mm is not the
  // pages' mm either, so the kernel takes the remote path there too.)
  return { pid, mm: proc.exited ? null : proc.mm };
}

/** Who issues an op that names no caller: the process that opened the context the object belongs to. */
export function implicitCaller(state: State, op: TraceOp): Task {
  // A caller the trace names wins: `pid` is accepted on every op (version 1 included).
  if ('pid' in op && typeof op.pid === 'string' && op.op !== 'process') return taskOf(state, op.pid);
  const ctxOfIoas = (ioas: string): Task => {
    const ctx = state.ctxs[state.ioases[ioas]?.ctx ?? ''];
    return ctx ? taskOf(state, ctx.pid) : KTHREAD;
  };
  switch (op.op) {
    case 'ioas_alloc':
      return taskOf(state, state.ctxs[op.ctx]?.pid ?? 'kthread');
    case 'ioas_unmap':
    case 'ioas_allow_iovas':
    case 'ioas_huge_pages':
    case 'add_reserved':
    case 'vfio_unmap':
    case 'domain_attach':
      return ctxOfIoas(op.ioas);
    case 'ioas_copy':
      return ctxOfIoas(op.dst);
    case 'access_create':
    case 'hw_queue_alloc':
      return ctxOfIoas(op.ioas);
    case 'hw_queue_destroy': {
      const queue = state.accesses[op.queue];
      return queue?.ioas ? ctxOfIoas(queue.ioas) : KTHREAD;
    }
    case 'access_destroy':
    case 'access_unpin':
    case 'access_replace': {
      const access = state.accesses[op.access];
      return access?.ioas ? ctxOfIoas(access.ioas) : KTHREAD;
    }
    case 'domain_detach': {
      const ioas = Object.values(state.ioases).find((io) => io.domains.includes(op.domain));
      return ioas ? ctxOfIoas(ioas.name) : KTHREAD;
    }
    default:
      return 'pid' in op && typeof op.pid === 'string' ? taskOf(state, op.pid) : KTHREAD;
  }
}
