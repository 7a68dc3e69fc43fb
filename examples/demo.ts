/**
 * The embedded default at work: several agents append to one log at once —
 * two child processes and two worker threads, each with many concurrent async
 * callers — then the whole chain is verified.
 *
 *   npm run demo            (log in ./.evident, or $EVIDENT_DIR)
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { Log } from '../src/log.js';

const self = fileURLToPath(import.meta.url);
const PER_AGENT = 250;
const CALLERS = 25;

/** One agent: CALLERS async callers appending PER_AGENT entries between them. */
async function agent(name: string): Promise<void> {
  const log = new Log();
  let n = 0;
  const caller = async () => {
    while (n < PER_AGENT) {
      n++;
      await log.append({
        actor: name,
        action: 'file.edit',
        targets: [`src/module-${n % 9}.ts`],
        outcome: 'success',
        data: { n },
      });
    }
  };
  await Promise.all(Array.from({ length: CALLERS }, caller));
  await log.close();
}

const role = process.argv[2] ?? (isMainThread ? 'main' : String(workerData));
if (role !== 'main') {
  await agent(role);
} else {
  const log = await Log.open({ create: true });
  const before = (await log.head()).size;
  console.log(`log: ${log.location} (${before} entries before the demo)`);
  const started = performance.now();
  const exited = (what: string, done: Promise<number | null>) =>
    done.then((code) => {
      if (code !== 0) throw new Error(`${what} exited with ${code}`);
    });
  await Promise.all([
    ...['coding-agent-1', 'coding-agent-2'].map((name) =>
      exited(name, new Promise((resolve) => fork(self, [name]).on('exit', resolve))),
    ),
    ...['ci-bot', 'review-bot'].map((name) =>
      exited(name, new Promise((resolve) => new Worker(self, { workerData: name }).on('exit', resolve))),
    ),
  ]);
  const seconds = (performance.now() - started) / 1000;
  const written = (await log.head()).size - before;
  console.log(
    `4 writers (2 processes, 2 threads) × ${CALLERS} concurrent callers appended ${written} entries in ${seconds.toFixed(2)}s, each fsynced before it was acknowledged`,
  );
  const result = await log.verify();
  console.log(
    result.ok
      ? `verify: ok, ${result.size} entries, head ${result.head}`
      : `verify FAILED: ${JSON.stringify(result.failure)}`,
  );
  console.log('last entries:');
  for await (const e of log.read({ fromSeq: result.size - 3 }))
    console.log(`  #${e.seq} ${e.ts} ${e.actor} ${e.action} ${e.targets?.join(',')}`);
  await log.close();
  process.exitCode = result.ok ? 0 : 1;
}
