// One shared subscriber connection per provider, opened on the first wait, with reference-counted
// channel subscriptions. Unused channels linger briefly so a busy key does not SUBSCRIBE/UNSUBSCRIBE
// on every wait; when the last one goes, the connection is closed too, so an idle provider never
// keeps the process alive (a script that locked and returned exits without close()).
// A listener subscribes to a whole channel (a key's channel: every message), or to the messages
// of one owner id on it (a provider's own channel, messages "<owner id> <ms>"): those are handed
// to that owner's listeners only, with a map lookup whatever the number of waiters.
import type { RedisClient, RedisSubscriber } from './client.ts';
import type { WakeSubscription } from '../types.ts';

type Listener = (payload: string) => void;

interface Channel {
  /** every message */
  listeners: Set<Listener>;
  /** messages naming this owner id (first word of the payload); "*" reaches all of them */
  owners: Map<string, Set<Listener>>;
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
          if (ch) deliver(ch, message);
        });
        // Messages published while disconnected are gone: wake every waiter to re-check.
        sub.onReconnect(() => {
          for (const ch of this.#channels.values()) deliver(ch, '*');
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

  /** Listens on channel: to every message, or (owner given) to those naming owner, and '*'. */
  async subscribe(channel: string, listener: Listener, owner?: string): Promise<WakeSubscription> {
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
      ch = { listeners: new Set(), owners: new Map(), ready, linger: undefined };
      this.#channels.set(channel, ch);
      ready.catch(() => {
        if (this.#channels.get(channel) === ch) this.#channels.delete(channel);
      });
    }
    clearTimeout(ch.linger);
    ch.linger = undefined;
    const set = owner === undefined ? ch.listeners : ch.owners.get(owner) ?? ch.owners.set(owner, new Set()).get(owner)!;
    set.add(listener);
    const entry = ch;
    const close = () => {
      if (!set.delete(listener)) return;
      if (owner !== undefined && set.size === 0 && entry.owners.get(owner) === set) entry.owners.delete(owner);
      if (inUse(entry)) return;
      clearTimeout(entry.linger);
      entry.linger = setTimeout(() => {
        if (inUse(entry)) return;
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

function inUse(ch: Channel): boolean {
  return ch.listeners.size > 0 || ch.owners.size > 0;
}

function deliver(ch: Channel, message: string): void {
  for (const l of ch.listeners) l(message);
  if (ch.owners.size === 0) return;
  const sp = message.indexOf(' ');
  const target = sp < 0 ? message : message.slice(0, sp);
  if (target === '*') {
    for (const set of ch.owners.values()) for (const l of set) l(message);
    return;
  }
  const set = ch.owners.get(target);
  if (set) for (const l of set) l(message);
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
