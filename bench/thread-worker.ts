/**
 * One benchmark writer thread: `callers` async callers append durably for
 * `ms`, from the wall-clock time `startAt` on, through either a Log of its
 * own on `dir` or a SharedLog on the `port` its owner shared; posts how many
 * were acknowledged.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { type AuditLog, Log } from '../src/log.js';
import { SharedLog } from '../src/shared-log.js';
import { event } from './events.js';

const { dir, port, callers, ms, startAt } = workerData as {
  dir?: string;
  port?: MessagePort;
  callers: number;
  ms: number;
  startAt: number;
};
const log: AuditLog = port === undefined ? await Log.open({ store: dir as string }) : new SharedLog(port);
await log.head(); // opened (or answered) before the window
const wait = startAt - Date.now();
if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
let count = 0;
const end = performance.now() + ms;
await Promise.all(
  Array.from({ length: callers }, async () => {
    while (performance.now() < end) {
      await log.append(event(count));
      count++;
    }
  }),
);
await log.close();
parentPort?.postMessage(count);
