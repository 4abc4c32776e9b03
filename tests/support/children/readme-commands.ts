// Runs several ioptrace command lines in one process (one start-up instead of one per command), in order,
// and writes their exit codes as JSON to the file named by the first argument. Used by
// tests/e2e/readme.test.ts, built by tsc with the CLI (tsconfig.e2e.json): it runs the built main().
import { writeFileSync } from 'node:fs';
import { main } from '../../../src/cli/main.js';

const [out, commands] = process.argv.slice(2);
if (out === undefined || commands === undefined) throw new Error('usage: readme-commands OUT.json COMMANDS.json');
const codes: number[] = [];
for (const argv of JSON.parse(commands) as string[][]) codes.push(await main(argv));
writeFileSync(out, JSON.stringify(codes));
