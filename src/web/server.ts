// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace serve`: a node:http server over one store, read-only. GET / is the page, GET /api/... the JSON
 * API (api.ts). Errors are answers, never crashes: a bad parameter or an event past the end is a 400, an
 * unknown run or a path outside the API a 404, each as {"error":{"kind","message","field"}}; anything else
 * a 500 with its message (no stack). Requests are answered one at a time: the per-run cursors are shared.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BadInputError, BadRangeError, NotFoundError } from '../lib/errors.js';
import { toJson } from '../lib/format.js';
import type { Store } from '../store/index.js';
import { Cursor, StoreSource, requireRun } from '../timetravel/index.js';
import type { ApiContext } from './api.js';
import { ROUTES, RUN_ROUTES } from './api.js';
import { pageHtml } from './page.js';

export interface ServeOptions {
  store: Store;
  /** 127.0.0.1 unless told otherwise. */
  host?: string;
  /** 0: any free port. */
  port?: number;
  /** Called with the wall and CPU time each API request took in the server, in milliseconds (bench B10). */
  onTiming?: (route: string, ms: number, cpuMs: number) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export const DEFAULT_HOST = '127.0.0.1';

/** Whether a host is a loopback address: anything else exposes the store to the network. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

interface ErrorBody {
  status: number;
  body: { error: { kind: string; message: string; field: string | null } };
}

function errorBody(err: unknown): ErrorBody {
  const make = (status: number, kind: string, message: string, field: string | null = null): ErrorBody => ({
    status,
    body: { error: { kind, message, field } },
  });
  if (err instanceof NotFoundError) return make(404, 'not-found', err.message, err.what);
  if (err instanceof BadRangeError) return make(400, 'bad-range', err.message, err.what);
  if (err instanceof BadInputError) return make(400, 'bad-input', err.message, err.field ?? null);
  return make(500, 'internal', err instanceof Error ? err.message : String(err));
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    // The page loads nothing from anywhere: no network, no framework.
    'content-security-policy':
      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
  });
  res.end(body);
}

/** The route and run of an API path, or null when the path is outside the API. */
export function routeOf(path: string): { name: string; run: number | null } | null {
  const top = /^\/api\/([a-z-]+)$/.exec(path);
  if (top?.[1] !== undefined) return top[1] in ROUTES && !RUN_ROUTES.has(top[1]) ? { name: top[1], run: null } : null;
  const m = /^\/api\/runs\/([^/]+)(?:\/([a-z-]+))?$/.exec(path);
  if (m?.[1] === undefined) return null;
  const name = m[2] ?? 'run';
  if (!RUN_ROUTES.has(name)) return null;
  if (!/^\d+$/.test(m[1]) || !Number.isSafeInteger(Number(m[1])))
    throw new BadInputError(`run must be a non-negative integer, got "${decodeURIComponent(m[1])}"`, { field: 'run' });
  return { name, run: Number(m[1]) };
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { store } = options;
  const cursors = new Map<number, Cursor>();
  const sources = new Map<number, StoreSource>();
  const ctx: ApiContext = {
    store,
    async source(run) {
      const kept = sources.get(run);
      if (kept !== undefined) return kept;
      const row = await requireRun(store, run);
      const source = await StoreSource.open(store, run);
      // A run still being written grows: its source is read again next time, to see the new events.
      if (row.status !== 'running') sources.set(run, source);
      return source;
    },
    async cursor(run) {
      let c = cursors.get(run);
      if (c === undefined) {
        c = await Cursor.open(await StoreSource.open(store, run), -1);
        cursors.set(run, c);
      }
      return c;
    },
  };
  let queue: Promise<void> = Promise.resolve();

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (req.method !== 'GET') {
        send(res, 405, 'application/json', toJson({ error: { kind: 'method', message: 'only GET', field: null } }));
        return;
      }
      if (url.pathname === '/' || url.pathname === '/index.html') {
        send(res, 200, 'text/html; charset=utf-8', pageHtml());
        return;
      }
      const route = routeOf(url.pathname);
      if (route === null) throw new NotFoundError(`no such path ${url.pathname} (the API is under /api/)`, 'path', -1);
      const handler = ROUTES[route.name];
      if (handler === undefined) throw new NotFoundError(`no such path ${url.pathname}`, 'path', -1);
      const start = performance.now();
      const cpu = process.cpuUsage();
      const body = toJson(await handler(ctx, url.searchParams, route.run), 0);
      if (options.onTiming !== undefined) {
        const used = process.cpuUsage(cpu);
        options.onTiming(route.name, performance.now() - start, (used.user + used.system) / 1000);
      }
      send(res, 200, 'application/json', body);
    } catch (err) {
      const { status, body } = errorBody(err);
      send(res, status, 'application/json', toJson(body, 0));
    }
  }

  const server = createServer((req, res) => {
    queue = queue.then(() => answer(req, res)).catch(() => undefined);
  });
  const host = options.host ?? DEFAULT_HOST;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`,
    port,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
