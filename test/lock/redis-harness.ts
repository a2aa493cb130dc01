// Redis for lock tests: REDIS_URL when `npm test` started one, else a private throwaway server.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { startRedis, type TestServer } from '../helpers/servers.ts';
import { MemoryFenceAnchor, RedisLockBackend, fromIoredis, fromNodeRedis, type RedisClient } from '../../packages/lock/src/index.ts';
import { backendHarness, type ContractHarness } from './contract.ts';

let server: TestServer | undefined;

export async function redisUrl(): Promise<{ url: string; stop(): Promise<void> }> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => undefined };
  server = await startRedis();
  const s = server;
  return { url: s.url, stop: () => s.destroy() };
}

export const uniquePrefix = (tag: string) => `test:${tag}:${process.pid}:${randomBytes(4).toString('hex')}:`;

export type ClientKind = 'ioredis' | 'node-redis';

export async function connect(kind: ClientKind, url: string): Promise<RedisClient> {
  if (kind === 'ioredis') return fromIoredis(new Redis(url, { maxRetriesPerRequest: 3 }));
  const c = createClient({ url });
  c.on('error', () => undefined);
  await c.connect();
  return fromNodeRedis(c);
}

/** The client, counting its EVALSHA calls per script SHA. */
export function counting(client: RedisClient): { client: RedisClient; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  return {
    calls,
    client: {
      ...client,
      kind: client.kind,
      evalsha: (sha, keys, args) => {
        calls.set(sha, (calls.get(sha) ?? 0) + 1);
        return client.evalsha(sha, keys, args);
      },
    },
  };
}

export function redisHarness(kind: ClientKind): () => Promise<ContractHarness> {
  return async () => {
    const srv = await redisUrl();
    const client = await connect(kind, srv.url);
    const anchor = new MemoryFenceAnchor();
    const prefix = uniquePrefix(kind);
    return backendHarness(
      () => new RedisLockBackend({ client, fenceAnchor: anchor, prefix }),
      async () => {
        await client.quit();
        await srv.stop();
      },
    );
  };
}
