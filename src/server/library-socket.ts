// SPDX-License-Identifier: GPL-2.0-only
/**
 * What the two sockets the preload library talks to share (the model's, server.ts, and the recorder's,
 * record-server.ts): a Unix socket server that knows its connections, so closing it ends them all, and the
 * framing of the library's fixed-size requests on a connection.
 */
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { REQUEST_SIZE, decodeRequest } from './protocol.js';
import type { Request } from './protocol.js';

export abstract class LibrarySocketServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => this.sockets.delete(socket));
      this.accept(socket);
    });
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => resolve());
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A new connection: attach its handlers (readRequests for the requests). */
  protected abstract accept(socket: Socket): void;
}

/** Calls `handle` for each whole request the connection sends, in order; a partial one waits for its rest. */
export function readRequests(socket: Socket, handle: (req: Request) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let at = 0;
    for (; at + REQUEST_SIZE <= pending.length; at += REQUEST_SIZE) handle(decodeRequest(pending, at));
    pending = pending.subarray(at);
  });
}
