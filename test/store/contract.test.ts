/**
 * What every backend must do, run against each one: the seams the lifecycle
 * relies on (an atomic, exclusive commit that never forks the chain; exact
 * heads; leaf hashes read back; compare-and-replace of the checkpoint; one
 * lease holder at a time; tiles kept as written), and a log on the backend
 * behaving as a log. A new backend adds itself to BACKENDS and must pass
 * unchanged.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Batch } from '../../src/batch.js';
import { GENESIS_PREV, prepareEntry } from '../../src/entry.js';
import { Log } from '../../src/log.js';
import { TreeEdge } from '../../src/merkle/tiles.js';
import { subtreesOf, treeRoot } from '../../src/merkle/tree.js';
import { verifyInclusion } from '../../src/merkle/verify.js';
import { parseReceipt, verifyReceipt } from '../../src/receipt.js';
import { FileStore } from '../../src/store/file/store.js';
import { parsePostgresUrl } from '../../src/store/postgres/connection.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import type { ReadQuery, Store } from '../../src/store/store.js';
import { dropTestSchemas, postgresLog, signingLog, tempDir } from '../helpers.js';

/** Each backend: a name, and a maker of stores that all name the same new, empty log. */
const BACKENDS: { name: string; log: () => () => Store }[] = [
  {
    name: 'directory',
    log: () => {
      const dir = tempDir();
      return () => new FileStore(dir);
    },
  },
  {
    name: 'PostgreSQL',
    log: () => {
      const url = postgresLog();
      return () => new PostgresStore(parsePostgresUrl(url));
    },
  },
];

after(dropTestSchemas);

const open = async (store: Store, create = true) => {
  await store.open({ create, readOnly: false, onRecover: () => {} });
  return store;
};
const batchOf = (n: number, actor = 'a') =>
  new Batch(Array.from({ length: n }, (_, i) => prepareEntry({ actor, action: 'x.y', data: { i } })));

for (const backend of BACKENDS) {
  describe(`the ${backend.name} store`, () => {
    it('commits a batch after the exact head, durable, and reads it back', async () => {
      const make = backend.log();
      const store = await open(make());
      assert.deepEqual(await store.entries.head(), { log: null, size: 0, hash: GENESIS_PREV, ts: null });
      const first = await store.entries.commit(batchOf(3));
      assert.equal(first.after.size, 0);
      assert.equal(first.head.size, 3);
      const second = await store.entries.commit(batchOf(2));
      assert.deepEqual(second.after, first.head);
      assert.deepEqual(await store.entries.head(), second.head);
      const read = [];
      for await (const entry of store.entries.read({})) read.push(entry);
      assert.deepEqual(
        read.map((e) => e.seq),
        [0, 1, 2, 3, 4],
      );
      const { leaves, prev } = await store.entries.leaves(1, 5);
      assert.ok(leaves.equals(Buffer.concat([first.leaves.subarray(32), second.leaves])));
      assert.equal(prev.toString('hex'), read[0]?.hash);
      assert.equal((await store.entries.verify({})).ok, true);
      await store.close();
    });

    it('never forks the chain, however many stores of the log commit at once', async () => {
      const make = backend.log();
      const stores = await Promise.all(Array.from({ length: 4 }, () => open(make())));
      await Promise.all(
        stores.flatMap((store, s) => Array.from({ length: 10 }, () => store.entries.commit(batchOf(3, `s${s}`)))),
      );
      const result = await stores[0]?.entries.verify({});
      assert.equal(result?.ok, true, JSON.stringify(result?.failure));
      assert.equal(result?.size, 120);
      await Promise.all(stores.map((store) => store.close()));
    });

    it('replaces the checkpoint only if it is still the one expected', async () => {
      const make = backend.log();
      const [a, b] = [await open(make()), await open(make())];
      assert.equal(await a.checkpoints.read(), null);
      assert.equal(await a.checkpoints.replace(null, 'one\n'), true);
      assert.equal(await b.checkpoints.replace(null, 'two\n'), false);
      assert.equal(await b.checkpoints.read(), 'one\n');
      const race = await Promise.all(
        [a, b, a, b].map((store, k) => store.checkpoints.replace('one\n', `racer ${k}\n`)),
      );
      assert.deepEqual(race.filter(Boolean).length, 1, 'exactly one of the racers replaced it');
      await Promise.all([a.close(), b.close()]);
    });

    it('gives the lease to one holder at a time, and to another once released', async () => {
      const make = backend.log();
      const [a, b] = [await open(make()), await open(make())];
      assert.equal(await a.lease.tryAcquire(), true);
      assert.equal(await a.lease.tryAcquire(), true, 'the holder holds it still');
      assert.equal(await b.lease.tryAcquire(), false);
      // A writer that is not the holder asks at every interval, for as long as it runs: asking leaves nothing behind.
      const warnings: string[] = [];
      const onWarning = (warning: Error) => warnings.push(warning.message);
      process.on('warning', onWarning);
      for (let i = 0; i < 25; i++) assert.equal(await b.lease.tryAcquire(), false);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      process.off('warning', onWarning);
      assert.deepEqual(warnings, []);
      await a.lease.release();
      assert.equal(await b.lease.tryAcquire(), true);
      await b.lease.release();
      await Promise.all([a.close(), b.close()]);
    });

    it('keeps tiles as written, full and partial, and the size they hold', async () => {
      const store = await open(backend.log()());
      const edge = new TreeEdge();
      const leaves = Array.from({ length: 300 }, (_, i) => Buffer.alloc(32, i));
      const full = edge.append(Buffer.concat(leaves));
      await store.tiles.write([...full, ...edge.partials()], 300);
      assert.equal(await store.tiles.size(), 300);
      assert.ok((await store.tiles.read(0, 0, 256))?.equals(Buffer.concat(leaves.slice(0, 256))));
      assert.ok((await store.tiles.read(0, 1, 44))?.equals(Buffer.concat(leaves.slice(256))));
      assert.equal(await store.tiles.read(0, 1, 45), null);
      await store.tiles.clear();
      assert.equal(await store.tiles.size(), 0);
      assert.equal(await store.tiles.read(0, 0, 256), null);
      await store.close();
    });

    it('keeps cosigned checkpoints by key, and drops them by key', async () => {
      const store = await open(backend.log()());
      assert.deepEqual(await store.cosignatures.list(), []);
      const key = 'a'.repeat(64);
      await store.cosignatures.put(key, 'note one\n');
      await store.cosignatures.put(key, 'note two\n');
      assert.equal(await store.cosignatures.get(key), 'note two\n');
      const other = 'b'.repeat(64);
      await store.cosignatures.put(other, 'note three\n');
      assert.deepEqual(await store.cosignatures.list(), [
        { key, note: 'note two\n' },
        { key: other, note: 'note three\n' },
      ]);
      await store.cosignatures.remove(key);
      await store.cosignatures.remove(key); // nothing there: not an error
      assert.equal(await store.cosignatures.get(key), null);
      assert.deepEqual(await store.cosignatures.list(), [{ key: other, note: 'note three\n' }]);
      await store.close();
    });

    it('reads by seq range, time, actor, action (and family), target, with a limit', async () => {
      const store = await open(backend.log()());
      const inputs = [
        { actor: 'alice', action: 'proposal', targets: ['pr/1'] },
        { actor: 'bob', action: 'proposal.approve', targets: ['pr/1', 'pr/2'] },
        { actor: 'alice', action: 'proposal_x' },
        { actor: 'carol', action: 'deploy.start', targets: ['api'] },
        { actor: 'alice', action: 'proposal.merge', targets: ['pr/2'] },
      ];
      await store.entries.commit(new Batch(inputs.slice(0, 3).map((input) => prepareEntry(input))));
      await new Promise((resolve) => setTimeout(resolve, 5));
      const later = await store.entries.commit(new Batch(inputs.slice(3).map((input) => prepareEntry(input))));
      const seqs = async (query: ReadQuery) => {
        const found: number[] = [];
        for await (const entry of store.entries.read(query)) found.push(entry.seq);
        return found;
      };
      assert.deepEqual(await seqs({ fromSeq: 1, toSeq: 3 }), [1, 2, 3]);
      assert.deepEqual(await seqs({ actor: 'alice' }), [0, 2, 4]);
      assert.deepEqual(await seqs({ action: 'proposal.*' }), [0, 1, 4], 'the family, not proposal_x');
      assert.deepEqual(await seqs({ action: 'proposal' }), [0]);
      assert.deepEqual(await seqs({ target: 'pr/2' }), [1, 4]);
      assert.deepEqual(await seqs({ since: later.head.ts as string }), [3, 4]);
      assert.deepEqual(await seqs({ until: later.after.ts as string }), [0, 1, 2]);
      assert.deepEqual(await seqs({ actor: 'alice', limit: 2 }), [0, 2]);
      assert.deepEqual(await seqs({ actor: 'nobody' }), []);
      await store.close();
    });

    it('holds a log: appends, reads, proofs, a signing log and its receipts', async () => {
      const make = backend.log();
      const log = new Log({ store: make(), create: true });
      const entries = await log.appendBatch(
        Array.from({ length: 300 }, (_, i) => ({ actor: 'a', action: 'x.y', data: { i } })),
      );
      const head = await log.treeHead();
      const leaves = entries.map((e) => Buffer.from(e.hash, 'hex'));
      assert.ok(head.root.equals(treeRoot(subtreesOf(leaves), 300)));
      verifyInclusion(257, 300, leaves[257] as Buffer, await log.inclusionProof(257), head.root);
      await log.close();

      const keys = signingLog('contract.example/log');
      const makeSigned = backend.log();
      await assert.rejects(new Log({ store: makeSigned() }).ready(), { code: 'EVIDENT_NO_LOG' }); // not yet created
      await Log.init({ store: makeSigned(), signingKey: keys.keyFile });
      const writer = new Log({ store: makeSigned(), key: keys.keyFile });
      const entry = await writer.append({ actor: 'b', action: 'x.y' });
      const receipt = await writer.receipt(entry.seq);
      assert.equal(verifyReceipt(parseReceipt(receipt), entry, { log: keys.key }).size, 2);
      await writer.close();
    });

    it('lets one of several inits with different keys at once declare its key; the others are told whose', async () => {
      const make = backend.log();
      const keys = Array.from({ length: 4 }, (_, k) => signingLog(`contract.example/racer-${k}`));
      const outcomes = await Promise.allSettled(
        keys.map((key) => Log.init({ store: make(), signingKey: key.keyFile })),
      );
      const won = outcomes.flatMap((outcome, k) => (outcome.status === 'fulfilled' ? [k] : []));
      assert.equal(won.length, 1, JSON.stringify(outcomes));
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') {
          const { message } = outcome.reason as Error;
          assert.match(
            message,
            new RegExp(`(already signs as|is being declared for) contract\\.example/racer-${won[0]}\\b`),
          );
        }
      }
      const winner = keys[won[0] as number] as (typeof keys)[number];
      const writer = new Log({ store: make(), key: winner.keyFile });
      const entry = await writer.append({ actor: 'a', action: 'x.y' });
      assert.equal(entry.seq, 1, 'one declaration, then this entry');
      assert.equal(verifyReceipt(parseReceipt(await writer.receipt(1)), entry, { log: winner.key }).size, 2);
      await writer.close();
    });
  });
}
