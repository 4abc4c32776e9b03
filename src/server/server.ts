// SPDX-License-Identifier: GPL-2.0-only
/**
 * The Unix socket the preload library talks to. A connection is either a context (its one request is
 * OPEN; the program holds the other end as its /dev/iommu descriptor, and its end-of-file is the last
 * close of that file) or a process's control connection (a stream of IOCTL requests, each answered before
 * the next is read, since the caller blocks in ioctl meanwhile).
 */
import type { Socket } from 'node:net';
import { LibrarySocketServer, readRequests } from './library-socket.js';
import {
  DEV_ACCESS,
  DEV_VFIO,
  REQ_CLOSE,
  REQ_FAILNTH_READ,
  REQ_FAILNTH_WRITE,
  REQ_IOCTL,
  REQ_OPEN,
  REQ_PROC_FILE,
  REQ_DROPPED,
  DROPPED_DONTNEED,
  DROPPED_FIXED,
  PROC_MEMINFO,
  PROC_STATUS,
  encodeReply,
} from './protocol.js';
import type { Session } from './session.js';

const EIO = 5;
const EINVAL = 22;

export class SessionServer extends LibrarySocketServer {
  private contextsOpen = 0;
  /** The first internal error (a bug of the server or the model); the caller saw EIO. */
  error: Error | null = null;

  constructor(private readonly session: Session) {
    super();
  }

  /** Context descriptors still open somewhere. */
  get openContexts(): number {
    return this.contextsOpen;
  }

  protected accept(socket: Socket): void {
    let context: bigint | null = null;
    let controlOf: number | null = null;
    let accessFile: bigint | null = null;
    // A process opens its control connection anew after exec (it is close-on-exec) and after fork: its first
    // request there must not read or write through a mem file of its old image.
    const meetImage = (pid: number): void => {
      if (controlOf === pid) return;
      controlOf = pid;
      this.session.newProcessImage(pid);
    };
    readRequests(socket, (req) => {
      if (req.kind === REQ_OPEN && context === null && accessFile === null && req.aux === DEV_ACCESS) {
        accessFile = req.ino;
        this.session.registerAccessFile(req.ino);
        socket.write(encodeReply(0, 0));
      } else if (req.kind === REQ_OPEN && context === null && accessFile === null) {
        const err = this.guard(() => this.session.open(req.pid, req.ino, req.aux === DEV_VFIO, req.tid));
        if (err === 0) {
          context = req.ino;
          this.contextsOpen++;
        }
        socket.write(encodeReply(err === 0 ? 0 : -1, err));
      } else if (req.kind === REQ_IOCTL) {
        meetImage(req.pid);
        let reply = { ret: -1, err: EIO };
        this.guard(() => {
          reply = this.session.ioctl(req);
          return 0;
        });
        socket.write(encodeReply(reply.ret, reply.err));
      } else if (req.kind === REQ_CLOSE) {
        this.guard(() => (this.session.closed(req.ino, req.tid), 0));
        socket.write(encodeReply(0, 0));
      } else if (req.kind === REQ_FAILNTH_WRITE || req.kind === REQ_FAILNTH_READ) {
        let rc = -EIO;
        this.guard(() => {
          this.session.beginRequest(req.pid, req.mmGen);
          // The count is a size_t; the request field carries its low 32 bits, which is all a fail-nth file takes.
          rc =
            req.kind === REQ_FAILNTH_WRITE
              ? this.session.failNthWrite(req.pid, req.tid, req.aux, req.arg, req.request)
              : this.session.failNthRead(req.pid, req.tid, req.aux, req.arg, req.request, req.ino);
          return 0;
        });
        socket.write(encodeReply(rc < 0 ? -1 : rc, rc < 0 ? -rc : 0));
      } else if (req.kind === REQ_DROPPED && req.aux <= DROPPED_FIXED) {
        meetImage(req.pid);
        this.guard(
          () => (this.session.addressSpaceDropped(req.pid, req.ino, req.arg, req.aux === DROPPED_DONTNEED), 0),
        );
        socket.write(encodeReply(0, 0));
      } else if (req.kind === REQ_PROC_FILE && (req.aux === PROC_STATUS || req.aux === PROC_MEMINFO)) {
        meetImage(req.pid);
        let reply = { ret: -1, err: EIO };
        this.guard(() => {
          const target = Number(req.ino & 0xffffffffn);
          const thread = Number(req.ino >> 32n);
          const file = req.aux === PROC_MEMINFO ? 'meminfo' : 'status';
          reply = this.session.procFile(req.pid, req.tid, file, target, thread, req.arg, req.request);
          return 0;
        });
        socket.write(encodeReply(reply.ret, reply.err));
      } else {
        socket.write(encodeReply(-1, EINVAL));
      }
    });
    socket.on('close', () => {
      if (accessFile !== null) this.guard(() => (this.session.releaseAccessFile(accessFile ?? 0n), 0));
      if (context !== null) {
        this.guard(() => (this.session.release(context ?? 0n), 0));
        this.contextsOpen--;
      }
    });
  }

  /** Run `fn`; an exception is an internal error, kept, and answered as EIO. */
  private guard(fn: () => number): number {
    try {
      return fn();
    } catch (err) {
      this.error ??= err instanceof Error ? err : new Error(String(err));
      return EIO;
    }
  }
}
