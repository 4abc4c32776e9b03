// SPDX-License-Identifier: GPL-2.0-only
/**
 * A throwaway PostgreSQL server for the tests and the bench: Debian's postgresql package (initdb and pg_ctl
 * of /usr/lib/postgresql/N/bin, or IOPTRACE_PG_BIN), a cluster in a new temporary folder, listening on
 * 127.0.0.1 at a free port (and a socket in that folder only), stopped and removed by stop(). As root the
 * server runs as the `postgres` user (PostgreSQL refuses root), which owns the folder.
 *
 * fsync is off: the cluster is thrown away, and the tests check transactions, not the disk.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface PgServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres: the superuser, without a password (trust on loopback). */
  url: string;
  stop(): Promise<void>;
}

/** The folder of initdb and pg_ctl, or a reason why there is none. */
export function pgBinDir(): string | { reason: string } {
  const env = process.env['IOPTRACE_PG_BIN'];
  if (env !== undefined && env !== '') return env;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return { reason: `no ${root} (apt-get install postgresql)` };
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  const newest = versions[0];
  return newest === undefined ? { reason: `no initdb under ${root}/*/bin` } : join(root, newest, 'bin');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const { stdout: uid } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** Starts a new cluster; throws with initdb's or pg_ctl's own output when it cannot. */
export async function startPgServer(): Promise<PgServer> {
  const bin = pgBinDir();
  if (typeof bin !== 'string') throw new Error(bin.reason);
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'ioptrace-pg-'));
  const data = join(dir, 'data');
  if (asRoot) {
    const { uid, gid } = await postgresIds();
    chownSync(dir, uid, gid);
  }
  const as = (cmd: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]) : run(join(bin, cmd), args);
  try {
    await as('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    const port = await freePort();
    const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off -c max_connections=200`;
    await as('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-w', '-t', '120', '-o', options, 'start']);
    let stopped = false;
    return {
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          await as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    try {
      await as('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
    } catch {
      // It did not start.
    }
    rmSync(dir, { recursive: true, force: true });
    const e = error as { stderr?: string; message?: string };
    throw new Error(`cannot start a PostgreSQL server: ${e.stderr?.trim() || e.message || String(error)}`);
  }
}

let databases = 0;

/** A new empty database on the server of `adminUrl`; returns its URL. Dropped with the server. */
export async function freshDatabase(adminUrl: string, prefix = 'ioptrace_test'): Promise<string> {
  const name = `${prefix}_${process.pid}_${++databases}_${Date.now().toString(36)}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
