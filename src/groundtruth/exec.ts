// SPDX-License-Identifier: GPL-2.0-only
/**
 * Running the external tools of the ground-truth build (apt-get, make, gcc, qemu): output goes to a log
 * file, not the terminal, and a failure becomes one error that names the command, its exit status, the
 * log and the log's last lines, which is where make and apt say what went wrong.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';

export class ToolError extends Error {
  override readonly name = 'ToolError';
}

export interface RunOptions {
  cwd?: string;
  /** Append the command's stdout and stderr here. */
  log: string;
  /** Called with every complete output line (progress). */
  onLine?: (line: string) => void;
  /** Run under `nice -n 19`: the machine is shared. */
  nice?: boolean;
  env?: NodeJS.ProcessEnv;
  /** What the error message calls this step. */
  what: string;
}

function tail(file: string, lines: number): string {
  try {
    const all = readFileSync(file, 'utf8').trimEnd().split('\n');
    return all.slice(Math.max(0, all.length - lines)).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Runs `cmd args...`; resolves when it exits 0, rejects with a ToolError otherwise. */
export function runTool(cmd: string, args: readonly string[], opts: RunOptions): Promise<void> {
  const argv = opts.nice ? ['nice', '-n', '19', cmd, ...args] : [cmd, ...args];
  const [file, ...rest] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const log = createWriteStream(opts.log, { flags: 'a' });
    log.write(`$ ${argv.join(' ')}\n`);
    const child = spawn(file, rest, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      if (!opts.onLine) return;
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) opts.onLine(l);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => {
      log.end();
      reject(new ToolError(`${opts.what}: cannot run ${file}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      log.end(() => {
        if (code === 0) return resolve();
        const status = signal ? `killed by ${signal}` : `exit status ${code}`;
        reject(
          new ToolError(
            `${opts.what} failed (${argv.join(' ')}: ${status}); log: ${opts.log}\n--- last lines ---\n${tail(opts.log, 15)}`,
          ),
        );
      });
    });
  });
}
