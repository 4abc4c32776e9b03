// SPDX-License-Identifier: GPL-2.0-only
/**
 * The recorder's socket of `ioptrace record`. The preload library, in record mode, passes each call to the
 * kernel (or the emulator standing in for it) and tells this socket: a device opened (a context of the
 * session, numbered for the library), an ioctl about to reach the kernel (the session decodes it from the
 * program's memory, as it is before the kernel writes anything), and the kernel's answer (the session
 * writes it into the trace as the `expect` of the call's ops). One connection per process; the library
 * waits for each answer, so the calls of a process arrive in the order the kernel served them.
 */
import type { Socket } from 'node:net';
import { LibrarySocketServer, readRequests } from './library-socket.js';
import { DEV_VFIO, REQ_RECORD_CALL, REQ_RECORD_DONE, REQ_RECORD_OPEN, type Request, encodeReply } from './protocol.js';
import { NEED_FD, NOT_OURS } from './session.js';
import type { IoctlReply, Session } from './session.js';

const EINVAL = 22;

export class RecordServer extends LibrarySocketServer {
  private contexts = 0;
  /** Calls that reached the kernel without a record, by what they were. */
  readonly unrecorded = new Map<string, number>();
  /** Where the model answered otherwise than the kernel, one line each. */
  readonly disagreements: string[] = [];
  /** The first internal error (a bug of the recorder or the model); the call went on to the kernel unrecorded. */
  error: Error | null = null;

  constructor(
    private readonly session: Session,
    private readonly onDisagreement: (line: string) => void = () => {},
  ) {
    super();
  }

  protected accept(socket: Socket): void {
    let processOf: number | null = null;
    // The model's answer to the call the kernel is serving now.
    let modelReply: IoctlReply | null = null;
    readRequests(socket, (req) => {
      if (processOf !== req.pid) {
        // A connection is opened anew after exec (close-on-exec) and in a forked child.
        processOf = req.pid;
        this.session.newProcessImage(req.pid);
      }
      if (req.kind === REQ_RECORD_OPEN) {
        const id = ++this.contexts;
        const err = this.guard(() => this.session.open(req.pid, BigInt(id), req.aux === DEV_VFIO, req.tid));
        socket.write(encodeReply(err === 0 ? id : 0, 0));
      } else if (req.kind === REQ_RECORD_CALL) {
        modelReply = req.ino === 0n ? null : this.decode(req);
        if (req.ino === 0n) this.count('iommufd ioctl on a descriptor the recorder did not see opened');
        socket.write(encodeReply(0, modelReply === null ? NOT_OURS : 0));
      } else if (req.kind === REQ_RECORD_DONE) {
        const model = modelReply;
        modelReply = null;
        // The return value travels as the low half of the request field, the errno as aux.
        if (model !== null) this.guard(() => this.answered(model, req.request | 0, req.aux));
        socket.write(encodeReply(0, 0));
      } else {
        socket.write(encodeReply(-1, EINVAL));
      }
    });
  }

  /** The session decodes the call; null when it cannot be recorded. */
  private decode(req: Request): IoctlReply | null {
    let reply: IoctlReply | null = null;
    this.guard(() => {
      reply = this.session.ioctl({ ...req, aux: 0 }); // record mode prepares no access file;
      return 0;
    });
    const got = reply as IoctlReply | null;
    if (got?.err === NEED_FD) {
      // The model would install the access file itself; the kernel's is not one it can follow.
      this.count('IOMMU_TEST_CMD(CREATE_ACCESS)');
      return null;
    }
    if (got === null || got.err === NOT_OURS) return null;
    return got;
  }

  private answered(model: IoctlReply, ret: number, errno: number): number {
    const verdict = this.session.kernelAnswered(model, { ret, errno });
    for (const text of verdict.disagreements) {
      const line = `${verdict.call}${verdict.line === null ? '' : ` (line ${verdict.line})`}: ${text}`;
      this.disagreements.push(line);
      this.onDisagreement(line);
    }
    return 0;
  }

  private count(what: string): void {
    this.unrecorded.set(what, (this.unrecorded.get(what) ?? 0) + 1);
  }

  /** Run `fn`; an exception is an internal error, kept (the call goes on to the kernel unrecorded). */
  private guard(fn: () => number): number {
    try {
      return fn();
    } catch (err) {
      this.error ??= err instanceof Error ? err : new Error(String(err));
      return -1;
    }
  }
}
