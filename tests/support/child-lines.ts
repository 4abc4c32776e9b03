// SPDX-License-Identifier: GPL-2.0-only
import type { ChildProcess } from 'node:child_process';

/** The child's stdout lines once `done` accepts them (checked again at exit); rejects if it exits first. */
export function childLines(child: ChildProcess, done: (lines: string[]) => boolean): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let text = '';
    let stderr = '';
    const all = () => text.split('\n').filter((line) => line !== '');
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (done(all())) resolve(all());
    });
    child.on('exit', (code) => {
      if (done(all())) resolve(all());
      else reject(new Error(`child exited (${String(code)}) early: ${stderr}`));
    });
  });
}
