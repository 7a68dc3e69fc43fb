/**
 * Writers on separate hosts, for real: each "host" is a network namespace
 * joined by a veth pair to a PostgreSQL cluster this test starts for itself,
 * listening on the veth addresses. The links get latency and loss (tc
 * netem), and one host is partitioned away and back (its link down) while
 * every host appends: no acknowledged entry is lost, the chain never forks,
 * the cut-off host fails closed (errors, not hangs, and it does not keep the
 * head locked for the others), and it appends again once healed.
 * Where namespaces cannot be made (not root, no ip(8)), it says so and skips.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Log } from '../../../src/log.js';
import { FIXTURES } from '../../helpers.js';

const BIN = '/usr/lib/postgresql/15/bin';
const TAG = `evt${process.pid % 10000}`;
const PORT = 55000 + (process.pid % 1000);
const HOSTS = [1, 2] as const;
const ns = (h: number) => `${TAG}h${h}`;
const serverSide = (h: number) => `${TAG}s${h}`; // the veth end beside the server
const hostSide = (h: number) => `${TAG}c${h}`; // the end inside the host's namespace
const serverAddress = (h: number) => `10.231.${h}.1`;

const sh = (command: string, args: string[]) => execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
const inHost = (h: number, command: string[]) => sh('ip', ['netns', 'exec', ns(h), ...command]);

/** Why this machine cannot run the test, or null. */
function cannot(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (!existsSync(join(BIN, 'initdb'))) return `no PostgreSQL binaries in ${BIN}`;
  try {
    sh('ip', ['netns', 'add', `${TAG}probe`]);
    sh('ip', ['netns', 'del', `${TAG}probe`]);
  } catch (error) {
    return `cannot make a network namespace here: ${(error as Error).message.split('\n')[0]}`;
  }
  return null;
}

const why = cannot();
let data = '';
let netem = '';

function teardown(): void {
  if (data !== '') {
    try {
      sh('runuser', ['-u', 'postgres', '--', join(BIN, 'pg_ctl'), '-D', data, 'stop', '-m', 'immediate']);
    } catch {}
    rmSync(data, { recursive: true, force: true });
  }
  for (const h of HOSTS) {
    try {
      sh('ip', ['netns', 'del', ns(h)]); // takes its end of the veth pair, and so the pair, with it
    } catch {}
  }
}

describe('writers on separate hosts', { skip: why ?? false }, () => {
  before(() => {
    teardown();
    for (const h of HOSTS) {
      sh('ip', ['netns', 'add', ns(h)]);
      sh('ip', ['link', 'add', serverSide(h), 'type', 'veth', 'peer', 'name', hostSide(h)]);
      sh('ip', ['link', 'set', hostSide(h), 'netns', ns(h)]);
      sh('ip', ['addr', 'add', `${serverAddress(h)}/24`, 'dev', serverSide(h)]);
      sh('ip', ['link', 'set', serverSide(h), 'up']);
      inHost(h, ['ip', 'addr', 'add', `10.231.${h}.2/24`, 'dev', hostSide(h)]);
      inHost(h, ['ip', 'link', 'set', hostSide(h), 'up']);
      inHost(h, ['ip', 'link', 'set', 'lo', 'up']);
      // Latency and loss both ways, where the kernel has netem (sch_netem); the partition below needs only ip(8).
      try {
        sh('tc', ['qdisc', 'add', 'dev', serverSide(h), 'root', 'netem', 'delay', '5ms', '2ms', 'loss', '1%']);
        inHost(h, ['tc', 'qdisc', 'add', 'dev', hostSide(h), 'root', 'netem', 'delay', '5ms', '2ms', 'loss', '1%']);
        netem = 'latency 5±2 ms and 1% loss on every link';
      } catch (error) {
        netem = `no latency or loss injected: tc netem failed (${(error as { stderr?: Buffer }).stderr?.toString().trim()})`;
      }
    }
    data = mkdtempSync(join(tmpdir(), 'evident-cluster-'));
    chownSync(data, 101, 104);
    const postgres = (args: string[]) => sh('runuser', ['-u', 'postgres', '--', ...args]);
    postgres([join(BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    writeFileSync(join(data, 'pg_hba.conf'), 'local all all trust\nhost all all 10.231.0.0/16 trust\n');
    const listen = HOSTS.map(serverAddress).join(',');
    postgres([
      join(BIN, 'pg_ctl'),
      '-D',
      data,
      '-w',
      '-l',
      join(data, 'server.log'),
      '-o',
      `-c listen_addresses=${listen} -p ${PORT} -c unix_socket_directories=${data}`,
      'start',
    ]);
  });
  after(teardown);

  it('no acknowledged loss, no fork; a partitioned host fails closed and resumes', async (t) => {
    t.diagnostic(netem);
    // Short timeouts, so that the partition (4 s) outlasts them.
    const url = (h: number) =>
      `postgres://postgres@${serverAddress(h)}:${PORT}/postgres?schema=hosts` +
      '&query_timeout=1500&connectionTimeoutMillis=1500&idle_in_transaction_session_timeout=1500';
    await Log.init({ store: url(1) });
    const RUN_MS = 9000;
    const started = Date.now();
    const writers = HOSTS.flatMap((h) =>
      [0, 1].map(
        (w) =>
          new Promise<{
            name: string;
            acked: { seq: number; id: string; at: number }[];
            failed: { code: string; at: number }[];
          }>((resolve, reject) => {
            const child = spawn('ip', [
              'netns',
              'exec',
              ns(h),
              process.execPath,
              join(FIXTURES, 'host-writer.js'),
              url(h),
              `host${h}-${w}`,
              String(RUN_MS),
              '8',
            ]);
            let out = '';
            let err = '';
            child.stdout.setEncoding('utf8').on('data', (d: string) => {
              out += d;
            });
            child.stderr.setEncoding('utf8').on('data', (d: string) => {
              err += d;
            });
            child.on('close', (code) =>
              code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`host${h}-${w} exited ${code}: ${err}`)),
            );
          }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const cutAt = Date.now();
    sh('ip', ['link', 'set', serverSide(2), 'down']);
    await new Promise((resolve) => setTimeout(resolve, 4000));
    sh('ip', ['link', 'set', serverSide(2), 'up']);
    const healedAt = Date.now();
    const results = await Promise.all(writers);
    assert.ok(Date.now() - started < RUN_MS + 20_000, 'no writer hung');

    const log = new Log({ store: url(1), readOnly: true });
    const result = await log.verify();
    assert.equal(result.ok, true, `no fork, nothing half there: ${JSON.stringify(result.failure)}`);
    const seqOf = new Map<string, number>();
    for await (const entry of log.read()) seqOf.set(entry.id, entry.seq);
    await log.close();
    assert.equal(seqOf.size, result.size, 'no duplicate');
    for (const r of results) {
      for (const a of r.acked) assert.equal(seqOf.get(a.id), a.seq, `${r.name}: acknowledged entry ${a.seq} is there`);
    }
    const host = (h: number) => results.filter((r) => r.name.startsWith(`host${h}`));
    const cutOff = host(2).flatMap((r) => r.failed);
    assert.ok(cutOff.length > 0, 'the partitioned host was told its appends failed');
    for (const failure of cutOff) assert.equal(failure.code, 'EVIDENT_WRITE_FAILED');
    const during = host(1).flatMap((r) => r.acked.filter((a) => a.at > cutAt + 2000 && a.at < healedAt));
    assert.ok(during.length > 0, 'the other host went on appending during the partition: the head was not held');
    const resumed = host(2).flatMap((r) => r.acked.filter((a) => a.at > healedAt));
    assert.ok(resumed.length > 0, 'the partitioned host appends again once healed');
  });
});
