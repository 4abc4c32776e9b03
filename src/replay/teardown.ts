// SPDX-License-Identifier: GPL-2.0-only
/**
 * What closing the iommufd file does at the end of a trace (iommufd_fops_release destroys every object):
 * accesses first (the selftest driver unpins its items), then every IOAS is unmapped, then every domain
 * detached and the selftest's own reserved ranges dropped. What is left after that is a leak, found by checkTeardown.
 *
 * Version 2 traces release files one by one (the last close of a descriptor, a process's exit): a context's
 * file runs the same teardown restricted to that context's objects, an access file destroys its access
 * (the selftest's staccess release) and drops the reference it held on its context's file. At the end of a
 * version 2 trace each process still alive closes its descriptors (lowest first, processes in name order),
 * then whatever is left is torn down as in version 1.
 */
import type { Sim } from '../machine/sim.js';
import { KTHREAD } from '../machine/sim.js';
import type { OpenFile } from '../state/state.js';
import { closeFdTable, fput } from '../machine/files.js';
import type { FileRelease } from '../machine/files.js';
import { accessDestroy } from '../kernel/selftest-access.js';
import { hwQueueDestroy } from '../kernel/viommu-hw-queue.js';
import { domainDetach, ioasUnmap } from '../kernel/ioas.js';
import { ioptRemoveReservedIova } from '../kernel/io-pagetable.js';
import { taskOf } from './caller.js';

/**
 * The object behind an access: a HW queue ([up:area-num-locks]; it unpins and destroys its internal access,
 * unlocking the areas, before the IOASes are unmapped) or the selftest driver's access.
 */
function destroyAccessObject(sim: Sim, access: string): void {
  if (sim.state.accesses[access]?.internal) hwQueueDestroy(sim, access);
  else accessDestroy(sim, access);
}

export function closeEverything(sim: Sim): void {
  const state = sim.state;
  const ownerOf = (ioas: string) => taskOf(state, state.ctxs[state.ioases[ioas]?.ctx ?? '']?.pid ?? 'kthread');
  for (const access of Object.keys(state.accesses).sort()) {
    const ioas = state.accesses[access]?.ioas;
    sim.current = ioas ? ownerOf(ioas) : KTHREAD;
    destroyAccessObject(sim, access);
  }
  for (const ioas of Object.keys(state.ioases).sort()) {
    sim.current = ownerOf(ioas);
    if (state.ioases[ioas]?.areas.count) ioasUnmap(sim, ioas, { all: true });
    for (const domain of [...(state.ioases[ioas]?.domains ?? [])].reverse()) domainDetach(sim, domain);
    // iopt_destroy_table of a test build drops the ranges ADD_RESERVED made (no owner); no other op
    // makes such ranges, so traces without add_reserved tear down as before.
    if (sim.testBuild) ioptRemoveReservedIova(sim, ioas, null);
  }
}

/**
 * iommufd_fops_release of one context: its accesses, then each of its IOASes (name order) unmapped, its
 * domains detached and the selftest's reserved ranges dropped, as closeEverything does for all. Runs as the
 * task that dropped the last reference (sim.current): an exiting task has no mm by then, so every unpin
 * takes the remote path.
 */
function releaseContext(sim: Sim, ctx: string): void {
  const state = sim.state;
  const ioases = Object.keys(state.ioases)
    .filter((name) => state.ioases[name]?.ctx === ctx)
    .sort();
  for (const access of Object.keys(state.accesses).sort()) {
    const ioas = state.accesses[access]?.ioas;
    if (ioas != null && ioases.includes(ioas)) destroyAccessObject(sim, access);
  }
  for (const ioas of ioases) {
    if (state.ioases[ioas]?.areas.count) ioasUnmap(sim, ioas, { all: true });
    for (const domain of [...(state.ioases[ioas]?.domains ?? [])].reverse()) domainDetach(sim, domain);
    if (sim.testBuild) ioptRemoveReservedIova(sim, ioas, null);
  }
}

/** The release of an iommufd file whose last reference went (machine/files.ts calls it from fput). */
export const releaseFile: FileRelease = (sim: Sim, file: OpenFile): void => {
  if (file.kind === 'ctx') {
    releaseContext(sim, file.object);
    return;
  }
  // iommufd_test_staccess_release: the driver unpins what it holds and destroys the access, whose
  // destroy drops the context reference iommufd_access_create took.
  if (sim.state.accesses[file.object] !== undefined) accessDestroy(sim, file.object);
  if (file.holds !== null) fput(sim, file.holds, 'iommufd_access_destroy_object', releaseFile);
};

/** The end of a version 2 trace: every live process closes its descriptors, then the rest goes as in v1. */
export function closeEverythingV2(sim: Sim): void {
  const state = sim.state;
  for (const pid of Object.keys(state.processes).sort()) {
    const proc = state.processes[pid];
    if (proc === undefined || proc.exited) continue;
    sim.current = { pid, mm: proc.mm };
    closeFdTable(sim, pid, releaseFile);
  }
  closeEverything(sim);
}
