/**
 * Tree benchmarks for `npm run bench`: proof generation on a tree of N leaves
 * stored as tiles (built from synthetic leaf hashes: a proof's cost depends
 * on the tree, not on what the entries say), the tile reads each proof takes,
 * and the size of a receipt.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tree } from '../src/lifecycle/tree.js';
import { formatCheckpoint } from '../src/note/checkpoint.js';
import { generateNoteKey, parseSignerKey } from '../src/note/keys.js';
import { ed25519Signer, signNote } from '../src/note/note.js';
import { formatReceipt } from '../src/receipt.js';
import { type Files, nodeFiles } from '../src/store/file/files.js';
import { FileTiles } from '../src/store/file/tiles.js';

export interface ProofFigures {
  size: number;
  buildSeconds: number;
  inclusionMicros: number;
  consistencyMicros: number;
  tilesPerInclusion: number;
  tilesPerConsistency: number;
  receiptBytes: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Builds the tiles of a tree of `size` random leaves, then times proofs on a freshly opened copy. */
export async function proofFigures(size: number, samples = 200): Promise<ProofFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'evident-tree-bench-'));
  try {
    const started = performance.now();
    const builder = new Tree(new FileTiles(dir, nodeFiles));
    const chunk = 1 << 16;
    for (let at = 0; at < size; at += chunk) {
      builder.extend(randomBytes(32 * Math.min(chunk, size - at)));
      await builder.flush();
    }
    const buildSeconds = (performance.now() - started) / 1000;

    // Tile reads: reads from the tile levels' files.
    let tileOpens = 0;
    const levelFds = new Set<number>();
    const counting: Files = {
      ...nodeFiles,
      open: async (path, flags, mode) => {
        const fd = await nodeFiles.open(path, flags, mode);
        if (/\/tree\/\d+$/.test(path)) levelFds.add(fd);
        return fd;
      },
      read: (fd, buffer, offset, length, position) => {
        if (levelFds.has(fd)) tileOpens++;
        return nodeFiles.read(fd, buffer, offset, length, position);
      },
    };
    const tree = new Tree(new FileTiles(dir, counting));
    await tree.load(); // the edge, from the partial tiles
    const pick = () => Math.floor(Math.random() * size);

    const inclusion: number[] = [];
    tileOpens = 0;
    let proof: Buffer[] = [];
    let index = 0;
    for (let k = 0; k < samples; k++) {
      index = pick();
      const t = performance.now();
      proof = await tree.inclusionProof(index, size);
      inclusion.push((performance.now() - t) * 1000);
    }
    const tilesPerInclusion = tileOpens / samples;
    const consistency: number[] = [];
    tileOpens = 0;
    for (let k = 0; k < samples; k++) {
      const from = 1 + Math.floor(Math.random() * (size - 1));
      const t = performance.now();
      await tree.consistencyProof(from, size);
      consistency.push((performance.now() - t) * 1000);
    }
    const tilesPerConsistency = tileOpens / samples;

    const key = parseSignerKey(generateNoteKey('bench.example/log').signer);
    const note = signNote(formatCheckpoint({ origin: key.name, size, root: tree.root(), extensions: [] }), [
      ed25519Signer(key),
    ]);
    const receiptBytes = Buffer.byteLength(formatReceipt({ index, proof, checkpoint: note }));
    return {
      size,
      buildSeconds,
      inclusionMicros: median(inclusion),
      consistencyMicros: median(consistency),
      tilesPerInclusion,
      tilesPerConsistency,
      receiptBytes,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
