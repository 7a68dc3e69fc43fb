/**
 * The service's Prometheus metrics, in the text exposition format (0.0.4):
 * counters and a latency histogram kept in memory, gauges read at scrape.
 */

import type { WitnessStatus } from './witnesses.js';

/** Upper bounds of the append latency histogram, seconds. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class Metrics {
  appendedEntries = 0;
  readonly #requests = new Map<number, number>();
  readonly #latency = BUCKETS.map(() => 0);
  #latencySum = 0;
  #latencyCount = 0;
  #batchSum = 0;
  #batchCount = 0;

  /** One append request answered with `status`, of `entries` entries (0 if refused), that took `seconds`. */
  appended(status: number, entries: number, seconds: number): void {
    this.#requests.set(status, (this.#requests.get(status) ?? 0) + 1);
    if (entries === 0) return;
    this.appendedEntries += entries;
    this.#batchSum += entries;
    this.#batchCount++;
    this.#latencySum += seconds;
    this.#latencyCount++;
    for (const [i, bound] of BUCKETS.entries()) if (seconds <= bound) this.#latency[i] = (this.#latency[i] ?? 0) + 1;
  }

  /** The exposition text, with the gauges given. */
  render(gauges: {
    pending: number;
    size: number;
    checkpointAge: number | null;
    checkpointSize: number | null;
    witnesses?: readonly WitnessStatus[];
  }): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
    };
    metric('evident_appended_entries_total', 'counter', 'Entries appended through this server.', [
      ['', this.appendedEntries],
    ]);
    metric(
      'evident_append_requests_total',
      'counter',
      'Append requests, by HTTP status.',
      [...this.#requests].sort(([a], [b]) => a - b).map(([status, n]) => [`{status="${status}"}`, n]),
    );
    metric('evident_append_batch_entries', 'summary', 'Entries per successful append request.', [
      ['_sum', this.#batchSum],
      ['_count', this.#batchCount],
    ]);
    lines.push(
      '# HELP evident_append_seconds Time from an append request to its durable commit.',
      '# TYPE evident_append_seconds histogram',
    );
    for (const [i, bound] of BUCKETS.entries()) {
      lines.push(`evident_append_seconds_bucket{le="${bound}"} ${this.#latency[i]}`);
    }
    lines.push(
      `evident_append_seconds_bucket{le="+Inf"} ${this.#latencyCount}`,
      `evident_append_seconds_sum ${this.#latencySum}`,
      `evident_append_seconds_count ${this.#latencyCount}`,
    );
    metric('evident_pending_entries', 'gauge', 'Entries accepted and waiting to be appended.', [['', gauges.pending]]);
    metric('evident_log_entries', 'gauge', 'Entries in the log.', [['', gauges.size]]);
    if (gauges.checkpointSize !== null) {
      metric('evident_checkpoint_entries', 'gauge', 'Entries the published checkpoint covers.', [
        ['', gauges.checkpointSize],
      ]);
    }
    if (gauges.checkpointAge !== null) {
      metric('evident_checkpoint_age_seconds', 'gauge', 'Seconds since this server saw the checkpoint change.', [
        ['', gauges.checkpointAge],
      ]);
    }
    const witnesses = gauges.witnesses ?? [];
    if (witnesses.length > 0) {
      const label = (w: WitnessStatus) => `{witness=${JSON.stringify(w.name)}}`;
      metric('evident_witness_up', 'gauge', 'Whether the last push of a checkpoint to the witness succeeded.', [
        ...witnesses.map((w): [string, number] => [label(w), w.error === null && w.cosignedAt !== null ? 1 : 0]),
      ]);
      metric('evident_witness_cosigned_entries', 'gauge', 'The size the witness last cosigned (-1: not known).', [
        ...witnesses.map((w): [string, number] => [label(w), w.size ?? -1]),
      ]);
      metric('evident_witness_cosigned_age_seconds', 'gauge', 'Seconds since the witness last cosigned (-1: never).', [
        ...witnesses.map((w): [string, number] => [
          label(w),
          w.cosignedAt === null ? -1 : (Date.now() - w.cosignedAt) / 1000,
        ]),
      ]);
    }
    return `${lines.join('\n')}\n`;
  }
}
