// A test that corrupts a State on purpose (writing it without events, to check that a checker notices)
// calls allowStateTampering(): the setup's rebuild-equals-live check then skips that test.
export const tampering = { allowed: false };

export function allowStateTampering(): void {
  tampering.allowed = true;
}
