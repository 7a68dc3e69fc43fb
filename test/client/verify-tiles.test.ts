/**
 * Verifying through the tlog-tiles API when a partial tile is gone: a log
 * may delete a partial tile once the full one exists (C2SP tlog-tiles), and
 * a client reads the partial one from the full one, so a mirror serving an
 * older checkpoint over newer tiles verifies instead of raising a false alarm.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifyTiles } from '../../src/client/verify-tiles.js';
import { Log } from '../../src/log.js';
import { trustCheckpoint } from '../../src/note/trust.js';
import { buildServer } from '../../src/server/server.js';
import { signingLog } from '../helpers.js';

describe('verifying through the tiles API', () => {
  it('reads a partial tile or entry bundle the server deleted from the full one', async () => {
    const setup = signingLog('mirror.example/log');
    await setup.init();
    const log = await Log.open({ store: setup.dir, checkpointInterval: 10 });
    const batch = (n: number) => Array.from({ length: n }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } }));
    await log.appendBatch(batch(299));
    const old = (await log.checkpoint()) as string; // 300 entries: tiles 000 full, 001.p/44
    await log.appendBatch(batch(300));
    await log.checkpoint(); // 600: 001 is full now
    const app = buildServer({ log, tokens: null, publicReads: true });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const served = async (path: string) => {
      const response = await fetch(`${url}/${path}`);
      return response.status === 404 ? null : Buffer.from(await response.arrayBuffer());
    };
    const removed: string[] = [];
    // A mirror still at the old checkpoint, which deleted each partial tile whose full tile it has.
    const mirror = async (path: string) => {
      if (path === 'checkpoint') return Buffer.from(old);
      const partial = /^(.+)\.p\/\d+$/.exec(path);
      if (partial !== null && (await served(partial[1] as string)) !== null) {
        removed.push(path);
        return null;
      }
      return served(path);
    };
    try {
      const result = await verifyTiles(mirror, { policy: { log: setup.key } });
      assert.equal(result.ok, true, JSON.stringify(result.failure));
      assert.equal(result.size, 300);
      assert.equal(result.checkpoint.size, trustCheckpoint(old, { log: setup.key }).size);
      assert.deepEqual(removed.sort(), ['tile/0/001.p/44', 'tile/entries/001.p/44']);
    } finally {
      await app.close();
      await log.close();
    }
  });
});
