// RedisClient over a node-redis (v4/v5) client. Typed structurally so the driver stays optional.
import type { RedisArg, RedisClient, RedisSubscriber } from './client.ts';

type Listener = (message: string, channel: string) => unknown;

/** The slice of a node-redis client this adapter uses. */
export interface NodeRedisLike {
  sendCommand(args: string[]): Promise<unknown>;
  duplicate(): NodeRedisSubscriberLike;
  close?(): Promise<void>;
  quit?(): Promise<unknown>;
}

export interface NodeRedisSubscriberLike {
  connect(): Promise<unknown>;
  subscribe(channel: string, listener: Listener): Promise<unknown>;
  unsubscribe(channel: string, listener?: Listener): Promise<unknown>;
  on(event: 'error', listener: (e: unknown) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  close?(): Promise<void>;
  quit?(): Promise<unknown>;
  destroy?(): void;
}

const str = (args: readonly RedisArg[]) => args.map(String);

export function fromNodeRedis(client: NodeRedisLike): RedisClient {
  return {
    kind: 'node-redis',
    evalsha: (sha, keys, args) => client.sendCommand(['EVALSHA', sha, String(keys.length), ...keys, ...str(args)]),
    eval: (script, keys, args) => client.sendCommand(['EVAL', script, String(keys.length), ...keys, ...str(args)]),
    scriptLoad: async (script) => String(await client.sendCommand(['SCRIPT', 'LOAD', script])),
    command: (args) => client.sendCommand(str(args)),
    duplicate: async () => {
      const sub = client.duplicate();
      const s = nodeRedisSubscriber(sub);
      await sub.connect();
      return s;
    },
    quit: async () => {
      if (client.close) await client.close();
      else await client.quit?.();
    },
  };
}

function nodeRedisSubscriber(sub: NodeRedisSubscriberLike): RedisSubscriber {
  const errorListeners: ((e: unknown) => void)[] = [];
  const reconnectListeners: (() => void)[] = [];
  const messageListeners: ((channel: string, message: string) => void)[] = [];
  const perChannel = new Map<string, Listener>();
  let readyOnce = false;
  // node-redis throws from emit('error') without a listener: always keep one.
  sub.on('error', (e) => errorListeners.forEach((l) => l(e)));
  sub.on('ready', () => {
    if (readyOnce) reconnectListeners.forEach((l) => l());
    readyOnce = true;
  });
  return {
    subscribe: async (channel) => {
      if (perChannel.has(channel)) return;
      const listener: Listener = (message, ch) => messageListeners.forEach((l) => l(String(ch), String(message)));
      perChannel.set(channel, listener);
      await sub.subscribe(channel, listener);
    },
    unsubscribe: async (channel) => {
      const listener = perChannel.get(channel);
      if (!listener) return;
      perChannel.delete(channel);
      await sub.unsubscribe(channel, listener);
    },
    onMessage: (l) => messageListeners.push(l),
    onError: (l) => errorListeners.push(l),
    onReconnect: (l) => reconnectListeners.push(l),
    quit: async () => {
      try {
        if (sub.close) await sub.close();
        else await sub.quit?.();
      } catch {
        sub.destroy?.();
      }
    },
  };
}
