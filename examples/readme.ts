/**
 * The library example in README.md, which a test keeps identical to this file (imports aside), type-checks
 * with the project and runs in an empty directory.
 */
import { Log } from '../src/index.js';
import { generateNoteKey, parseReceipt, parseVerifierKey, verifyReceipt } from '../src/verify.js';

// A log in ./audit. new Log() does no I/O: it opens on first use, once, however many callers race to it.
const log = new Log({ store: 'audit', create: true });
const entry = await log.append({ actor: 'agent:reviewer', action: 'proposal.approve', targets: ['pr/42'] });
await log.appendBatch([
  { actor: 'ci', action: 'build.start' },
  { actor: 'ci', action: 'build.finish', outcome: 'success' },
]); // one commit: all of them or none
log.record({ actor: 'server', action: 'http.request', data: { path: '/admin' } }); // returns at once
await log.flush(); // everything recorded is durable
for await (const e of log.read({ actor: 'ci' })) console.log(e.seq, e.action);
const { ok, size, failure } = await log.verify(); // failure names the first bad entry
console.log(entry.hash, ok, size, failure);
await log.close();

// A signing log: its checkpoints are signed with a key made here, or by `evident keygen`.
const { signer, verifier } = generateNoteKey('audit.example.com/log');
await Log.init({ store: 'signed', signingKey: signer });
const signed = new Log({ store: 'signed', key: signer });
const approval = await signed.append({ actor: 'alice', action: 'payout.approve' });
const receipt = await signed.receipt(approval.seq); // signs (or waits for) a checkpoint covering it
await signed.close();

// Anyone can check the receipt offline, with the entry and the log's verifier key alone.
const checkpoint = verifyReceipt(parseReceipt(receipt), approval, { log: parseVerifierKey(verifier) });
console.log(`entry ${approval.seq} is in ${checkpoint.origin} at size ${checkpoint.size}`);
