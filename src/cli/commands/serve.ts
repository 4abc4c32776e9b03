// SPDX-License-Identifier: GPL-2.0-only
/** `ioptrace serve`: the browser view of a store and its JSON API (src/web/), until interrupted. */
import { spawn } from 'node:child_process';
import { openStore } from '../../store/index.js';
import { DEFAULT_HOST, isLoopback, startServer } from '../../web/server.js';
import { defineCommand } from '../command.js';
import { flag, int, text } from '../options.js';
import { UsageError } from '../errors.js';

export const serveCommand = defineCommand({
  name: 'serve',
  summary: 'serve a browser view of the runs in the database, and its JSON API, on 127.0.0.1',
  usage: 'ioptrace serve [--port P] [--host H] [--open] [--db FILE]',
  help: [
    `Listens on ${DEFAULT_HOST} (--host H for another address: a warning, the store is then readable by others)`,
    'and port P (default 8080; 0 picks a free one), prints "listening on URL" and serves until interrupted.',
    '--open starts the desktop browser (xdg-open) on the page. The store is opened read-only. The API is',
    'described in the README ("Browser view").',
  ],
  options: { port: int(8080, { below: { value: 65536, text: '65536' } }), host: text(DEFAULT_HOST), open: flag() },
  async run(positionals, values, env) {
    if (positionals.length !== 0) throw new UsageError(`usage: ${this.usage}`);
    const { port, host } = values;
    if (host === '') throw new UsageError('--host needs an address');
    if (!isLoopback(host))
      env.stderr.write(
        `ioptrace serve: warning: listening on ${host}, not loopback: anyone who reaches it can read the store\n`,
      );
    const store = await openStore(env.db, { readonly: true });
    let server;
    try {
      server = await startServer({ store, host, port });
    } catch (err) {
      await store.close();
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new UsageError(`cannot listen on ${host}:${port}: ${code}`);
    }
    process.stdout.write(`listening on ${server.url}\n`);
    if (values.open) {
      const child = spawn('xdg-open', [server.url], { stdio: 'ignore', detached: true });
      child.on('error', () => env.stderr.write(`ioptrace serve: cannot start a browser; open ${server.url}\n`));
      child.unref();
    }
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    await store.close();
    return { exitCode: 0, json: { url: server.url }, text: [] };
  },
});
