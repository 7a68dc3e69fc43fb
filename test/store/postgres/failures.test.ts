/**
 * A PostgreSQL log through what breaks in production: the integrator killed
 * with SIGKILL while two processes race for its lease (one consistent
 * checkpoint history, never two), and the server restarted under load
 * (every acknowledged append there exactly once, appends resume).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import type { Entry } from '../../../src/entry.js';
import { Log } from '../../../src/log.js';
import { verifyConsistency } from '../../../src/merkle/verify.js';
import { trustCheckpoint } from '../../../src/note/trust.js';
import { parsePostgresUrl, quoted } from '../../../src/store/postgres/connection.js';
import {
  dropTestSchemas,
  exited,
  FIXTURES,
  POSTGRES,
  postgresLog,
  signingLog,
  until,
  verifyStore,
} from '../../helpers.js';

const admin = new pg.Pool({ connectionString: POSTGRES, max: 1, application_name: 'evident-test' });
admin.on('error', () => {}); // the restart test cuts its connection too
after(async () => {
  await admin.end();
  await dropTestSchemas();
});

describe('a PostgreSQL log when things break', () => {
  it('the integrator SIGKILLed mid-publish, again and again, while another races for the lease: one history', async () => {
    const url = postgresLog();
    const keys = signingLog('lease.example/log');
    await Log.init({ store: url, signingKey: keys.keyFile });
    const schema = quoted(parsePostgresUrl(url).schema);
    const seen = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const [row] = (await admin.query(`select note from ${schema}.checkpoint`)).rows;
        if (row !== undefined) seen.add(row.note as string);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    // A writer that ends before it is killed is a failure to report, with what it said.
    const early: string[] = [];
    const writer = (name: string) => {
      const child = spawn(process.execPath, [join(FIXTURES, 'writer.js'), url, name, '100000', '16', 'locked', '10'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.on('exit', (code, signal) => {
        if (signal !== 'SIGKILL') early.push(`${name} exited ${code ?? signal}: ${stderr}`);
      });
      return child;
    };
    // A rolling kill: each round starts a writer, then SIGKILLs the oldest one, which holds the lease (it took
    // it first), so the integrator dies while signing every 10 ms and the other takes over.
    let oldest = writer('writer-0');
    for (let round = 1; round <= 6; round++) {
      const next = writer(`writer-${round}`);
      await new Promise((resolve) => setTimeout(resolve, 300 + 50 * round));
      oldest.kill('SIGKILL');
      await exited(oldest);
      oldest = next;
    }
    oldest.kill('SIGKILL');
    await exited(oldest);
    watching = false;
    await watcher;
    assert.deepEqual(early, [], 'no writer ended before it was killed');

    // Every checkpoint signed was consistent with every one before it: the tree over the entries proves it.
    const checkpoints = [...seen]
      .map((note) => trustCheckpoint(note, { log: keys.key }))
      .sort((a, b) => a.size - b.size);
    assert.ok(checkpoints.length >= 5, `checkpoints were signed as it went (${checkpoints.length})`);
    const log = new Log({ store: url, key: keys.keyFile });
    for (const [i, checkpoint] of checkpoints.entries()) {
      const earlier = checkpoints[i - 1];
      if (earlier === undefined || earlier.size === checkpoint.size) {
        if (earlier !== undefined) assert.ok(earlier.root.equals(checkpoint.root), 'one root per size');
        continue;
      }
      const proof = await log.consistencyProof(earlier.size, checkpoint.size);
      verifyConsistency(earlier.size, checkpoint.size, proof, earlier.root, checkpoint.root);
    }
    // And the log goes on: a new writer appends and signs on top of the last checkpoint.
    const entry = await log.append({ actor: 'after', action: 'x.y' });
    assert.match(await log.receipt(entry.seq), /^c2sp\.org\/tlog-proof@v1\n/);
    await log.close();
    const result = await verifyStore(url);
    assert.equal(result.ok, true, JSON.stringify(result.failure));
  });

  it('the server restarted under load: every acknowledged append once, nothing half there, appends resume', async (t) => {
    const clusters = (() => {
      try {
        return readdirSync('/etc/postgresql');
      } catch {
        return [];
      }
    })();
    if (clusters.length === 0 || process.getuid?.() !== 0) {
      t.skip('needs a Debian PostgreSQL cluster this test may restart (pg_ctlcluster, as root)');
      return;
    }
    const url = postgresLog();
    const log = new Log({ store: url, create: true });
    await log.ready();
    const acked: { seq: number; id: string }[] = [];
    let failed = 0;
    let running = true;
    const caller = async (c: number) => {
      for (let n = 0; running; n++) {
        try {
          const entry: Entry = await log.append({ actor: `caller-${c}`, action: 'x.y', data: { n } });
          acked.push({ seq: entry.seq, id: entry.id });
        } catch (error) {
          assert.equal((error as { code?: string }).code, 'EVIDENT_WRITE_FAILED', String(error));
          failed++;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    };
    const callers = Array.from({ length: 32 }, (_, c) => caller(c));
    await until(() => acked.length > 500, 'appends under way');
    const before = acked.length;
    execFileSync('pg_ctlcluster', [
      '--skip-systemctl-redirect',
      clusters[0] as string,
      'main',
      'restart',
      '-m',
      'fast',
    ]);
    await until(() => acked.length > before + 500, 'appends resumed after the restart', 30_000);
    running = false;
    await Promise.all(callers);
    await log.close();
    assert.ok(failed > 0, 'the restart failed the batches in flight');
    const read = new Log({ store: url, readOnly: true });
    const seqOf = new Map<string, number>();
    for await (const entry of read.read()) seqOf.set(entry.id, entry.seq);
    await read.close();
    for (const a of acked) assert.equal(seqOf.get(a.id), a.seq, 'every acknowledged entry, at its seq');
    const result = await verifyStore(url);
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    assert.equal(result.size, seqOf.size, 'no duplicate');
  });
});
