// Throwaway Redlock nodes for tests: N independent Redis masters on loopback, optionally each
// behind a fault proxy (blackhole / reset), with one ioredis client per node. Stopped by PID.
import { Redis } from 'ioredis';
import { startRedis, type TestServer } from './servers.ts';
import { startFaultProxy, type FaultProxy } from '../../src/lab/proxy.ts';
import { fromIoredis, type RedisClient } from '../../packages/lock/src/index.ts';

export interface RedlockNodes {
  servers: TestServer[];
  /** one per node when started with proxies, else empty */
  proxies: FaultProxy[];
  /** raw ioredis connections (through the proxy when there is one) */
  redis: Redis[];
  clients: RedisClient[];
  /** "127.0.0.1:port" of each node as the clients see it */
  names: string[];
  /** another set of connections to the same nodes (as a second process would have); closed by close() */
  connectAgain(): RedisClient[];
  /** waits until node i answers PING again (after a blackhole or a restart) */
  waitReady(i: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startRedlockNodes(count: number, opts: { proxies?: boolean } = {}): Promise<RedlockNodes> {
  const servers: TestServer[] = [];
  const proxies: FaultProxy[] = [];
  const redis: Redis[] = [];
  try {
    servers.push(...(await Promise.all(Array.from({ length: count }, () => startRedis()))));
    if (opts.proxies) proxies.push(...(await Promise.all(servers.map((s) => startFaultProxy({ target: { host: '127.0.0.1', port: s.port } })))));
    for (let i = 0; i < count; i++) {
      const url = opts.proxies ? proxies[i]!.url(servers[i]!.url) : servers[i]!.url;
      // Short retries: a dead node must fail its commands, not queue them for long.
      const r = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: (times) => Math.min(times * 20, 200) });
      r.on('error', () => undefined);
      redis.push(r);
    }
  } catch (error) {
    for (const r of redis) r.disconnect();
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.destroy()));
    throw error;
  }
  const names = redis.map((r) => `${r.options.host ?? '127.0.0.1'}:${r.options.port ?? 6379}`);
  const extra: Redis[] = [];
  return {
    servers,
    proxies,
    redis,
    clients: redis.map((r) => fromIoredis(r)),
    names,
    connectAgain() {
      const more = redis.map((r) => {
        const c = r.duplicate();
        c.on('error', () => undefined);
        return c;
      });
      extra.push(...more);
      return more.map((c) => fromIoredis(c));
    },
    async waitReady(i, timeoutMs = 5_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        try {
          await Promise.race([redis[i]!.ping(), new Promise((_, reject) => setTimeout(() => reject(new Error('ping timeout')), 200))]);
          return;
        } catch (error) {
          if (Date.now() > until) throw error;
          await new Promise((r) => setTimeout(r, 25));
        }
      }
    },
    async close() {
      for (const r of [...redis, ...extra]) r.disconnect();
      await Promise.all(proxies.map((p) => p.close()));
      await Promise.all(servers.map((s) => s.destroy()));
    },
  };
}
