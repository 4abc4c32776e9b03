// SPDX-License-Identifier: GPL-2.0-only
/**
 * struct iommufd_access_ops: the callbacks a driver hands to iommufd_access_create, and
 * iommufd_access_notify_unmap, the one place iommufd calls them. The unmap path of io_pagetable.c reaches
 * the driver only through this table, so io-pagetable.ts needs neither device.ts nor a driver (the kernel's
 * indirection, and no import circle between the kAPI, the page table and the selftest driver).
 *
 * The table is runtime, not State (a C function pointer is not a fact of the run): one per Sim, filled as
 * accesses are created within that replay.
 */
import { InternalError } from '../lib/errors.js';
import type { Sim } from '../machine/sim.js';

export interface AccessOps {
  /** Stop using [iova, iova + length): unpin whatever the driver holds there before returning. */
  unmap(sim: Sim, access: string, iova: bigint, length: bigint): void;
}

const opsBySim = new WeakMap<Sim, Map<string, AccessOps>>();

function tableOf(sim: Sim): Map<string, AccessOps> {
  let table = opsBySim.get(sim);
  if (table === undefined) {
    table = new Map();
    opsBySim.set(sim, table);
  }
  return table;
}

/** access->ops = ops (iommufd_access_create). */
export function setAccessOps(sim: Sim, access: string, ops: AccessOps): void {
  tableOf(sim).set(access, ops);
}

/** The access is gone: its ops with it. */
export function clearAccessOps(sim: Sim, access: string): void {
  tableOf(sim).delete(access);
}

/** access->ops->unmap(access->data, iova, length): the driver's own callback for one access. */
export function callAccessUnmap(sim: Sim, access: string, iova: bigint, length: bigint): void {
  const ops = tableOf(sim).get(access);
  if (ops === undefined) throw new InternalError(`access ${access} has no ops`);
  ops.unmap(sim, access, iova, length);
}

/**
 * iommufd_access_notify_unmap: every access attached to `ioas` must stop using [iova, iova + length):
 * each one's unmap callback runs (and must unpin what it holds there) before this returns.
 */
export function iommufdAccessNotifyUnmap(sim: Sim, ioas: string, iova: bigint, length: bigint): void {
  const io = sim.state.ioases[ioas];
  if (io === undefined) return;
  for (const access of [...io.accesses]) {
    // iommufd_lock_obj fails for an access being destroyed: it is skipped.
    if (sim.state.accesses[access] === undefined) continue;
    // [up:area-num-locks] an internal access has no callback: the areas it pins are locked instead.
    if (sim.state.accesses[access]?.internal === true) continue;
    callAccessUnmap(sim, access, iova, length);
  }
}
