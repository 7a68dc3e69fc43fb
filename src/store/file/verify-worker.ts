/** A worker thread verifying one range of a log file for verifyFile (verify.ts). */
import { closeSync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import type { Head } from '../../entry.js';
import { nodeFiles } from './files.js';
import { verifyRange } from './verify.js';

const job = workerData as { path: string; start: number; end: number; after: Head | null; progress: boolean };
const fd = openSync(job.path, 'r');
try {
  const onBytes = job.progress ? (bytes: number) => parentPort?.postMessage({ bytes }) : undefined;
  const result = await verifyRange(nodeFiles, fd, job.start, job.end, job.after, onBytes);
  parentPort?.postMessage({ result });
} finally {
  closeSync(fd);
}
