/**
 * A server for the HTTP benchmark, in its own process so that the load
 * generator has the other core: `evident` serves the signing log in DIR with
 * the tokens in FILE; `baseline` is a fastify route that parses the same
 * JSON body and answers 201 without storing it. Prints its URL, runs until
 * SIGTERM.
 *
 * Usage: node http-server.js evident DIR TOKENS | node http-server.js baseline
 */
import Fastify from 'fastify';
import { Log } from '../src/log.js';
import { buildServer } from '../src/server/server.js';

const [mode, dir, tokens] = process.argv.slice(2);
let stop: () => Promise<void>;
let url: string;
if (mode === 'evident') {
  const log = new Log({ store: dir as string });
  const app = buildServer({ log, tokens: tokens as string, publicReads: true });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
  stop = async () => {
    await app.close();
    await log.close();
  };
} else {
  const app = Fastify({ bodyLimit: 8 << 20 });
  app.post('/v1/entries', async (request, reply) => reply.code(201).send(request.body));
  url = await app.listen({ host: '127.0.0.1', port: 0 });
  stop = () => app.close();
}
process.stdout.write(`${url}\n`);
process.once('SIGTERM', () => {
  stop().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});
