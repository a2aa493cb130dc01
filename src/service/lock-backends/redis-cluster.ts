// LOCKS_URL=redis-cluster://[[user]:password@]host:port[,host:port…]
// (rediss-cluster://…[?tlsCaFile=…&tlsCertFile=…&tlsKeyFile=…]: TLS to every node)
// Locks on a Redis Cluster: every key of one lock (its epoch included) in one hash slot, so each
// operation is one script on one node; the nodes listed are only where discovery starts.
import { Cluster } from 'ioredis';
import { createRedisClusterLockProvider, fromIoredisCluster } from '@allot/lock';
import type { LockBackendContext, LockBackendOpener, OpenedLockBackend } from './types.ts';
import { checkParams, connectTimeout, maskMultiHostUrl, parseMultiHostUrl, TLS_PARAMS, tlsFiles, tlsOptions, type TlsFiles } from './multi-host-url.ts';
import { connectWithin } from './bounded-connect.ts';

export interface RedisClusterUrl {
  nodes: { host: string; port: number }[];
  username: string | undefined;
  password: string | undefined;
  /** ?connectTimeoutMs=: bound on the first connection (default 5000) */
  connectTimeoutMs: number;
  /** rediss-cluster://: TLS to every node (undefined: plain) */
  tls: TlsFiles | undefined;
}

export function parseRedisClusterUrl(raw: string): RedisClusterUrl {
  const u = parseMultiHostUrl(raw, 6379);
  const shown = maskMultiHostUrl(raw);
  if (u.scheme !== 'redis-cluster' && u.scheme !== 'rediss-cluster') throw new Error(`${shown}: expected the redis-cluster:// (or, with TLS, rediss-cluster://) scheme`);
  if (u.path.length > 0) throw new Error(`${shown}: a cluster has no databases or names: expected ${u.scheme}://host:port,host:port,…`);
  checkParams(u, ['connectTimeoutMs', ...TLS_PARAMS], shown);
  return { nodes: u.hosts, username: u.username, password: u.password, connectTimeoutMs: connectTimeout(u.params, shown), tls: tlsFiles(u, u.scheme === 'rediss-cluster', shown) };
}


export async function openRedisCluster(url: URL | string, ctx: LockBackendContext): Promise<OpenedLockBackend> {
  const raw = String(url);
  const displayUrl = maskMultiHostUrl(raw);
  const cfg = parseRedisClusterUrl(raw);
  const tls = cfg.tls ? await tlsOptions(cfg.tls, displayUrl) : undefined;
  const cluster = new Cluster(cfg.nodes, {
    lazyConnect: true,
    enableOfflineQueue: true,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    slotsRefreshTimeout: 2_000,
    redisOptions: {
      connectTimeout: 2_000,
      maxRetriesPerRequest: 2,
      ...(cfg.username ? { username: cfg.username } : {}),
      ...(cfg.password ? { password: cfg.password } : {}),
      ...(tls ? { tls } : {}),
    },
  });
  cluster.on('error', () => undefined);
  try {
    await connectWithin(cluster, cfg.connectTimeoutMs);
  } catch (error) {
    throw new Error(`cannot reach the Redis Cluster at ${displayUrl} (LOCKS_URL): ${(error as Error).message}; check that the nodes listed run with cluster-enabled yes, that every slot is served (cluster_state:ok), and the password${tls ? "; over TLS, that the ports are the TLS ones (tls-cluster yes, so the nodes announce them) and that the CA (?tlsCaFile=) signed the nodes' certificates" : ''}`);
  }
  const provider = createRedisClusterLockProvider({ client: fromIoredisCluster(cluster), prefix: ctx.prefix, fenceAnchor: ctx.anchor, metrics: ctx.metrics, ...(ctx.onEvent ? { onEvent: ctx.onEvent } : {}) });
  return {
    provider,
    kind: 'redis-cluster',
    displayUrl,
    ping: async () => {
      const info = String(await cluster.call('CLUSTER', 'INFO'));
      if (!/cluster_state:ok/.test(info)) throw new Error(`Redis Cluster at ${displayUrl} reports ${/cluster_state:\w+/.exec(info)?.[0] ?? 'no cluster_state'}`);
    },
    close: async () => {
      await provider.close();
      await cluster.quit().catch(() => cluster.disconnect());
    },
  };
}

/** Takes the URL as a string too: WHATWG URL refuses the comma-separated host list. */
export const open: LockBackendOpener = openRedisCluster;
