// RedisClient over an ioredis connection or Cluster (the caller keeps ownership of what it passes).
// Typed structurally, like the node-redis adapter, so ioredis stays an optional peer dependency:
// an ioredis `Redis` is an IoredisLike.
import type { RedisArg, RedisClient, RedisSubscriber } from './client.ts';

/** The slice of an ioredis client (`new Redis(…)`) this adapter uses. */
export interface IoredisLike {
  evalsha(sha: string, numKeys: number, ...args: RedisArg[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: RedisArg[]): Promise<unknown>;
  script(subcommand: 'LOAD', script: string): Promise<unknown>;
  call(command: string, ...args: RedisArg[]): Promise<unknown>;
  duplicate(override?: { enableOfflineQueue?: boolean; lazyConnect?: boolean; autoResubscribe?: boolean }): IoredisSubscriberLike;
  quit(): Promise<unknown>;
  /** called after quit: ioredis' quit() leaves a Sentinel client's failover-detector connections open */
  disconnect?(): void;
}

/** The slice of a duplicated ioredis connection the subscriber uses. */
export interface IoredisSubscriberLike {
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  quit(): Promise<unknown>;
  disconnect(): void;
}

/** ioredis flattens array arguments one level; its typings do not list the two-array form. */
interface ArrayArgs {
  evalsha(sha: string, numKeys: number, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown>;
  eval(script: string, numKeys: number, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown>;
}

export function fromIoredis(client: IoredisLike): RedisClient {
  const raw = client as unknown as ArrayArgs;
  return {
    kind: 'ioredis',
    // keys and args go in as two arrays (ioredis flattens them once): no spread copies per call.
    evalsha: (sha, keys, args) => raw.evalsha(sha, keys.length, keys, args),
    eval: (script, keys, args) => raw.eval(script, keys.length, keys, args),
    scriptLoad: async (script) => String(await client.script('LOAD', script)),
    command: (args) => {
      const [name, ...rest] = args;
      return client.call(String(name), ...rest);
    },
    duplicate: async () => {
      // The adapter resubscribes after a reconnection itself: ioredis' autoResubscribe sends the
      // SUBSCRIBE from its ready handler and drops the promise, so a connection closed before the
      // reply became an unhandled rejection.
      const sub = client.duplicate({ enableOfflineQueue: true, lazyConnect: false, autoResubscribe: false });
      return ioredisSubscriber(sub, true);
    },
    quit: async () => {
      await client.quit().catch(() => undefined);
      client.disconnect?.();
    },
  };
}

/** The slice of an ioredis `Cluster` (`new Cluster(nodes)`) the cluster adapter uses. */
export interface IoredisClusterLike extends Omit<IoredisLike, 'duplicate'> {
  /** every node ('all') or the masters: SCRIPT LOAD goes to each */
  nodes(role?: 'all' | 'master' | 'slave'): { script(subcommand: 'LOAD', script: string): Promise<unknown> }[];
  duplicate(overrideStartupNodes?: never[], overrideOptions?: { enableOfflineQueue?: boolean; lazyConnect?: boolean }): IoredisClusterSubscriberLike;
}

/** A duplicated Cluster used for pub/sub: ioredis subscribes through one node and moves the
 * subscriptions to another when that node goes away, announcing pool changes as -node/+node. */
export interface IoredisClusterSubscriberLike extends IoredisSubscriberLike {
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready' | '-node' | '+node', listener: () => void): unknown;
}

/**
 * RedisClient over an ioredis Cluster. Scripts run by EVALSHA on the node owning their keys' slot;
 * SCRIPT LOAD goes to every node, replicas included (scripts are not replicated, and a replica may
 * be promoted). Pub/sub: classic PUBLISH reaches every node of a cluster, so one subscriber
 * connection anywhere hears every lock's wake-ups.
 */
export function fromIoredisCluster(cluster: IoredisClusterLike): RedisClient {
  const raw = cluster as unknown as ArrayArgs;
  return {
    kind: 'ioredis-cluster',
    evalsha: (sha, keys, args) => raw.evalsha(sha, keys.length, keys, args),
    eval: (script, keys, args) => raw.eval(script, keys.length, keys, args),
    scriptLoad: async (script) => {
      const shas = await Promise.all(cluster.nodes('all').map((n) => n.script('LOAD', script).then(String, () => undefined)));
      const sha = shas.find((s) => s !== undefined);
      if (sha === undefined) throw new Error('SCRIPT LOAD failed on every cluster node');
      return sha;
    },
    command: (args) => {
      const [name, ...rest] = args;
      return cluster.call(String(name), ...rest);
    },
    duplicate: async () => {
      const sub = cluster.duplicate([], { enableOfflineQueue: true, lazyConnect: false });
      const s = ioredisSubscriber(sub);
      // A node left the pool (failover, node lost): if it carried the subscription, ioredis moves
      // it to another node and messages published meanwhile are gone, so every waiter re-checks.
      // (Waits are bounded by the lock's TTL anyway: a missed wake-up costs latency, not liveness.)
      const reconnect: (() => void)[] = [];
      sub.on('-node', () => reconnect.forEach((l) => l()));
      return {
        ...s,
        onReconnect: (l) => {
          reconnect.push(l);
          s.onReconnect(l);
        },
      };
    },
    quit: async () => {
      await cluster.quit();
    },
  };
}

/** resubscribe: the connection was made without ioredis' autoResubscribe; the channels are
 * subscribed again here after a reconnection, a failure reported as an error, never unhandled. */
function ioredisSubscriber(sub: IoredisSubscriberLike, resubscribe = false): RedisSubscriber {
  const errorListeners: ((e: unknown) => void)[] = [];
  const reconnectListeners: (() => void)[] = [];
  const channels = new Set<string>();
  const reportError = (e: unknown) => errorListeners.forEach((l) => l(e));
  let readyOnce = false;
  sub.on('error', (e: Error) => reportError(e));
  sub.on('ready', () => {
    if (readyOnce) {
      if (resubscribe) for (const ch of channels) sub.subscribe(ch).catch(reportError);
      reconnectListeners.forEach((l) => l());
    }
    readyOnce = true;
  });
  return {
    subscribe: async (channel) => {
      channels.add(channel);
      try {
        await sub.subscribe(channel);
      } catch (error) {
        channels.delete(channel);
        throw error;
      }
    },
    unsubscribe: async (channel) => {
      channels.delete(channel);
      await sub.unsubscribe(channel);
    },
    onMessage: (listener) => {
      sub.on('message', (channel: string, message: string) => listener(channel, message));
    },
    onError: (l) => errorListeners.push(l),
    onReconnect: (l) => reconnectListeners.push(l),
    quit: async () => {
      await sub.quit().catch(() => undefined);
      // After quit too: ioredis' quit() leaves a Sentinel client's failover-detector connections open.
      sub.disconnect();
    },
  };
}

export type { RedisArg };
