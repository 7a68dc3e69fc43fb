/** How the CLI shows things to a person: the entry table and the verify progress bar. */
import type { Entry } from '../entry.js';
import type { VerifyProgress } from '../store/store.js';

/**
 * Characters a terminal would act on or not show: C0 and C1 controls, bidi
 * controls (which reorder what follows), and characters drawn as nothing: the
 * zero-width ones (which let `alice\u200b` pass for `alice`), the soft hyphen,
 * the combining grapheme joiner, the Mongolian vowel separator, the Hangul
 * fillers, the tag characters. Entries can hold all but the controls; a
 * table for a person shows them escaped.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/u;
const INVISIBLE =
  /\u034f|[\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\u3164\ufeff\uffa0\u{e0000}-\u{e007f}]/u;
const HIDDEN = new RegExp(`${CONTROLS.source}|${INVISIBLE.source}`, 'gu');

/** `n` with commas between thousands, as 4,096: without toLocaleString, whose first call loads ICU (20 ms). */
export function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `text` with every hidden character written as \u{…}. */
export function visible(text: string): string {
  return text.replace(HIDDEN, (c) => `\\u{${(c.codePointAt(0) as number).toString(16)}}`);
}

/** One table row per entry: seq, time, actor, action, outcome, targets. */
export function tableRow(entry: Entry): string {
  const targets = entry.targets?.map(visible).join(',') ?? '';
  return [
    String(entry.seq).padStart(7),
    entry.ts,
    visible(entry.actor).padEnd(16),
    visible(entry.action).padEnd(24),
    visible(entry.outcome ?? '-').padEnd(8),
    targets,
  ]
    .join('  ')
    .trimEnd();
}

export const TABLE_HEADER = `${'SEQ'.padStart(7)}  ${'TIME'.padEnd(24)}  ${'ACTOR'.padEnd(16)}  ${'ACTION'.padEnd(24)}  ${'OUTCOME'.padEnd(8)}  TARGETS`;

/** A progress line for a terminal, redrawn in place. */
export class ProgressBar {
  readonly #stream: NodeJS.WriteStream;
  readonly #start = performance.now();
  #drawn = false;

  constructor(stream: NodeJS.WriteStream) {
    this.#stream = stream;
  }

  /** Redraws: bar, percentage and MB/s (entries are not known mid-way when ranges are verified in parallel). */
  update(p: VerifyProgress): void {
    const fraction = p.totalBytes === 0 ? 1 : p.bytes / p.totalBytes;
    const width = 30;
    const filled = Math.round(fraction * width);
    const seconds = Math.max((performance.now() - this.#start) / 1000, 1e-3);
    const mbps = (p.bytes / 1e6 / seconds).toFixed(1);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    this.#stream.write(`\r[${bar}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${mbps} MB/s `);
    this.#drawn = true;
  }

  done(): void {
    if (this.#drawn) this.#stream.write('\n');
    this.#drawn = false;
  }
}
