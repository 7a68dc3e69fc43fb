/**
 * One benchmark writer process: opens <dir>, waits for the wall-clock time
 * `startAt` (ms since the epoch) so that every writer's window is the same
 * one, after all of them have started up; then `callers` async callers
 * append durably until `ms` have passed; prints how many were acknowledged.
 *   node append-worker.js <dir> <callers> <ms> [startAt]
 */
import { Log } from '../src/log.js';
import { event } from './events.js';

const [dir = '', callersText = '64', msText = '1000', startAtText = '0'] = process.argv.slice(2);
const log = await Log.open({ store: dir });
const wait = Number(startAtText) - Date.now();
if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
else if (Number(startAtText) > 0)
  process.stderr.write(`append-worker: started ${-wait} ms after the others' window opened\n`);
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
