/** Verifies <dir> (on [threads] worker threads) in a fresh process and prints {ok,size,bytes,seconds,maxRssMB}: peak RSS is this process's alone. */
import { Log } from '../src/log.js';

const [dir = '', threads = '1'] = process.argv.slice(2);
const log = new Log({ store: dir, readOnly: true });
const started = performance.now();
const result = await log.verify({ threads: Number(threads) });
const seconds = (performance.now() - started) / 1000;
await log.close();
const maxRssMB = process.resourceUsage().maxRSS / 1024;
process.stdout.write(
  `${JSON.stringify({ ok: result.ok, size: result.size, bytes: result.bytes, seconds, maxRssMB })}\n`,
);
