// One shared subscriber connection per provider, opened on the first wait, with reference-counted
// channel subscriptions. Unused channels linger briefly so a busy key does not SUBSCRIBE/UNSUBSCRIBE
// on every wait; when the last one goes, the connection is closed too, so an idle provider never
// keeps the process alive (a script that locked and returned exits without close()).
import type { RedisClient, RedisSubscriber } from './client.ts';
import type { WakeSubscription } from '../types.ts';

interface Channel {
  listeners: Set<(payload: string) => void>;
  ready: Promise<void>;
  linger: NodeJS.Timeout | undefined;
}

export class WakeHub {
  readonly #client: RedisClient;
  readonly #lingerMs: number;
  readonly #subscribeTimeoutMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #channels = new Map<string, Channel>();
  #sub: Promise<RedisSubscriber> | undefined;
  /** subscribe() calls between connecting and registering their channel */
  #pending = 0;
  #closed = false;

  constructor(client: RedisClient, opts: { lingerMs: number; subscribeTimeoutMs: number; onError: (error: unknown) => void }) {
    this.#client = client;
    this.#lingerMs = opts.lingerMs;
    this.#subscribeTimeoutMs = opts.subscribeTimeoutMs;
    this.#onError = opts.onError;
  }

  #connect(): Promise<RedisSubscriber> {
    if (this.#closed) return Promise.reject(new Error('wake hub closed'));
    this.#sub ??= this.#client.duplicate().then(
      (sub) => {
        sub.onError(this.#onError);
        sub.onMessage((channel, message) => {
          const ch = this.#channels.get(channel);
          if (ch) for (const l of ch.listeners) l(message);
        });
        // Messages published while disconnected are gone: wake every waiter to re-check.
        sub.onReconnect(() => {
          for (const ch of this.#channels.values()) for (const l of ch.listeners) l('*');
        });
        return sub;
      },
      (error: unknown) => {
        this.#sub = undefined;
        throw error;
      },
    );
    return this.#sub;
  }

  async subscribe(channel: string, listener: (payload: string) => void): Promise<WakeSubscription> {
    let sub: RedisSubscriber;
    this.#pending++;
    try {
      sub = await withTimeout(this.#connect(), this.#subscribeTimeoutMs, 'subscriber connection');
    } catch (error) {
      // a connection that shows up after the caller gave up must not linger unused
      this.#pending--;
      this.#closeIfIdle();
      throw error;
    }
    this.#pending--;
    let ch = this.#channels.get(channel);
    if (!ch) {
      const ready = sub.subscribe(channel);
      ch = { listeners: new Set(), ready, linger: undefined };
      this.#channels.set(channel, ch);
      ready.catch(() => {
        if (this.#channels.get(channel) === ch) this.#channels.delete(channel);
      });
    }
    clearTimeout(ch.linger);
    ch.linger = undefined;
    ch.listeners.add(listener);
    const entry = ch;
    const close = () => {
      if (!entry.listeners.delete(listener) || entry.listeners.size > 0) return;
      clearTimeout(entry.linger);
      entry.linger = setTimeout(() => {
        if (entry.listeners.size > 0) return;
        if (this.#channels.get(channel) === entry) {
          this.#channels.delete(channel);
          sub.unsubscribe(channel).catch(this.#onError);
        }
        this.#closeIfIdle();
      }, this.#lingerMs);
      entry.linger.unref();
    };
    try {
      await withTimeout(entry.ready, this.#subscribeTimeoutMs, `SUBSCRIBE ${channel}`);
    } catch (error) {
      close();
      throw error;
    }
    return { close };
  }

  /** No channel and nobody connecting: close the connection; the next wait opens a new one. */
  #closeIfIdle(): void {
    if (this.#channels.size > 0 || this.#pending > 0 || !this.#sub) return;
    const sub = this.#sub;
    this.#sub = undefined;
    sub.then((s) => s.quit()).catch(this.#onError);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const ch of this.#channels.values()) clearTimeout(ch.linger);
    this.#channels.clear();
    const sub = this.#sub;
    this.#sub = undefined;
    if (sub) await (await sub.catch(() => undefined))?.quit().catch(() => undefined);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no reply within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
