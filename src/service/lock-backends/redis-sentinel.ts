// LOCKS_URL=redis-sentinel://[[user]:password@]host:port[,host:port…]/<master name>[/<db>][?sentinelPassword=…]
// (rediss-sentinel://…[&tlsCaFile=…&tlsCertFile=…&tlsKeyFile=…]: TLS to the sentinels and the nodes)
// Locks on the master a set of Redis Sentinels elects; the client follows it across failovers, and
// the failover guard keeps fences strictly increasing when a promoted replica lost increments.
import { Redis } from 'ioredis';
import { createRedisSentinelLockProvider, fromIoredis } from '@allot/lock';
import type { LockBackendContext, LockBackendOpener, OpenedLockBackend } from './types.ts';
import { checkParams, connectTimeout, maskMultiHostUrl, parseMultiHostUrl, TLS_PARAMS, tlsFiles, tlsOptions, type TlsFiles } from './multi-host-url.ts';
import { connectWithin } from './bounded-connect.ts';


export interface RedisSentinelUrl {
  sentinels: { host: string; port: number }[];
  name: string;
  username: string | undefined;
  password: string | undefined;
  /** ?connectTimeoutMs=: bound on the first connection (default 5000) */
  connectTimeoutMs: number;
  sentinelPassword: string | undefined;
  db: number;
  /** rediss-sentinel://: TLS to the sentinels, the master and the replicas (undefined: plain) */
  tls: TlsFiles | undefined;
}

export function parseRedisSentinelUrl(raw: string): RedisSentinelUrl {
  const u = parseMultiHostUrl(raw, 26379);
  const shown = maskMultiHostUrl(raw);
  if (u.scheme !== 'redis-sentinel' && u.scheme !== 'rediss-sentinel') throw new Error(`${shown}: expected the redis-sentinel:// (or, with TLS, rediss-sentinel://) scheme`);
  checkParams(u, ['sentinelPassword', 'connectTimeoutMs', ...TLS_PARAMS], shown);
  const [name, db, ...rest] = u.path;
  if (!name || rest.length > 0) throw new Error(`${shown}: expected redis-sentinel://host:port,host:port/<master name>[/<db>]`);
  if (db !== undefined && !/^\d{1,2}$/.test(db)) throw new Error(`${shown}: the database after the master name must be a number, got "${db}"`);
  return {
    sentinels: u.hosts,
    name,
    username: u.username,
    password: u.password,
    sentinelPassword: u.params.get('sentinelPassword') ?? undefined,
    db: Number(db ?? 0),
    connectTimeoutMs: connectTimeout(u.params, shown),
    tls: tlsFiles(u, u.scheme === 'rediss-sentinel', shown),
  };
}

export async function openRedisSentinel(url: URL | string, ctx: LockBackendContext): Promise<OpenedLockBackend> {
  const raw = String(url);
  const displayUrl = maskMultiHostUrl(raw);
  const cfg = parseRedisSentinelUrl(raw);
  const tls = cfg.tls ? await tlsOptions(cfg.tls, displayUrl) : undefined;
  const redis = new Redis({
    sentinels: cfg.sentinels,
    name: cfg.name,
    db: cfg.db,
    ...(cfg.username ? { username: cfg.username } : {}),
    ...(cfg.password ? { password: cfg.password } : {}),
    ...(cfg.sentinelPassword ? { sentinelPassword: cfg.sentinelPassword } : {}),
    // the same TLS settings for the sentinels and for the nodes they name
    ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
    lazyConnect: true,
    connectTimeout: 2_000,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    // Reconnect through the sentinels as soon as they announce a new master...
    failoverDetector: true,
    // ...or a write lands on a demoted master: reconnect and resend (a refused write did nothing,
    // and the scripts themselves detect the new master: no fence is reused).
    reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 2 : false),
  });
  // Without a listener a connection error would be an unhandled 'error' event; ioredis reconnects by itself.
  redis.on('error', () => undefined);
  try {
    await connectWithin(redis, cfg.connectTimeoutMs);
  } catch (error) {
    throw new Error(
      `cannot reach the Redis master "${cfg.name}" through the sentinels at ${displayUrl} (LOCKS_URL): ${(error as Error).message}; ` +
        'check that the sentinels run and monitor that master name, and the password (the sentinels\' own: ?sentinelPassword=)' +
        (tls ? '; over TLS, that the ports are the TLS ones and that the CA (?tlsCaFile=) signed the servers\' certificates for these host names' : ''),
    );
  }
  const provider = createRedisSentinelLockProvider({ client: fromIoredis(redis), prefix: ctx.prefix, fenceAnchor: ctx.anchor, metrics: ctx.metrics, ...(ctx.onEvent ? { onEvent: ctx.onEvent } : {}) });
  return {
    provider,
    kind: 'redis-sentinel',
    displayUrl,
    ping: async () => {
      await redis.ping();
    },
    close: async () => {
      await provider.close();
      // disconnect() after quit(): quit leaves the failover detector's sentinel connections open.
      await redis.quit().catch(() => undefined);
      redis.disconnect();
    },
  };
}

/** Takes the URL as a string too: WHATWG URL refuses the comma-separated host list. */
export const open: LockBackendOpener = openRedisSentinel;
