/**
 * `evident witness serve`: a witness behind HTTP, as C2SP tlog-witness says.
 *
 *   POST /add-checkpoint   body: "old <size>\n", up to 63 base64 consistency
 *                          proof lines, an empty line, a signed checkpoint
 *
 *   200  this witness's cosignature line (text/plain)
 *   400  a malformed body, old > the checkpoint's size
 *   403  no signature by a key the witness trusts for that origin, or one by
 *        such a key that does not verify
 *   404  an origin the witness does not witness
 *   409  `old` is not the size it last cosigned, or that size with another
 *        root: the body is that size (text/x.tlog.size)
 *   422  the consistency proof does not verify (a proof from 0, or between
 *        equal sizes, is empty), or a size-0 checkpoint's root is not the
 *        empty tree's
 *
 * The check and the new state are one atomic step (witness.ts): concurrent
 * submissions for one origin cannot both advance from the same size.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { EvidentError, WitnessError } from '../errors.js';
import { HASH_SIZE, type Hash } from '../merkle/hash.js';
import { checkpointOfNote } from '../note/checkpoint.js';
import type { PublicNoteKey } from '../note/keys.js';
import { openNote } from '../note/note.js';
import type { Witness } from '../witness.js';

export interface WitnessServerOptions {
  witness: Witness;
  /** The logs it witnesses: their keys, whose names are their origins. */
  logs: readonly PublicNoteKey[];
  logger?: boolean | object;
}

/** The status for each code a submission can cause. */
const STATUS: Partial<Record<string, number>> = {
  EVIDENT_BAD_REQUEST: 400,
  EVIDENT_NOTE_MALFORMED: 400,
  EVIDENT_NOTE_UNVERIFIED: 403,
  EVIDENT_NOTE_BAD_SIGNATURE: 403,
  EVIDENT_UNTRUSTED: 403,
  EVIDENT_NOT_FOUND: 404,
  EVIDENT_WITNESS_CONFLICT: 409,
  EVIDENT_WITNESS_FORK: 409,
  EVIDENT_BAD_PROOF: 422,
};

const MAX_BODY = 1 << 20; // room for 100 signature lines of post-quantum size
const MAX_PROOF = 63;

export function buildWitnessServer(options: WitnessServerOptions): FastifyInstance {
  const app = Fastify({ logger: options.logger ?? false, bodyLimit: MAX_BODY, requestTimeout: 30_000 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body as Buffer));
    } catch {
      done(new EvidentError('EVIDENT_BAD_REQUEST', 'the body is not UTF-8'));
    }
  });
  app.setErrorHandler((error: Error & { code?: string; statusCode?: number }, request, reply) => {
    if (error instanceof WitnessError && error.size !== undefined) {
      return reply.code(409).type('text/x.tlog.size').send(`${error.size}\n`);
    }
    let status = STATUS[error.code ?? ''] ?? (typeof error.statusCode === 'number' ? error.statusCode : 500);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') status = 413;
    if (status >= 500) request.log.error(error);
    return reply
      .code(status)
      .type('text/plain; charset=utf-8')
      .send(`${status >= 500 ? 'the witness failed; see its log' : error.message}\n`);
  });

  // The one endpoint is POST's: another method there is told so (405), not that nothing is there (404).
  app.route({
    method: ['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH'],
    url: '/add-checkpoint',
    handler: (_request, reply) =>
      reply.code(405).header('allow', 'POST').type('text/plain; charset=utf-8').send('add-checkpoint takes POST\n'),
  });
  app.post('/add-checkpoint', async (request, reply) => {
    const { old, proof, note } = parseSubmission(typeof request.body === 'string' ? request.body : '');
    const origin = checkpointOfNote(note).origin; // a malformed checkpoint is a bad request
    const keys = options.logs.filter((key) => key.name === origin);
    if (keys.length === 0) throw new EvidentError('EVIDENT_NOT_FOUND', `this witness does not witness ${origin}`);
    // Every trusted key's signature must verify (403 if one does not), not only the one a key below accepts:
    // a bad signature by one trusted key is refused even when another trusted key signed too.
    openNote(note, keys);
    let failure: unknown;
    for (const key of keys) {
      try {
        const cosignature = await options.witness.addCheckpoint(old, proof, note, key);
        return reply.type('text/plain; charset=utf-8').send(cosignature);
      } catch (error) {
        const code = (error as { code?: string }).code ?? '';
        if (STATUS[code] !== 403) throw error; // the right key, and another problem
        failure = error;
      }
    }
    throw failure;
  });
  return app;
}

/** The parts of an add-checkpoint body; throws EVIDENT_BAD_REQUEST naming what is wrong. */
export function parseSubmission(body: string): { old: number; proof: Hash[]; note: string } {
  const bad = (problem: string): never => {
    throw new EvidentError('EVIDENT_BAD_REQUEST', problem);
  };
  const lines = body.split('\n');
  const oldLine = /^old (0|[1-9][0-9]{0,15})$/.exec(lines[0] ?? '');
  if (oldLine === null) bad('the body starts with "old <size>"');
  const old = Number((oldLine as RegExpExecArray)[1]);
  if (!Number.isSafeInteger(old)) bad('the old size is too large');
  const proof: Hash[] = [];
  let at = 1;
  for (; at < lines.length && lines[at] !== ''; at++) {
    const line = lines[at] as string;
    const hash = Buffer.from(line, 'base64');
    if (hash.length !== HASH_SIZE || hash.toString('base64') !== line) bad(`proof line ${at} is not a base64 hash`);
    proof.push(hash);
  }
  if (proof.length > MAX_PROOF) bad(`at most ${MAX_PROOF} proof lines`);
  if (at >= lines.length) bad('no empty line before the checkpoint');
  const note = lines.slice(at + 1).join('\n');
  if (note === '') bad('no checkpoint after the empty line');
  return { old, proof, note };
}
