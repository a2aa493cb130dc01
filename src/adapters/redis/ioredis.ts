// RedisClient over an ioredis connection (the caller keeps ownership of the connection it passes).
import type { Redis } from 'ioredis';
import type { RedisArg, RedisClient, RedisSubscriber } from './client.ts';

export function fromIoredis(client: Redis): RedisClient {
  return {
    kind: 'ioredis',
    evalsha: (sha, keys, args) => client.evalsha(sha, keys.length, ...keys, ...args),
    eval: (script, keys, args) => client.eval(script, keys.length, ...keys, ...args),
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
