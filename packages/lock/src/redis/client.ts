// The minimal Redis surface allot needs, so the lock library runs on ioredis, node-redis or
// anything else that can EVALSHA and subscribe. Adapters map replies to plain JS values.

export type RedisArg = string | number;

export interface RedisClient {
  /** label for metrics and errors, e.g. "ioredis" */
  readonly kind: string;
  evalsha(sha: string, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown>;
  eval(script: string, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown>;
  /** SCRIPT LOAD; resolves the SHA1 */
  scriptLoad(script: string): Promise<string>;
  /** any other command, e.g. ["TIME"] */
  command(args: readonly RedisArg[]): Promise<unknown>;
  /** a new connection with the same settings, for pub/sub */
  duplicate(): Promise<RedisSubscriber>;
  /** closes the connection; adapters quit only connections they created */
  quit(): Promise<void>;
}

export interface RedisSubscriber {
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** one listener for every channel's messages */
  onMessage(listener: (channel: string, message: string) => void): void;
  /** connection errors; without a listener they are dropped, never thrown */
  onError(listener: (error: unknown) => void): void;
  /** called after the connection was re-established (messages may have been missed) */
  onReconnect(listener: () => void): void;
  quit(): Promise<void>;
}

export function isNoScriptError(error: unknown): boolean {
  return error instanceof Error && /NOSCRIPT/.test(error.message);
}
