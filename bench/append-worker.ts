/**
 * One benchmark writer process: `callers` async callers append durably to
 * <dir> until `ms` have passed; prints how many were acknowledged.
 *   node append-worker.js <dir> <callers> <ms>
 */
import { Log } from '../src/log.js';
import { event } from './events.js';

const [dir = '', callersText = '64', msText = '1000'] = process.argv.slice(2);
const log = await Log.open({ dir });
let count = 0;
const end = performance.now() + Number(msText);
await Promise.all(
  Array.from({ length: Number(callersText) }, async () => {
    while (performance.now() < end) {
      await log.append(event(count));
      count++;
    }
  }),
);
await log.close();
process.stdout.write(`${count}\n`);
