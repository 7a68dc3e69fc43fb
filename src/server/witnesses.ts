/**
 * A log asking its witnesses to cosign (C2SP tlog-witness, the client's
 * side): each checkpoint this process signs is sent to every witness of the
 * policy that has a URL, with a consistency proof from the size the witness
 * last cosigned; the cosignatures that verify under the witness's key are
 * kept with the log (Log.addCosignatures), so /checkpoint and receipts carry
 * them. Pushing runs beside appends and never holds them up: a witness that
 * is down is tried again with the next checkpoint, and its state is in
 * /metrics.
 */
import { causeOf } from '../client/remote-log.js';
import { checkpointOfNote } from '../note/checkpoint.js';
import type { PublicNoteKey } from '../note/keys.js';
import { openNote } from '../note/note.js';
import type { PolicyWitness } from '../note/policy.js';

/** What pushing needs of the log. */
export interface CosignedLog {
  consistencyProof(size1: number, size2: number): Promise<Buffer[]>;
  addCosignatures(note: string, witnesses: readonly PublicNoteKey[]): Promise<unknown>;
}

/** One witness as the log sees it. */
export interface WitnessStatus {
  name: string;
  /** The size the witness last cosigned, as far as this process knows (null: not known yet). */
  size: number | null;
  /** When it last cosigned (ms since the epoch), or null. */
  cosignedAt: number | null;
  /** The last push's failure, or null after a success. */
  error: string | null;
}

/** A witness being pushed to: the checkpoint waiting for it, and the push in flight. */
interface Pushed {
  witness: PolicyWitness;
  status: WitnessStatus;
  running: Promise<void> | null;
  next: string | null;
}

export class WitnessPusher {
  readonly #log: CosignedLog;
  readonly #witnesses: Pushed[];
  readonly #timeoutMs: number;

  readonly #onChange: ((status: WitnessStatus) => void) | undefined;

  /** `onChange`: told when a witness starts or stops failing (not at every push). */
  constructor(
    log: CosignedLog,
    witnesses: readonly PolicyWitness[],
    options: { timeoutMs?: number; onChange?: (status: WitnessStatus) => void } = {},
  ) {
    this.#log = log;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#onChange = options.onChange;
    this.#witnesses = witnesses
      .filter((w) => w.url !== undefined)
      .map((witness) => ({
        witness,
        status: { name: witness.name, size: null, cosignedAt: null, error: null },
        running: null,
        next: null,
      }));
  }

  /** Each witness's state. */
  status(): WitnessStatus[] {
    return this.#witnesses.map((w) => ({ ...w.status }));
  }

  /** Sends `note` to every witness: now, or after the push in flight to it (only the newest waits). */
  push(note: string): void {
    for (const w of this.#witnesses) {
      w.next = note;
      if (w.running === null) w.running = this.#drain(w);
    }
  }

  /** Resolves when nothing is being pushed. */
  async settled(): Promise<void> {
    while (this.#witnesses.some((w) => w.running !== null)) {
      await Promise.all(this.#witnesses.map((w) => w.running));
    }
  }

  async #drain(w: Pushed): Promise<void> {
    while (w.next !== null) {
      const note = w.next;
      w.next = null;
      const before = w.status.error;
      const first = w.status.cosignedAt === null;
      try {
        await this.#send(w.witness, w.status, note);
        w.status.error = null;
      } catch (error) {
        w.status.error = causeOf(error);
      }
      if (w.status.error !== before || (first && w.status.error === null)) this.#onChange?.({ ...w.status });
    }
    w.running = null;
  }

  /** One add-checkpoint exchange, starting from the size last known, again from the size a 409 tells. */
  async #send(witness: PolicyWitness, status: WitnessStatus, note: string): Promise<void> {
    const checkpoint = checkpointOfNote(note);
    const url = new URL('add-checkpoint', (witness.url as string).replace(/\/?$/, '/'));
    for (let attempt = 0; attempt < 3; attempt++) {
      const old = status.size ?? 0;
      if (old > checkpoint.size) {
        // Not a cosignature of this checkpoint: another process of this log is ahead of this one (its next
        // checkpoint will catch up), or this log was rolled back to a size the witness has seen past.
        throw new Error(
          `${witness.name} has cosigned size ${old} of this log, more than this checkpoint's ${checkpoint.size}: ` +
            'another server of this log is ahead, or the log was rolled back',
        );
      }
      const proof = old > 0 && old < checkpoint.size ? await this.#log.consistencyProof(old, checkpoint.size) : [];
      const body = `old ${old}\n${proof.map((hash) => `${hash.toString('base64')}\n`).join('')}\n${note}`;
      const response = await fetch(url, {
        method: 'POST',
        body,
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      const text = await response.text();
      if (response.status === 409 && response.headers.get('content-type')?.startsWith('text/x.tlog.size')) {
        const size = Number(text.trim());
        if (!Number.isSafeInteger(size) || size < 0) throw new Error(`${witness.name} answered 409 with ${text}`);
        if (size === old) throw new Error(`${witness.name} holds another tree at size ${size}: a fork`);
        status.size = size;
        continue;
      }
      if (response.status !== 200) throw new Error(`${witness.name} answered ${response.status}: ${text.trim()}`);
      // Only its own lines are kept, and only if they verify under its key.
      const own = text.split('\n').filter((line) => line.startsWith(`\u2014 ${witness.key.name} `));
      const cosigned = `${note}${own.map((line) => `${line}\n`).join('')}`;
      const opened = openNote(cosigned, [witness.key]);
      if (!opened.sigs.some((sig) => sig.name === witness.key.name && sig.keyHash === witness.key.keyHash)) {
        throw new Error(`${witness.name} answered without a cosignature by its key`);
      }
      await this.#log.addCosignatures(cosigned, [witness.key]);
      status.size = checkpoint.size;
      status.cosignedAt = Date.now();
      return;
    }
    throw new Error(`${witness.name} kept answering 409`);
  }
}
