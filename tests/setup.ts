// Any console output in a test is a failure: the suite must be silent, and code under test must not print.
import { afterEach, beforeEach, expect, vi } from 'vitest';

const methods = ['log', 'info', 'warn', 'error', 'debug'] as const;
let spies: ReturnType<typeof vi.spyOn>[] = [];

beforeEach(() => {
  spies = methods.map((m) => vi.spyOn(console, m).mockImplementation(() => undefined));
});

afterEach(() => {
  const calls = spies.flatMap((spy, i) => spy.mock.calls.map((args) => `console.${methods[i]}: ${args.map(String).join(' ')}`));
  for (const spy of spies) spy.mockRestore();
  expect(calls, 'a test wrote to the console').toEqual([]);
});
