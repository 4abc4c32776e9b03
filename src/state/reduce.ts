// SPDX-License-Identifier: GPL-2.0-only
/**
 * The reducer table: one reducer per event type, and `reduce`, the only way state changes. The table's
 * type forces a reducer for every event of the vocabulary.
 */
import type { Event, EventOf, EventType } from '../events/events.js';
import type { State } from './state.js';
import * as machine from './reducers/machine.js';
import * as iommufd from './reducers/iommufd.js';
import * as domain from './reducers/domain.js';
import * as run from './reducers/run.js';

type ReducerTable = { [T in EventType]: (s: State, e: EventOf<T>) => void };

export const REDUCERS: ReducerTable = {
  RunConfigured: run.runConfigured,
  OpStarted: run.opStarted,
  OpFinished: run.opFinished,
  OpHung: run.opHung,
  MemfdCreated: machine.memfdCreated,
  FileRefChanged: machine.fileRefChanged,
  FileReleased: machine.fileReleased,
  PagesFileSet: iommufd.pagesFileSet,
  PagesSourceChanged: iommufd.pagesSourceChanged,
  AreaLocksChanged: iommufd.areaLocksChanged,
  HwQueueAllocated: iommufd.hwQueueAllocated,
  HwQueueDestroyed: iommufd.hwQueueDestroyed,
  OpenFileCreated: iommufd.openFileCreated,
  OpenFileGot: iommufd.openFileGot,
  OpenFilePut: iommufd.openFilePut,
  OpenFileReleased: iommufd.openFileReleased,
  FdInstalled: iommufd.fdInstalled,
  FdRemoved: iommufd.fdRemoved,
  FaultArmed: run.faultArmed,
  FaultInjected: run.faultInjected,
  FaultDisarmed: run.faultDisarmed,
  TempMemoryLimitSet: run.tempMemoryLimitSet,
  ProcessCreated: machine.processCreated,
  RlimitSet: machine.rlimitSet,
  ProcessExited: machine.processExited,
  MmGot: machine.mmGot,
  MmPut: machine.mmPut,
  MmGrabbed: machine.mmGrabbed,
  MmDropped: machine.mmDropped,
  FramesAllocated: machine.framesAllocated,
  FrameRunsAllocated: machine.frameRunsAllocated,
  VmaMapped: machine.vmaMapped,
  VmaUnmapped: machine.vmaUnmapped,
  CowBroken: machine.cowBroken,
  MemoryWritten: machine.memoryWritten,
  PagesPinned: machine.pagesPinned,
  PagesUnpinned: machine.pagesUnpinned,
  PagesPinnedRuns: machine.pagesPinnedRuns,
  PagesUnpinnedRuns: machine.pagesUnpinnedRuns,
  HeapAllocated: machine.heapAllocated,
  HeapFreed: machine.heapFreed,
  AccountingCharged: iommufd.accountingCharged,
  AccountingUncharged: iommufd.accountingUncharged,
  NpinnedChanged: iommufd.npinnedChanged,
  LastNpinnedSet: iommufd.lastNpinnedSet,
  CtxOpened: iommufd.ctxOpened,
  IoasAllocated: iommufd.ioasAllocated,
  IovaAlignmentSet: iommufd.iovaAlignmentSet,
  LargePagesDisabled: iommufd.largePagesDisabled,
  IoasDomainsSet: iommufd.ioasDomainsSet,
  PagesAllocated: iommufd.pagesAllocated,
  PagesAccountModeSet: iommufd.pagesAccountModeSet,
  PagesRefChanged: iommufd.pagesRefChanged,
  PagesReleased: iommufd.pagesReleased,
  AreaAllocated: iommufd.areaAllocated,
  AreaPagesSet: iommufd.areaPagesSet,
  AreaStorageDomainSet: iommufd.areaStorageDomainSet,
  AreaAccessesChanged: iommufd.areaAccessesChanged,
  AreaPreventAccessSet: iommufd.areaPreventAccessSet,
  AreaFreed: iommufd.areaFreed,
  ItreeInserted: iommufd.itreeInserted,
  ItreeRemoved: iommufd.itreeRemoved,
  XaStored: iommufd.xaStored,
  XaErased: iommufd.xaErased,
  XaStoredRuns: iommufd.xaStoredRuns,
  XaErasedRuns: iommufd.xaErasedRuns,
  PagesAccessAllocated: iommufd.pagesAccessAllocated,
  PagesAccessUsersChanged: iommufd.pagesAccessUsersChanged,
  PagesAccessFreed: iommufd.pagesAccessFreed,
  AccessCreated: iommufd.accessCreated,
  AccessItemAdded: iommufd.accessItemAdded,
  AccessItemRemoved: iommufd.accessItemRemoved,
  AccessDestroyed: iommufd.accessDestroyed,
  AccessIoasReplaced: iommufd.accessIoasReplaced,
  DomainAllocated: domain.domainAllocated,
  DomainFreed: domain.domainFreed,
  IommuMapped: domain.iommuMapped,
  IommuMappedRuns: domain.iommuMappedRuns,
  IommuUnmapped: domain.iommuUnmapped,
  IoPageTablesChanged: domain.ioPageTablesChanged,
  Warned: run.warned,
  ViolationDetected: run.violationDetected,
};

/** Apply one event to a state (a plain mutable state or an immer draft). */
export function reduce(state: State, event: Event): void {
  (REDUCERS[event.type] as (s: State, e: Event) => void)(state, event);
}
