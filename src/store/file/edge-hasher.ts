/**
 * Extends a tree's right edge on a worker thread (edge-worker.ts): the
 * client side. The worker starts on first use and does not keep the process
 * alive; requests are answered in order.
 */
import { Worker } from 'node:worker_threads';
import type { Hash } from '../../merkle/hash.js';
import { HASH_SIZE } from '../../merkle/hash.js';
import { hashesAtTileLevel, TILE_WIDTH, type TileWrite, TreeEdge } from '../../merkle/tiles.js';

export interface EdgeRequest {
  id: number;
  /** The size of the edge the leaves are appended to. */
  size: number;
  /** That edge's partial tiles, when the worker's copy is not at `size`. */
  tiles?: Uint8Array[];
  /** The leaf hashes, concatenated. */
  leaves: Uint8Array;
}

export type EdgeResponse =
  | {
      id: number;
      size: number;
      root: Uint8Array;
      /** The new edge's partial tiles, one per tile level. */
      tiles: Uint8Array[];
      /** Tiles that filled, with their inner nodes. */
      full: { level: number; index: number; hashes: Uint8Array; inner: Uint8Array }[];
    }
  | { id: number; error: string };

/** What an append on the worker returns: the new edge, its root, and every tile that changed. */
export interface EdgeAppend {
  edge: TreeEdge;
  root: Hash;
  writes: TileWrite[];
}

/** Hashes concatenated into one buffer (32 bytes each), for a message. */
export function packHashes(hashes: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(hashes.length * HASH_SIZE);
  hashes.forEach((hash, k) => {
    out.set(hash, k * HASH_SIZE);
  });
  return out;
}

/** The hashes in a packed buffer, as Buffers viewing it. */
export function unpackHashes(packed: Uint8Array): Hash[] {
  const hashes: Hash[] = new Array(packed.byteLength / HASH_SIZE);
  for (let k = 0, at = packed.byteOffset; k < hashes.length; k++, at += HASH_SIZE) {
    hashes[k] = Buffer.from(packed.buffer, at, HASH_SIZE);
  }
  return hashes;
}

export class EdgeHasher {
  #worker: Worker | null = null;
  /** The size of the worker's copy of the edge; -1 when it must be sent. */
  #workerSize = -1;
  #next = 0;
  readonly #waiting = new Map<number, { resolve: (r: EdgeResponse) => void; reject: (e: unknown) => void }>();

  /** Appends `leaves` to (a copy of) `edge` on the worker. */
  async append(edge: TreeEdge, leaves: readonly Hash[]): Promise<EdgeAppend> {
    const before = edge.size;
    const request: EdgeRequest = { id: this.#next++, size: before, leaves: packHashes(leaves) };
    if (this.#workerSize !== before) request.tiles = edge.tiles().map(packHashes);
    this.#workerSize = -1; // until the answer says otherwise
    const response = await this.#ask(request);
    if ('error' in response) throw new Error(`the tree's hashing thread failed: ${response.error}`);
    this.#workerSize = response.size;
    const tiles = response.tiles.map(unpackHashes);
    const next = new TreeEdge(response.size, tiles);
    const writes: TileWrite[] = response.full.map((t) => ({
      level: t.level,
      index: t.index,
      hashes: unpackHashes(t.hashes),
      inner: unpackHashes(t.inner),
    }));
    // Partial tiles that changed: those of every level whose count of hashes changed.
    tiles.forEach((hashes, level) => {
      const count = hashesAtTileLevel(response.size, level);
      if (hashes.length > 0 && count !== hashesAtTileLevel(before, level)) {
        writes.push({ level, index: Math.floor(count / TILE_WIDTH), hashes });
      }
    });
    return {
      edge: next,
      root: Buffer.from(response.root.buffer, response.root.byteOffset, response.root.byteLength),
      writes,
    };
  }

  /** Stops the worker (a later append starts another). */
  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = null;
    this.#workerSize = -1;
    if (worker !== null) await worker.terminate();
  }

  #ask(request: EdgeRequest): Promise<EdgeResponse> {
    const worker = this.#start();
    return new Promise((resolve, reject) => {
      this.#waiting.set(request.id, { resolve, reject });
      worker.ref(); // while it owes an answer, the process waits for it
      worker.postMessage(request, [request.leaves.buffer as ArrayBuffer]);
    });
  }

  #start(): Worker {
    if (this.#worker !== null) return this.#worker;
    const worker = new Worker(new URL('./edge-worker.js', import.meta.url));
    worker.unref(); // an idle hasher never keeps the process alive (see #ask)
    worker.on('message', (response: EdgeResponse) => {
      const waiter = this.#waiting.get(response.id);
      this.#waiting.delete(response.id);
      if (this.#waiting.size === 0) worker.unref();
      waiter?.resolve(response);
    });
    const fail = (error: unknown) => {
      if (this.#worker === worker) {
        this.#worker = null;
        this.#workerSize = -1;
      }
      for (const waiter of this.#waiting.values()) waiter.reject(error);
      this.#waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the tree's hashing thread exited (${code})`)));
    this.#worker = worker;
    return worker;
  }
}
