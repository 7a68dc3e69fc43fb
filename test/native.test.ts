/**
 * The native addon. Its Merkle row hasher must compute exactly what the
 * JavaScript one does (SHA-256(0x01 || left || right) per pair), refuse
 * malformed arguments, and be the one in use on the Node versions evident
 * supports (Node exports its OpenSSL's SHA256 to addons). Its syncUnlock
 * must release the lock without the event loop's help, and only once the
 * sync succeeded. Its leafHashes must read exactly a log's own chain fields
 * out of its lines, and nothing from lines that are not such a chain.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Log } from '../src/log.js';
import { hashPairs, nodeHash } from '../src/merkle/hash.js';
import { TreeEdge } from '../src/merkle/tiles.js';
import { subtreesOf, treeRoot } from '../src/merkle/tree.js';
import {
  ed25519Key,
  ed25519Sign,
  flock,
  leafHashes,
  nativeHashing,
  pairHasher,
  syncUnlock,
  writeCheckpoint,
} from '../src/native.js';
import { checkpointNoteMaker } from '../src/note/checkpoint.js';
import { generateNoteKey, parseSignerKey, parseVerifierKey } from '../src/note/keys.js';
import { ed25519Signer, openNote } from '../src/note/note.js';
import { tempDir } from './helpers.js';

describe('the native pair hasher', () => {
  it(`is in use on Node ${process.version}`, () => {
    assert.equal(nativeHashing, true, 'the addon found no SHA256 in this Node: tree hashing falls back to JavaScript');
    assert.notEqual(pairHasher, hashPairs);
  });

  it('hashes every pair as an RFC 9162 interior node, like the JavaScript hasher', () => {
    for (const pairs of [0, 1, 2, 3, 64, 128, 255]) {
      const input = randomBytes(pairs * 64);
      const native = Buffer.alloc(pairs * 32);
      const js = Buffer.alloc(pairs * 32);
      pairHasher(input, native);
      hashPairs(input, js);
      assert.ok(native.equals(js), `${pairs} pairs`);
      for (let k = 0; k < pairs; k++) {
        const node = nodeHash(input.subarray(64 * k, 64 * k + 32), input.subarray(64 * k + 32, 64 * k + 64));
        assert.ok(native.subarray(32 * k, 32 * k + 32).equals(node));
      }
    }
  });

  it('refuses arguments that are not 64-byte pairs and an output half as long', () => {
    assert.throws(() => pairHasher(Buffer.alloc(63), Buffer.alloc(32)), RangeError);
    assert.throws(() => pairHasher(Buffer.alloc(128), Buffer.alloc(32)), RangeError);
    assert.throws(() => (pairHasher as (...a: unknown[]) => void)('x', Buffer.alloc(0)), TypeError);
  });

  it('gives a tree edge the same roots and tiles as the JavaScript hasher, append by append', () => {
    const leaves = Array.from({ length: 70_000 }, () => randomBytes(32));
    const reference = subtreesOf(leaves);
    const native = new TreeEdge(0, [], pairHasher);
    const js = new TreeEdge(0, [], hashPairs);
    let at = 0;
    for (const n of [1, 2, 253, 256, 1000, 3, 65_536, 949]) {
      const batch = leaves.slice(at, at + n);
      at += batch.length;
      const a = [...native.append(batch), ...native.partials()];
      const b = [...js.append(batch), ...js.partials()];
      assert.deepEqual(
        a.map((t) => [t.level, t.index, t.hashes.toString('hex'), (t.inner ?? Buffer.alloc(0)).toString('hex')]),
        b.map((t) => [t.level, t.index, t.hashes.toString('hex'), (t.inner ?? Buffer.alloc(0)).toString('hex')]),
      );
      assert.ok(treeRoot(native.subtree, at).equals(treeRoot(reference, at)), `root at ${at}`);
      assert.ok(native.root().equals(treeRoot(reference, at)) && js.root().equals(native.root()), `root() at ${at}`);
    }
  });
});

describe('the native Ed25519 signer', () => {
  // The PKCS#8 prefix of a raw Ed25519 private key (RFC 8410), for node:crypto's reference signatures.
  const PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');

  it(`is in use on Node ${process.version}, and signs exactly as node:crypto does, again and again`, () => {
    assert.ok(ed25519Key !== undefined && ed25519Sign !== undefined, 'the addon found OpenSSL’s EVP functions');
    for (let k = 0; k < 20; k++) {
      const seed = randomBytes(32);
      const key = ed25519Key(seed);
      const reference = createPrivateKey({ key: Buffer.concat([PKCS8, seed]), format: 'der', type: 'pkcs8' });
      const messages = [Buffer.alloc(0), randomBytes(1 + k * 37), Buffer.from(`log.example/${k}\n${k}\nroot\n`)];
      // Each key signs several messages: every signature is made from a copy of the context set up once.
      for (const [i, message] of [...messages, ...messages].entries()) {
        assert.ok(ed25519Sign(key, message).equals(sign(null, message, reference)), `seed ${k}, message ${i}`);
      }
    }
  });

  it('refuses what is not a key and a Buffer', () => {
    assert.ok(ed25519Key !== undefined && ed25519Sign !== undefined);
    assert.throws(() => ed25519Key?.(Buffer.alloc(31)), TypeError);
    const key = ed25519Key(randomBytes(32));
    assert.throws(() => (ed25519Sign as (k: unknown, m: unknown) => Buffer)(key, 'text'), TypeError);
    assert.throws(() => (ed25519Sign as (k: unknown, m: unknown) => Buffer)({}, Buffer.alloc(1)), TypeError);
  });
});

describe('writeCheckpoint', () => {
  const generated = generateNoteKey('native.example/checkpoint');
  const noteKey = parseSignerKey(generated.signer);
  const verifier = parseVerifierKey(generated.verifier);
  const make = checkpointNoteMaker(noteKey.name, ed25519Signer(noteKey));
  function request(fd: number, known: Buffer, size: number, root: Buffer) {
    assert.ok(ed25519Key !== undefined);
    return {
      fd,
      known,
      head: Buffer.from(`${noteKey.name}\n`),
      signatureLine: Buffer.from(`\n— ${noteKey.name} `),
      keyHash: noteKey.keyHash,
      key: ed25519Key(noteKey.seed),
      size,
      root,
    };
  }

  it('over exactly the note it knows, writes the very note checkpointNoteMaker makes, and returns it', () => {
    assert.ok(writeCheckpoint !== undefined, 'the addon writes checkpoints');
    const path = join(tempDir(), 'checkpoint');
    let known = make(5, randomBytes(32));
    writeFileSync(path, known);
    const fd = openSync(path, 'r+');
    try {
      for (const size of [6, 99, 100, 65_536, 20_852_163, Number.MAX_SAFE_INTEGER]) {
        const root = randomBytes(32);
        const note = writeCheckpoint(request(fd, known, size, root));
        assert.ok(note !== null);
        assert.ok(note.equals(make(size, root)), `size ${size}`);
        assert.ok(readFileSync(path).equals(note), 'the file holds the note, whole');
        assert.equal(
          openNote(note.toString('utf8'), [verifier]).text,
          `${noteKey.name}\n${size}\n${root.toString('base64')}\n`,
        );
        known = note;
      }
      // A known note longer than the new one (a file never shrinks so, but the length is honoured): the rest is cut.
      const longer = Buffer.concat([known, Buffer.from('— other.example/x AAAA\n')]);
      writeFileSync(path, longer);
      const root = randomBytes(32);
      const note = writeCheckpoint(request(fd, longer, 7, root));
      assert.ok(note !== null && readFileSync(path).equals(note) && note.equals(make(7, root)));
    } finally {
      closeSync(fd);
    }
  });

  it('writes notes of a long origin too (2,000 bytes)', () => {
    assert.ok(writeCheckpoint !== undefined && ed25519Key !== undefined);
    const long = parseSignerKey(generateNoteKey(`log.example/${'x'.repeat(2000)}`).signer);
    const makeLong = checkpointNoteMaker(long.name, ed25519Signer(long));
    const path = join(tempDir(), 'checkpoint');
    const known = makeLong(1, randomBytes(32));
    writeFileSync(path, known);
    const fd = openSync(path, 'r+');
    try {
      const root = randomBytes(32);
      const note = writeCheckpoint({
        fd,
        known,
        head: Buffer.from(`${long.name}\n`),
        signatureLine: Buffer.from(`\n— ${long.name} `),
        keyHash: long.keyHash,
        key: ed25519Key(long.seed),
        size: 2,
        root,
      });
      assert.ok(note !== null, 'the file held the known note');
      assert.ok(note.equals(makeLong(2, root)) && readFileSync(path).equals(note));
    } finally {
      closeSync(fd);
    }
  });

  it('writes nothing and returns null when the file holds anything but the note it knows', () => {
    assert.ok(writeCheckpoint !== undefined);
    const path = join(tempDir(), 'checkpoint');
    const known = make(5, randomBytes(32));
    const others = [
      Buffer.alloc(0),
      known.subarray(0, -1),
      Buffer.concat([known, Buffer.from('x')]),
      Buffer.from(known).fill(0x41, 3, 4),
      Buffer.alloc(16 * 1024 + 1, 0x41), // longer than a checkpoint can be
    ];
    for (const [i, other] of others.entries()) {
      writeFileSync(path, other);
      const fd = openSync(path, 'r+');
      try {
        assert.equal(writeCheckpoint(request(fd, known, 6, randomBytes(32))), null, `case ${i}`);
        assert.ok(readFileSync(path).equals(other), `case ${i}: the file is as it was`);
      } finally {
        closeSync(fd);
      }
    }
  });

  it('throws the errno code of a failed read or write, and refuses bad arguments', () => {
    assert.ok(writeCheckpoint !== undefined);
    const path = join(tempDir(), 'checkpoint');
    const known = make(5, randomBytes(32));
    writeFileSync(path, known);
    const closed = openSync(path, 'r');
    closeSync(closed);
    assert.throws(
      () => writeCheckpoint?.(request(closed, known, 6, randomBytes(32))),
      (error: NodeJS.ErrnoException) => error.code === 'EBADF' && error.syscall === 'pread',
    );
    const readOnly = openSync(path, 'r');
    try {
      assert.throws(
        () => writeCheckpoint?.(request(readOnly, known, 6, randomBytes(32))),
        (error: NodeJS.ErrnoException) => error.code === 'EBADF' && error.syscall === 'pwrite',
      );
      for (const bad of [
        { ...request(readOnly, known, 6, randomBytes(31)) },
        { ...request(readOnly, known, -1, randomBytes(32)) },
        { ...request(readOnly, known, 1.5, randomBytes(32)) },
        { ...request(readOnly, known, 6, randomBytes(32)), key: {} },
      ]) {
        assert.throws(() => writeCheckpoint?.(bad), TypeError);
      }
    } finally {
      closeSync(readOnly);
    }
    assert.ok(readFileSync(path).equals(known));
  });
});

describe('syncUnlock', () => {
  for (const yieldCpu of [false, true]) {
    it(`releases the lock once the data is synced, while the event loop is still busy (yieldCpu: ${yieldCpu})`, async () => {
      const dir = tempDir();
      const data = openSync(join(dir, 'data'), 'a');
      const lock = openSync(join(dir, 'lock'), 'a');
      const other = openSync(join(dir, 'lock'), 'a'); // another open file description: another "writer"
      try {
        assert.equal(flock.tryLock(lock), true);
        writeSync(data, 'some bytes\n');
        const synced = syncUnlock(data, lock, yieldCpu);
        // Block this thread: a release that needed the event loop could not happen before the deadline.
        const deadline = Date.now() + 10_000;
        let taken = false;
        while (!taken && Date.now() < deadline) taken = flock.tryLock(other);
        assert.equal(taken, true, 'another descriptor took the lock while the event loop was blocked');
        await synced;
        flock.unlock(other);
      } finally {
        for (const fd of [data, lock, other]) closeSync(fd);
      }
    });
  }

  it('rejects with the errno code when the sync fails, and keeps the lock', async () => {
    const dir = tempDir();
    const lock = openSync(join(dir, 'lock'), 'a');
    const other = openSync(join(dir, 'lock'), 'a');
    const closed = openSync(join(dir, 'data'), 'a');
    closeSync(closed); // a descriptor number that is no longer open: fdatasync fails with EBADF
    try {
      assert.equal(flock.tryLock(lock), true);
      await assert.rejects(syncUnlock(closed, lock), (error: NodeJS.ErrnoException) => {
        assert.equal(error.code, 'EBADF');
        assert.equal(error.syscall, 'fdatasync');
        assert.match(error.message, /EBADF/);
        return true;
      });
      assert.equal(flock.tryLock(other), false, 'the lock is still held after a failed sync');
      flock.unlock(lock);
      assert.equal(flock.tryLock(other), true);
    } finally {
      for (const fd of [lock, other]) closeSync(fd);
    }
  });

  it('refuses arguments that are not two descriptors and a boolean', () => {
    assert.throws(() => (syncUnlock as (...a: unknown[]) => unknown)(1), TypeError);
    assert.throws(() => (syncUnlock as (...a: unknown[]) => unknown)('1', 2), TypeError);
    assert.throws(() => (syncUnlock as (...a: unknown[]) => unknown)(1, 2, 'yes'), TypeError);
  });
});

describe('leafHashes', () => {
  /** A real log's lines (some entries with `hash` and `prev` inside their data), and its entries as parsed. */
  async function logLines(): Promise<{ lines: string[]; entries: { hash: string; prev: string }[] }> {
    const dir = tempDir();
    const log = await Log.open({ dir, create: true });
    for (let i = 0; i < 40; i++) {
      const data = i % 3 === 0 ? { hash: 'f'.repeat(64), prev: '0'.repeat(64), note: '"hash":"' } : { i };
      await log.append({ actor: `agent-${i % 4}`, action: 'file.edit', data, targets: [`"prev":"${i}`] });
    }
    await log.close();
    const lines = readFileSync(join(dir, 'log.jsonl'), 'utf8').split('\n').slice(0, -1);
    return { lines, entries: lines.map((line) => JSON.parse(line) as { hash: string; prev: string }) };
  }
  const bytesOf = (lines: string[]) => Buffer.from(lines.map((line) => `${line}\n`).join(''));

  it("reads the first line's prev, then every line's hash, as the log wrote them", async () => {
    const { lines, entries } = await logLines();
    for (const [from, to] of [
      [0, 1],
      [0, 40],
      [7, 8],
      [13, 29],
    ] as const) {
      const hashes = leafHashes(bytesOf(lines.slice(from, to)), to - from);
      assert.ok(hashes !== null, `lines ${from}..${to}`);
      const expected = [entries[from]?.prev, ...entries.slice(from, to).map((e) => e.hash)].join('');
      assert.equal(hashes.toString('hex'), expected);
    }
  });

  it('reads nothing from lines that are not `count` chained lines', async () => {
    const { lines } = await logLines();
    const some = lines.slice(10, 20);
    const cases: [string, Buffer, number][] = [
      ['one line too few', bytesOf(some), 11],
      ['one line too many', bytesOf(some), 9],
      ['a line missing', bytesOf([...some.slice(0, 4), ...some.slice(5)]), 9],
      ['two lines swapped', bytesOf([some[0], some[2], some[1]] as string[]), 3],
      ['no final newline', bytesOf(some).subarray(0, -1), 10],
      [
        'a hash in upper case',
        bytesOf(
          some.map((l, k) =>
            k === 3 ? l.replace(/"hash":"(\w+)"/, (_, h: string) => `"hash":"${h.toUpperCase()}"`) : l,
          ),
        ),
        10,
      ],
      ['a hash one digit short', bytesOf(some.map((l, k) => (k === 3 ? l.replace(/"hash":"\w/, '"hash":"') : l))), 10],
      ['a line without prev', bytesOf(some.map((l, k) => (k === 5 ? l.replaceAll('"prev":', '"prior":') : l))), 10],
    ];
    for (const [what, bytes, count] of cases) assert.equal(leafHashes(bytes, count), null, what);
  });

  it('refuses arguments that are not a Buffer and a count of at least one line', () => {
    const call = leafHashes as (...a: unknown[]) => unknown;
    assert.throws(() => call('x', 1), TypeError);
    assert.throws(() => call(Buffer.from('\n'), 0), TypeError);
    assert.throws(() => call(Buffer.from('\n')), TypeError);
  });
});
