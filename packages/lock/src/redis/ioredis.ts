// RedisClient over an ioredis connection (the caller keeps ownership of the connection it passes).
// Typed structurally, like the node-redis adapter, so ioredis stays an optional peer dependency:
// an ioredis `Redis` is an IoredisLike.
import type { RedisArg, RedisClient, RedisSubscriber } from './client.ts';

/** The slice of an ioredis client (`new Redis(…)`) this adapter uses. */
export interface IoredisLike {
  evalsha(sha: string, numKeys: number, ...args: RedisArg[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: RedisArg[]): Promise<unknown>;
  script(subcommand: 'LOAD', script: string): Promise<unknown>;
  call(command: string, ...args: RedisArg[]): Promise<unknown>;
  duplicate(override?: { enableOfflineQueue?: boolean; lazyConnect?: boolean }): IoredisSubscriberLike;
  quit(): Promise<unknown>;
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
      const sub = client.duplicate({ enableOfflineQueue: true, lazyConnect: false });
      return ioredisSubscriber(sub);
    },
    quit: async () => {
      await client.quit();
    },
  };
}

function ioredisSubscriber(sub: IoredisSubscriberLike): RedisSubscriber {
  const errorListeners: ((e: unknown) => void)[] = [];
  const reconnectListeners: (() => void)[] = [];
  let readyOnce = false;
  sub.on('error', (e: Error) => errorListeners.forEach((l) => l(e)));
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
