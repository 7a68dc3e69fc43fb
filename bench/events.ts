/** The event every benchmark writes: a typical agent action, about 400 bytes as an evident line. */
import type { EntryInput } from '../src/entry.js';

export function event(i: number): EntryInput {
  return {
    actor: `agent-${i % 8}`,
    action: 'file.edit',
    targets: [`src/module-${i % 100}.ts`],
    outcome: 'success',
    data: { i, note: 'edited a file' },
  };
}
