// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace run` writing version 2 traces: the program's descriptors of its iommufd files, followed as the
 * kernel sees them and turned into the ops of file lifetime (fork, dup, send_fd, close, exit).
 *
 * The program holds real descriptors (the library's sockets), so what the kernel would count is visible in
 * /proc: each process's fd table (/proc/PID/fd, a socket's inode names the file), its parent
 * (/proc/PID/status PPid), its children (/proc/PID/task/TID/children) and whether it is still alive. At
 * each sync point (before an ioctl is served, when a descriptor is closed, when a file's last descriptor
 * goes, at the end of the run) the real tables are compared with the model's (State.fds), and the model is
 * brought level by ops, in an order that never releases a file early:
 *   1. processes that hold one of the files and that the model does not know: `fork` of their parent when
 *      the model knows it (the child inherited the descriptors; its memory is the parent's), else `process`
 *      (so is a child seen earlier holding none: what it holds now was passed to it);
 *   2. descriptors the model lacks: `dup` of another descriptor of the same file in the same process, or
 *      `send_fd` from a process that holds it (SCM_RIGHTS: the sender is any holder; the model only needs
 *      one that holds the file);
 *   3. descriptors the process no longer has: `close`;
 *   4. processes that are gone (or zombies): `exit`, which closes the rest after tearing down the mm.
 *
 * Deviations: successive ioctls of one process sync only before the first of them (syncForCall); the order
 * of events between two sync points is not seen (a dup and a close in between are
 * seen as their net effect, which is what decides f_count at the sync point); a process that exits is seen
 * as exited at the next sync point, not at its exit; a child that never holds an iommufd descriptor is not
 * modelled.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { TraceOp } from '../events/trace.js';
import type { State } from '../state/state.js';

/** What the session lends the follower: the model's state, its files by socket inode, and its op path. */
export interface LifetimeHost {
  state(): Readonly<State>;
  /** The model's file key (`ctx:NAME`, `access:NAME`) of the socket with this inode, if it has one. */
  fileOfInode(ino: bigint): string | null;
  /**
   * Whether the machine still holds the model's file `file` anywhere: a descriptor of any process, or an
   * SCM_RIGHTS message in flight that carries it.
   */
  fileStillHeld(file: string): boolean;
  /** Run one op on the model and write it to the trace. */
  step(op: TraceOp): void;
  /** A process the model does not know, created with `process` (credentials from /proc). */
  ensureProcess(pid: number): void;
  /** The model forked `child` from `parent`: the child's memory is the parent's (COW). */
  forked(parent: number, child: number): void;
  /**
   * Whether `child` still has the credentials the model gives `parent` (uid, CAP_IPC_LOCK). A child that
   * changed them before the model met it cannot be written as a `fork` (the trace has no op that changes a
   * process's credentials), so it is met as a process of its own.
   */
  inheritsCredentials(parent: number, child: number): boolean;
}

type FdTable = Map<number, string>;

const SOCKET = /^socket:\[(\d+)\]$/;

/** The descriptors of `pid` that are files of the model; null when the process is gone or a zombie. */
function realTable(pid: number, host: LifetimeHost): FdTable | null {
  if (!isAlive(pid)) return null;
  const out: FdTable = new Map();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return null;
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = SOCKET.exec(target);
    const file = m?.[1] === undefined ? null : host.fileOfInode(BigInt(m[1]));
    if (file !== null) out.set(Number(fd), file);
  }
  return out;
}

/** PF_EXITING in /proc/PID/stat's flags: do_exit has begun (set before exit_mm and exit_files). */
const PF_EXITING = 0x4;

/**
 * A process that has not begun to exit: present in /proc, not a zombie, and without PF_EXITING. A process
 * seen in the middle of do_exit (its files closing, which is what ends a socket) is already exiting: the
 * model then runs its whole exit, mm first.
 */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && fields[0] !== 'X' && (Number(fields[6] ?? 0) & PF_EXITING) === 0;
  } catch {
    return false;
  }
}

function parentOf(pid: number): number | null {
  try {
    const m = /^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? null : Number(m[1]);
  } catch {
    return null;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) {
        if (/^\d+$/.test(c)) out.push(Number(c));
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export class FileLifetime {
  /**
   * Descendants once seen holding none of the files: a file they hold later came to them after their fork
   * (SCM_RIGHTS), so they join the model as a `process` that is sent the descriptor, not as a fork.
   */
  private readonly bystanders = new Set<number>();

  /** The process whose ioctl was the last to sync: its next ioctls need no scan of /proc. */
  private lastCaller: number | null = null;

  constructor(private readonly host: LifetimeHost) {}

  /**
   * Before an ioctl: a full sync when the caller changed since the last ioctl (a fork's child, a process
   * sent a descriptor, or the parent after a child exited); the same caller again changed nothing that
   * matters before its next close, which syncs anyway (a dup is seen there). Keeps the round trip of a
   * trivial ioctl free of /proc reads.
   */
  syncForCall(caller: number): void {
    if (caller === this.lastCaller) return;
    this.sync(caller);
    this.lastCaller = caller;
  }

  /** The model's live processes (run names them by pid), lowest first. */
  private modelProcesses(): number[] {
    return Object.values(this.host.state().processes)
      .filter((p) => !p.exited && /^\d+$/.test(p.pid))
      .map((p) => Number(p.pid))
      .sort((a, b) => a - b);
  }

  private modelTable(pid: number): FdTable {
    const name = String(pid);
    const out: FdTable = new Map();
    for (const e of Object.values(this.host.state().fds)) if (e.pid === name) out.set(e.fd, e.file);
    return out;
  }

  /** Bring the model's file tables level with the program's; `caller` is the process about to issue a call. */
  sync(caller: number | null = null): void {
    const known = new Set(this.modelProcesses());
    const real = new Map<number, FdTable | null>();
    for (const pid of known) real.set(pid, realTable(pid, this.host));

    // 1. New processes: descendants of modelled ones (parents first) that hold a file, and the caller.
    const queue = [...known];
    for (let i = 0; i < queue.length; i++) {
      for (const child of childrenOf(queue[i] ?? 0)) {
        if (known.has(child) || queue.includes(child)) continue;
        queue.push(child);
        const table = realTable(child, this.host);
        if (table === null) continue;
        if (table.size === 0 && child !== caller) {
          this.bystanders.add(child);
          continue;
        }
        const parent = parentOf(child);
        if (
          !this.bystanders.has(child) &&
          parent !== null &&
          known.has(parent) &&
          this.isModelAlive(parent) &&
          this.host.inheritsCredentials(parent, child)
        ) {
          this.host.step({ op: 'fork', pid: String(parent), child: String(child) });
          this.host.forked(parent, child);
        } else {
          this.host.ensureProcess(child);
        }
        known.add(child);
        real.set(child, table);
      }
    }
    if (caller !== null && !known.has(caller) && isAlive(caller)) {
      this.host.ensureProcess(caller);
      known.add(caller);
      real.set(caller, realTable(caller, this.host));
    }
    const order = [...known].sort((a, b) => a - b);

    // 2. Descriptors the model lacks.
    for (const pid of order) {
      const table = real.get(pid);
      if (!table) continue;
      for (const [fd, file] of [...table].sort((a, b) => a[0] - b[0])) {
        const mine = this.modelTable(pid);
        if (mine.get(fd) === file) continue;
        const same = [...mine].find(([other, f]) => f === file && other !== fd);
        if (same !== undefined) {
          this.host.step({ op: 'dup', pid: String(pid), fd: same[0], new_fd: fd });
          continue;
        }
        const holder = this.holderOf(file, pid, order);
        if (holder !== null) {
          this.host.step({ op: 'send_fd', pid: String(holder[0]), fd: holder[1], to: String(pid), new_fd: fd });
        }
      }
    }

    // 3. Descriptors closed by processes that live on. A file that no followed process holds but the
    // machine still does keeps its descriptors in the model: it was passed and the message is still in
    // flight (the kernel's in-flight reference keeps the file), or a process the model does not follow
    // holds it. Once its receiver is seen, step 2 sends it from such a descriptor, and the close follows.
    const heldByProcesses = new Set<string>();
    for (const table of real.values()) for (const file of table?.values() ?? []) heldByProcesses.add(file);
    for (const pid of order) {
      const table = real.get(pid);
      if (!table) continue;
      for (const [fd, file] of [...this.modelTable(pid)].sort((a, b) => a[0] - b[0])) {
        if (table.get(fd) === file) continue;
        if (!heldByProcesses.has(file) && this.host.fileStillHeld(file)) continue;
        this.host.step({ op: 'close', pid: String(pid), fd });
      }
    }

    // 4. Processes that are gone: exit closes what they still held.
    for (const pid of order) {
      if (real.get(pid) === null && this.isModelAlive(pid)) this.host.step({ op: 'exit', pid: String(pid) });
    }
  }

  private isModelAlive(pid: number): boolean {
    const p = this.host.state().processes[String(pid)];
    return p !== undefined && !p.exited;
  }

  /** A live process of the model other than `except` with a descriptor of `file`: [pid, fd]. */
  private holderOf(file: string, except: number, order: readonly number[]): [number, number] | null {
    for (const pid of order) {
      if (pid === except || !this.isModelAlive(pid)) continue;
      for (const [fd, f] of [...this.modelTable(pid)].sort((a, b) => a[0] - b[0])) if (f === file) return [pid, fd];
    }
    return null;
  }
}

/** The descriptor of `pid` behind the socket with inode `ino`, or null. */
export function fdOfSocket(pid: number, ino: bigint): number | null {
  const target = `socket:[${ino}]`;
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === target) return Number(fd);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // gone
  }
  return null;
}
