// SPDX-License-Identifier: GPL-2.0-only
/**
 * The op dispatcher: one trace op -> the machine or kernel call it stands for, and its outputs.
 * Results are kernel style (0 or -errno); the replayer turns them into names and compares expectations.
 */
import type { TraceOp } from '../events/trace.js';
import type { Sim } from '../machine/sim.js';
import { createProcess, exitProcess, setRlimit } from '../machine/mm.js';
import { cpuRead, cpuWrite, mmap, munmap } from '../machine/memory.js';
import { memfdCreate } from '../machine/memfd.js';
import {
  domainAttach,
  domainDetach,
  ioasAlloc,
  ioasAllowIovas,
  ioasCopy,
  ioasAddReserved,
  ioasHugePages,
  ioasMap,
  ioasMapFile,
  ioasUnmap,
  vfioSetType1,
  vfioUnmap,
} from '../kernel/ioas.js';
import {
  accessCreate,
  accessDestroy,
  accessPin,
  accessReplace,
  accessRw,
  accessUnpin,
} from '../kernel/selftest-access.js';
import { iommufdIoasChangeProcess } from '../kernel/ioas-change-process.js';
import { hwQueueAlloc, hwQueueDestroy } from '../kernel/viommu-hw-queue.js';
import { EBADF, ENOENT } from '../machine/errno.js';
import { fileKeyOf } from '../machine/files.js';
import { exitWithFiles, lifetimeOp, openAccessFile, openContextFile } from './lifetime.js';
import { checkMap, checkRefs } from './checks.js';
import type { CheckFailure } from './checks.js';
import type { State } from '../state/state.js';

export interface OpOutcome {
  rc: number;
  outputs: Record<string, unknown>;
  /** check_map / check_refs failures (mismatches, not errors). */
  checkFailures?: CheckFailure[];
}

/** RLIMIT_MEMLOCK: "unlimited" is RLIM_INFINITY, held as null. */
const memlockOf = (m: bigint | 'unlimited'): bigint | null => (m === 'unlimited' ? null : m);

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const bytesOf = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));

export { implicitCaller, taskOf } from './caller.js';

/**
 * The kernel looks objects up by id and answers -ENOENT for one that does not exist. The parser accepts
 * names whose creation is in the trace, but that creation may have failed (fail-nth, an unexpected errno):
 * then the kernel's answer is -ENOENT, and the model is not called with a missing object.
 */
function missingObject(state: State, op: TraceOp): boolean {
  const ioasNames: string[] = [];
  if ('ioas' in op && op.op !== 'ioas_alloc') ioasNames.push(op.ioas);
  if (op.op === 'ioas_copy') ioasNames.push(op.src, op.dst);
  if (ioasNames.some((n) => state.ioases[n] === undefined)) return true;
  if (op.op === 'ioas_alloc' || op.op === 'access_create') return false;
  if ('access' in op && state.accesses[op.access] === undefined) return true;
  if (op.op === 'domain_detach' && state.domains[op.domain] === undefined) return true;
  if (op.op === 'open') return false;
  return 'ctx' in op && typeof op.ctx === 'string' && state.ctxs[op.ctx] === undefined;
}

/**
 * Version 2: the context an iommufd op reaches through its objects, when that context's file is released
 * (its last descriptor closed): the program's descriptor is gone, so the ioctl is EBADF.
 */
function releasedContext(state: State, op: TraceOp): boolean {
  if (op.op === 'open' || op.op === 'check_map' || op.op === 'check_refs') return false;
  const ctxs: (string | undefined)[] = [];
  if (op.op === 'ioas_alloc') ctxs.push(op.ctx);
  if ('ioas' in op && op.op !== 'ioas_alloc') ctxs.push(state.ioases[op.ioas]?.ctx);
  if (op.op === 'ioas_copy') ctxs.push(state.ioases[op.src]?.ctx, state.ioases[op.dst]?.ctx);
  if ('access' in op && op.op !== 'access_create') ctxs.push(state.ioases[state.accesses[op.access]?.ioas ?? '']?.ctx);
  if (op.op === 'hw_queue_destroy') ctxs.push(state.ioases[state.accesses[op.queue]?.ioas ?? '']?.ctx);
  if (op.op === 'domain_detach') {
    ctxs.push(Object.values(state.ioases).find((io) => io.domains.includes(op.domain))?.ctx);
  }
  return ctxs.some((ctx) => ctx !== undefined && state.openFiles[fileKeyOf('ctx', ctx)] === undefined);
}

export function dispatch(sim: Sim, op: TraceOp): OpOutcome {
  const ok = (rc: number, outputs: Record<string, unknown> = {}): OpOutcome => ({ rc, outputs });
  if (sim.fileLifetime && releasedContext(sim.state, op)) return ok(-EBADF);
  // The mock decides ACCESS_REPLACE_IOAS (even whether it knows the command) before any lookup.
  if (op.op !== 'check_map' && op.op !== 'access_replace' && missingObject(sim.state, op)) return ok(-ENOENT);
  // The selftest's access commands take the fd of a selftest access; a HW queue's internal access has none.
  if ('access' in op && op.op !== 'access_create' && sim.state.accesses[op.access]?.internal) return ok(-EBADF);
  switch (op.op) {
    case 'process':
      createProcess(sim, op.pid, { uid: op.uid, memlock: memlockOf(op.memlock), capIpcLock: op.cap_ipc_lock });
      return ok(0);
    case 'mmap':
      return ok(
        mmap(sim, op.pid, op.addr, op.length, {
          huge: op.huge,
          writable: op.prot === 'rw',
          shared: op.shared,
          ...(op.pfns ? { pfns: op.pfns.map(([p, c]) => [p, c] as [number, number]) } : {}),
        }),
      );
    case 'munmap':
      return ok(munmap(sim, op.pid, op.addr, op.length));
    case 'write':
      return ok(cpuWrite(sim, op.pid, op.addr, bytesOf(op.data)));
    case 'read': {
      const r = cpuRead(sim, op.pid, op.addr, op.length);
      return ok(r.rc, r.rc === 0 ? { data: hex(r.data) } : {});
    }
    case 'exit':
      if (sim.fileLifetime) return exitWithFiles(sim, op.pid);
      exitProcess(sim, op.pid);
      return ok(0);
    case 'rlimit':
      setRlimit(sim, op.pid, memlockOf(op.memlock));
      return ok(0);
    case 'fault':
      sim.emit({ type: 'FaultArmed', v: 1, nth: op.nth, site: op.site });
      return ok(0);
    case 'temp_memory_limit':
      sim.emit({ type: 'TempMemoryLimitSet', v: 1, bytes: Number(op.bytes) });
      return ok(0);
    case 'memfd':
      return ok(memfdCreate(sim, op.pid, op.file, op.length, op.huge));
    case 'open':
      sim.emit({ type: 'CtxOpened', v: 1, ctx: op.ctx, pid: op.pid, account: op.account, vfioType1: op.vfio_type1 });
      return sim.fileLifetime ? openContextFile(sim, op) : ok(0);
    case 'ioas_alloc': {
      if (sim.state.ctxs[op.ctx] === undefined) return ok(-ENOENT);
      const rc = ioasAlloc(sim, op.ioas, op.ctx);
      if (rc === 0 && sim.state.ctxs[op.ctx]?.vfioType1) return ok(vfioSetType1(sim, op.ioas));
      return ok(rc);
    }
    case 'ioas_map': {
      const r = ioasMap(sim, op.ioas, {
        uptr: op.uptr,
        length: op.length,
        iova: op.iova,
        read: op.read,
        write: op.write,
      });
      return ok(r.rc, r.iova === null ? {} : { iova: r.iova });
    }
    case 'map_file': {
      // The memfd may be gone (its process exited, no mapping held it): the kernel's fget fails.
      const r = ioasMapFile(sim, op.ioas, {
        file: op.file,
        start: op.start,
        length: op.length,
        iova: op.iova,
        read: op.read,
        write: op.write,
      });
      return ok(r.rc, r.iova === null ? {} : { iova: r.iova });
    }
    case 'ioas_unmap': {
      const r = ioasUnmap(sim, op.ioas, op.all ? { all: true } : { iova: op.iova, length: op.length });
      return ok(r.rc, r.unmapped === null ? {} : { unmapped: r.unmapped });
    }
    case 'ioas_copy': {
      const r = ioasCopy(sim, {
        src: op.src,
        dst: op.dst,
        srcIova: op.src_iova,
        length: op.length,
        dstIova: op.dst_iova,
        read: op.read,
        write: op.write,
      });
      return ok(r.rc, r.iova === null ? {} : { iova: r.iova });
    }
    case 'ioas_allow_iovas':
      return ok(
        ioasAllowIovas(
          sim,
          op.ioas,
          op.ranges.map(([a, b]) => [a, b] as [bigint, bigint]),
        ),
      );
    case 'ioas_huge_pages':
      return ok(ioasHugePages(sim, op.ioas, op.enable));
    case 'add_reserved':
      return ok(ioasAddReserved(sim, op.ioas, op.start, op.last));
    case 'domain_attach':
      return ok(
        domainAttach(sim, op.ioas, op.domain, {
          kind: op.kind,
          ...(op.pgsizes ? { pgsizes: op.pgsizes.map((p) => BigInt(p)) } : {}),
          ...(op.aperture ? { aperture: [op.aperture[0], op.aperture[1]] as [bigint, bigint] } : {}),
        }),
      );
    case 'domain_detach':
      return ok(domainDetach(sim, op.domain));
    case 'access_create': {
      const rc = accessCreate(sim, op.access, op.ioas, op.needs_pin_pages);
      const ctx = sim.state.ioases[op.ioas]?.ctx;
      if (rc !== 0 || !sim.fileLifetime || ctx === undefined) return ok(rc);
      return openAccessFile(sim, op, ctx);
    }
    case 'access_destroy':
      return ok(accessDestroy(sim, op.access));
    case 'access_pin': {
      const r = accessPin(sim, op.access, op.iova, op.length, op.write);
      return ok(r.rc, r.rc === 0 ? { pfns: r.pfns } : {});
    }
    case 'access_unpin':
      return ok(accessUnpin(sim, op.access, op.iova, op.length));
    case 'access_replace':
      return ok(accessReplace(sim, op.access, op.ioas));
    case 'access_rw': {
      const r = accessRw(sim, op.access, op.iova, op.length, {
        write: op.write,
        data: op.data === null ? null : bytesOf(op.data),
        kthread: op.kthread,
      });
      return ok(r.rc, !op.write && r.rc === 0 && r.data ? { data: hex(r.data) } : {});
    }
    case 'change_process':
      return ok(iommufdIoasChangeProcess(sim, op.ctx));
    case 'vfio_unmap': {
      const r = vfioUnmap(sim, op.ioas, op.iova, op.length);
      return ok(r.rc, { unmapped: r.unmapped });
    }
    case 'check_map': {
      const mm = sim.state.processes[op.pid]?.mm ?? -1;
      const failures = checkMap(sim.state, op.ioas, op.iova, op.length, mm, op.uptr);
      return { rc: 0, outputs: { ok: failures.length === 0 }, checkFailures: failures };
    }
    case 'check_refs': {
      const mm = sim.state.processes[op.pid]?.mm ?? -1;
      const failures = checkRefs(sim.state, mm, op.uptr, op.length, op.refs);
      return { rc: 0, outputs: { ok: failures.length === 0 }, checkFailures: failures };
    }
    case 'fork':
    case 'close':
    case 'dup':
    case 'send_fd':
      return lifetimeOp(sim, op);
    case 'hw_queue_alloc':
      return ok(hwQueueAlloc(sim, op.queue, op.ioas, op.iova, op.length));
    case 'hw_queue_destroy':
      return ok(hwQueueDestroy(sim, op.queue));
  }
}
