/**
 * A worker thread that extends a Merkle tree's right edge (merkle/tiles.ts)
 * for FileTree, so that the hashing of a large batch of leaves — one node
 * hash per leaf — happens beside the event loop instead of on it. It keeps
 * its own copy of the edge (with the inner nodes it has hashed) between
 * requests; a request that names another size carries the edge to start from.
 */
import { parentPort } from 'node:worker_threads';
import { TILE_WIDTH, TreeEdge } from '../../merkle/tiles.js';
import { treeRoot } from '../../merkle/tree.js';
import { type EdgeRequest, type EdgeResponse, packHashes, unpackHashes } from './edge-hasher.js';

let edge = new TreeEdge();

parentPort?.on('message', (request: EdgeRequest) => {
  let response: EdgeResponse;
  const transfer: ArrayBuffer[] = [];
  try {
    if (request.tiles !== undefined) edge = new TreeEdge(request.size, request.tiles.map(unpackHashes));
    if (edge.size !== request.size) throw new Error(`the worker's edge has ${edge.size} leaves, not ${request.size}`);
    const full = [];
    for (const write of edge.append(unpackHashes(request.leaves))) {
      if (write.hashes.length < TILE_WIDTH || write.inner === undefined) continue;
      full.push({
        level: write.level,
        index: write.index,
        hashes: packHashes(write.hashes),
        inner: packHashes(write.inner),
      });
    }
    const tiles = edge.tiles().map(packHashes);
    const root = treeRoot(edge.subtree, edge.size);
    response = { id: request.id, size: edge.size, root, tiles, full };
    for (const t of full) transfer.push(t.hashes.buffer as ArrayBuffer, t.inner.buffer as ArrayBuffer);
    for (const t of tiles) transfer.push(t.buffer as ArrayBuffer);
  } catch (error) {
    edge = new TreeEdge(); // the next request must bring its edge
    response = { id: request.id, error: error instanceof Error ? error.message : String(error) };
  }
  parentPort?.postMessage(response, transfer);
});
