// RedisClient over an ioredis connection (the caller keeps ownership of the connection it passes).
import type { Redis } from 'ioredis';
import type { RedisArg, RedisClient, RedisSubscriber } from './client.ts';

/** ioredis flattens array arguments one level; its typings do not list the two-array form. */
interface ArrayArgs {
  evalsha(sha: string, numKeys: number, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown>;
  eval(script: string, numKeys: number, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown>;
}

export function fromIoredis(client: Redis): RedisClient {
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
      const sub = client.duplicate({ enableOfflineQueue: true, lazyConnect: false });
      return ioredisSubscriber(sub);
    },
    quit: async () => {
      await client.quit();
    },
  };
}

function ioredisSubscriber(sub: Redis): RedisSubscriber {
  const errorListeners: ((e: unknown) => void)[] = [];
  const reconnectListeners: (() => void)[] = [];
  let readyOnce = false;
  sub.on('error', (e: unknown) => errorListeners.forEach((l) => l(e)));
  sub.on('ready', () => {
    if (readyOnce) reconnectListeners.forEach((l) => l());
    readyOnce = true;
  });
  return {
    subscribe: async (channel) => {
      await sub.subscribe(channel);
    },
    unsubscribe: async (channel) => {
      await sub.unsubscribe(channel);
    },
    onMessage: (listener) => {
      sub.on('message', (channel: string, message: string) => listener(channel, message));
    },
    onError: (l) => errorListeners.push(l),
    onReconnect: (l) => reconnectListeners.push(l),
    quit: async () => {
      await sub.quit().catch(() => sub.disconnect());
    },
  };
}

export type { RedisArg };
