/** The HTTP service's commands: serve, token. */
import { existsSync, statSync } from 'node:fs';
import { InvalidOptionError } from '../errors.js';
import { Log } from '../log.js';
import { parsePolicy } from '../note/policy.js';
import { Replays } from '../server/replays.js';
import { addToken, readTokens, revokeToken } from '../server/tokens.js';
import { WitnessPusher } from '../server/witnesses.js';
import {
  type Command,
  DIR_HELP,
  listenAddress,
  listenOn,
  loggerOption,
  parse,
  parseWithPositionals,
  readFileArg,
  storeFlags,
  storeOption,
  UsageError,
  untilStopped,
  write,
} from './common.js';

export const SERVE_HELP: Record<string, string> = {
  serve: `Usage: evident serve [--listen HOST:PORT] [--tokens FILE] [--public-reads] [--key FILE] [--dir D]

Serves the log over HTTP until SIGINT or SIGTERM, then finishes what was accepted and signs a last checkpoint.
  POST /v1/entries                one entry (application/json), or an atomic batch (application/x-ndjson)
  GET  /v1/entries                ?actor=&action=&target=&since=&until=&after=SEQ&limit=N (JSON, or NDJSON by Accept)
  GET  /v1/entries/SEQ[/receipt]  one entry; its c2sp.org/tlog-proof receipt (?wait=SECONDS)
  GET  /v1/tail                   new entries as server-sent events (Last-Event-ID or ?after=SEQ resumes)
  GET  /checkpoint, /tile/…       the C2SP tlog-tiles read API; GET /v1/health
Requests carry Authorization: Bearer SECRET, from evident token add.
  --listen HOST:PORT  where to listen (default 127.0.0.1:8080)
  --tokens FILE       the token file (default: $EVIDENT_TOKENS); without one only public reads are served
  --public-reads      reads need no token
  --key FILE          a signing log's key (default: $EVIDENT_KEY, then the store's key file)
  --tls-cert FILE, --tls-key FILE   serve HTTPS with this certificate and key (PEM); or put a proxy in front
  --log-level L       request logs as JSON lines on stdout: info (default), warn, error, debug, silent
  --policy FILE       a C2SP tlog-policy: each checkpoint is sent to its witnesses that have a URL (C2SP
                      tlog-witness), and their cosignatures are served in /checkpoint and receipts
${DIR_HELP}`,
  token: `Usage: evident token add NAME --scopes append,read[,admin] [--actors PATTERN]... --tokens FILE
       evident token list --tokens FILE
       evident token revoke NAME --tokens FILE

add prints the new token's secret once, alone on stdout (TOKEN=$(evident token add …)); the file keeps only its
SHA-256, and is created mode 0600. --actors limits the actors its entries may have (* matches any characters:
ci-*). A running server sees changes within a second.`,
};

export const SERVE_COMMANDS: Record<string, Command> = {
  async serve(args) {
    const v = parse('serve', {
      args,
      strict: true,
      options: {
        ...storeFlags,
        listen: { type: 'string' },
        tokens: { type: 'string' },
        'public-reads': { type: 'boolean' },
        key: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'log-level': { type: 'string' },
        policy: { type: 'string' },
      },
    });
    if ((v['tls-cert'] === undefined) !== (v['tls-key'] === undefined)) {
      throw new UsageError('serve: --tls-cert and --tls-key go together');
    }
    const https =
      v['tls-cert'] === undefined
        ? undefined
        : { cert: readFileArg(v['tls-cert'], 'TLS certificate'), key: readFileArg(v['tls-key'] as string, 'TLS key') };
    const logger = loggerOption(v['log-level']);
    const { host, port } = listenAddress(v.listen);
    const tokens = v.tokens ?? process.env.EVIDENT_TOKENS ?? null;
    if (tokens !== null) {
      // A missing or bad file is refused now, not found out at the first request.
      if (!existsSync(tokens)) throw new UsageError(`--tokens: there is no ${tokens} (evident token add creates it)`);
      readTokens(tokens);
      const mode = statSync(tokens).mode;
      if ((mode & 0o077) !== 0) {
        // Hashes only, but the names, scopes and actor patterns are the service's access policy.
        process.stderr.write(
          `evident: warning: the token file ${tokens} can be read by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it\n`,
        );
      }
    } else {
      process.stderr.write('evident: no --tokens: reads are public, and appends are refused (401)\n');
    }
    const policy = v.policy === undefined ? null : parsePolicy(readFileArg(v.policy, 'policy'));
    for (const w of policy?.witnesses ?? []) {
      if (w.url === undefined) process.stderr.write(`evident: witness ${w.name} has no URL in the policy: not asked\n`);
      else if (!/^https?:\/\/[^/]/.test(w.url))
        throw new UsageError(`--policy: witness ${w.name}: ${w.url} is not an http(s) URL`);
    }
    const log = new Log({ store: storeOption(v), key: v.key });
    await log.ready();
    const signs = (await log.latestCheckpoint()) !== null;
    if (v.key !== undefined && !signs) {
      await log.close();
      throw new UsageError(`serve: --key: the log in ${log.location} does not sign checkpoints`);
    }
    const replays = new Replays();
    await replays.load(log); // the keys of the last 24 hours, so that a retry after a restart appends nothing
    // Witnesses: each checkpoint this process signs goes to each, with a consistency proof; never in the way of appends.
    const witnesses =
      policy === null
        ? undefined
        : new WitnessPusher(log, policy.witnesses, {
            onChange: (w) =>
              process.stderr.write(
                w.error === null
                  ? `evident: witness ${w.name} cosigned size ${w.size}\n`
                  : `evident: witness ${w.name} did not cosign: ${w.error}\n`,
              ),
          });
    if (witnesses !== undefined) {
      log.on('checkpoint', ({ note }) => witnesses.push(note));
      const note = await log.checkpoint();
      if (note === null)
        throw new UsageError('serve: --policy: this log does not sign, so it has no checkpoints to witness');
      witnesses.push(note);
    }
    // Request logs (pino, JSON lines on stdout): method, URL, status, time; never headers, tokens or bodies.
    // Loaded here, not with the CLI: fastify and pino take longer to load than a whole `evident append`.
    const { buildServer } = await import('../server/server.js');
    let app: ReturnType<typeof buildServer>;
    try {
      app = buildServer({
        log,
        tokens,
        publicReads: v['public-reads'] === true || tokens === null, // without tokens only public reads are served
        replays,
        logger,
        https: https === undefined ? undefined : { cert: Buffer.from(https.cert), key: Buffer.from(https.key) },
        witnesses,
      });
    } catch (error) {
      if (https === undefined) throw error;
      throw new InvalidOptionError(
        `--tls-cert, --tls-key: not a PEM certificate and its key: ${(error as Error).message}`,
      );
    }
    const address = await listenOn(app, { host, port });
    process.stderr.write(`evident: serving ${log.location} on ${address}\n`);
    await untilStopped();
    process.stderr.write(
      `evident: stopping: finishing accepted requests${signs ? ', signing a last checkpoint' : ''}\n`,
    );
    await app.close();
    await log.close();
    await witnesses?.settled(); // the last checkpoint, to the witnesses
    return 0;
  },

  async token(args) {
    const [sub, ...rest] = args;
    if (sub !== 'add' && sub !== 'list' && sub !== 'revoke') {
      throw new UsageError(`token: the subcommand is add, list or revoke${sub === undefined ? '' : `, not ${sub}`}`);
    }
    const { values: v, positionals } = parseWithPositionals(`token ${sub ?? ''}`.trim(), {
      args: rest,
      strict: true,
      options: {
        tokens: { type: 'string' },
        scopes: { type: 'string' },
        actors: { type: 'string', multiple: true },
      },
    });
    const file = v.tokens ?? process.env.EVIDENT_TOKENS;
    if (file === undefined || file === '')
      throw new UsageError('token: --tokens FILE (or $EVIDENT_TOKENS) is required');
    if (sub === 'add') {
      const [name, ...extra] = positionals;
      if (name === undefined || extra.length > 0) throw new UsageError('token add: give one NAME');
      if (v.scopes === undefined) throw new UsageError('token add: --scopes is required (append, read, admin)');
      const secret = addToken(file, name, v.scopes.split(','), v.actors);
      write(`${secret}\n`);
      process.stderr.write(`evident: token ${name} added to ${file}; its secret is shown this once\n`);
      return 0;
    }
    if (sub === 'list') {
      if (positionals.length > 0 || v.scopes !== undefined || v.actors !== undefined) {
        throw new UsageError('token list: only --tokens');
      }
      if (!existsSync(file)) throw new UsageError(`token list: there is no ${file} (evident token add creates it)`);
      for (const t of readTokens(file)) {
        // Patterns apart by spaces; one that holds a space, comma, quote or backslash is shown as a JSON string.
        const actors = t.actors?.map((p) => (/^[^\s",\\]+$/.test(p) ? p : JSON.stringify(p))).join(' ') ?? '*';
        write(`${t.name}\t${t.scopes.join(',')}\t${actors}\t${t.created}\n`);
      }
      return 0;
    }
    if (sub === 'revoke') {
      const [name, ...extra] = positionals;
      if (name === undefined || extra.length > 0) throw new UsageError('token revoke: give one NAME');
      if (!revokeToken(file, name)) throw new UsageError(`token revoke: no token named ${name} in ${file}`);
      process.stderr.write(`evident: token ${name} revoked\n`);
      return 0;
    }
    throw new UsageError('token: the subcommand is add, list or revoke'); // not reached: checked above
  },
};
