// Every command example of the README, run in order against a fresh store as a new user would, with the
// exit code each is documented (or known) to give.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, builtChild, freshDir } from '../support/built-cli.js';

/** Split a shell command line into words: single and double quotes, and a trailing # comment. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i += 1) {
    const c = line.charAt(i);
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end === -1) throw new Error(`unterminated quote in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '#' && word === null) {
      break;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** The command lines of the README's "Using it" ```sh block, non-empty, in order. */
function readmeCommands(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Using it'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block.split('\n').filter((l) => l.trim() !== '');
}

/** The exit code each example gives on a fresh store, by its command (comment and spacing removed). */
const EXPECTED: Record<string, number> = {
  'replay replays/bad-free.jsonl --variant v3': 1,
  'replay replays/bad-free.jsonl --variant v3 --fix mmget-fail-no-kfree': 0,
  runs: 0,
  'log 1 --type ViolationDetected': 0,
  'at 1 40': 0,
  'diff 1 30 45': 0,
  'why 1 --pfn 0x40000': 0,
  'step 1 --from 7 --to 9': 0,
  'watch 1 violations > 0': 0,
  verify: 0,
  'failnth replays/selftest/fail_nth.basic.jsonl': 0,
  'bisect replays/bad-free.jsonl --variants v3,merged': 1,
  'bisect-fix replays/selftest/iommufd_ioas.access_domain_destory.jsonl --bad merged --good upstream': 1,
  'observed tests/fixtures/bisect/recorded-access-pin.jsonl --variant v3': 1,
  'audit 1 --html report.html': 0,
  'audit --all': 0,
  'fuzz --variant v3 --iterations 40 --out fuzz-out': 1,
  'shrink fuzz-out/bad_free-pfn_reader_user_pin-seed17.jsonl --variant v3': 0,
  '--version': 0,
};

/** Lines of the block that are not ioptrace commands, and why the test does not run them. */
const NOT_RUN: Record<string, string> = {
  'scripts/render-audit.sh report.html': 'needs Chromium',
};

function runAll(cwd: string, commands: string[][]): Promise<{ codes: number[]; stderr: string }> {
  const out = join(cwd, 'codes.json');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [builtChild('readme-commands'), out, JSON.stringify(commands)], {
      cwd,
      env: { ...process.env, IOPTRACE_DB: join(cwd, 'ioptrace.db'), NO_COLOR: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`driver exited ${code}: ${stderr}`));
      else resolve({ codes: JSON.parse(readFileSync(out, 'utf8')) as number[], stderr });
    });
  });
}

describe('the README examples', () => {
  it('splits shell words as the examples need', () => {
    expect(shellWords(`npx ioptrace watch 1 'violations > 0'   # first event`)).toEqual([
      'npx',
      'ioptrace',
      'watch',
      '1',
      'violations > 0',
    ]);
    expect(shellWords('npx ioptrace runs # runs in ./ioptrace.db')).toEqual(['npx', 'ioptrace', 'runs']);
  });

  it('run against a fresh store with the expected exit codes', { timeout: 600_000 }, async () => {
    const lines = readmeCommands();
    const commands: string[][] = [];
    const skipped: string[] = [];
    for (const line of lines) {
      const words = shellWords(line);
      if (words[0] === 'npx' && words[1] === 'ioptrace') commands.push(words.slice(2));
      else skipped.push(words.join(' '));
    }
    expect(skipped).toEqual(Object.keys(NOT_RUN));
    expect(commands.map((c) => c.join(' '))).toEqual(Object.keys(EXPECTED));

    const cwd = freshDir();
    for (const dir of ['replays', 'tests']) symlinkSync(join(ROOT, dir), join(cwd, dir));
    mkdirSync(join(cwd, 'fuzz-out'));
    const { codes, stderr } = await runAll(cwd, commands);
    const got = Object.fromEntries(commands.map((c, i) => [c.join(' '), codes[i]]));
    expect(got, stderr).toEqual(EXPECTED);
    expect(readFileSync(join(cwd, 'report.html'), 'utf8')).toContain('but the run has 3 violations');
  });
});
