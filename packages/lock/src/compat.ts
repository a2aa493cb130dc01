// redis-semaphore's Mutex on allot's locks (`@allot/lock/compat`, `allot/lock/compat`): the same
// constructor, options, methods and errors, so code written for redis-semaphore runs unchanged,
// while each acquisition gets a fencing token (mutex.fence) and allot's wake-ups instead of polling.
// The shape follows redis-semaphore (https://github.com/swarthy/redis-semaphore, MIT, © Alexander
// Mochalin); docs/migrating.md lists what differs.
import { randomUUID } from 'node:crypto';
import { LockAbortedError, LockLostError, LockTimeoutError } from './errors.ts';
import { fromIoredis, type IoredisLike } from './redis/ioredis.ts';
import { fromNodeRedis, type NodeRedisLike } from './redis/node-redis.ts';
import { createRedisLockProvider } from './redis/redis-provider.ts';
import type { RedisClient } from './redis/client.ts';
import type { Lease, LockProvider } from './types.ts';

/** redis-semaphore's errors, under their names there */
export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}
export class LostLockError extends Error {
  override readonly name = 'LostLockError';
}

export type LockLostCallback = (this: Mutex, err: LostLockError) => void;

export interface TimeoutOptions {
  /** the lock's TTL in ms (default 10000) */
  lockTimeout?: number;
  /** how long acquire()/tryAcquire() wait (default 10000) */
  acquireTimeout?: number;
  /** give up after this many attempts (default Infinity: wake-ups, no attempt count) */
  acquireAttemptsLimit?: number;
  /** ms between attempts when acquireAttemptsLimit is finite (default 10) */
  retryInterval?: number;
  /** ms between renewals (default lockTimeout * 0.8; 0: no renewal) */
  refreshInterval?: number;
}

export interface LockOptions extends TimeoutOptions {
  /** @deprecated (as in redis-semaphore) use identifier + acquiredExternally: true */
  externallyAcquiredIdentifier?: string;
  /** @deprecated (as in redis-semaphore) provide a custom identifier */
  identifierSuffix?: string;
  /** the owner identity stored with the lock (default crypto.randomUUID()); must be unique per holder */
  identifier?: string;
  /** the lock was acquired elsewhere under `identifier`: acquire() adopts it (and its fence) instead of waiting */
  acquiredExternally?: true;
  /** called once when a renewal finds the lock gone; the default throws (an unhandled rejection, as in redis-semaphore) */
  onLockLost?: LockLostCallback;
}

/** What a Mutex locks through: an ioredis or node-redis client, allot's RedisClient, or any allot LockProvider. */
export type MutexClient = IoredisLike | NodeRedisLike | RedisClient | LockProvider;

export const defaultTimeoutOptions = Object.freeze({
  lockTimeout: 10_000,
  acquireTimeout: 10_000,
  acquireAttemptsLimit: Number.POSITIVE_INFINITY,
  retryInterval: 10,
});

const REFRESH_INTERVAL_COEF = 0.8;

function defaultOnLockLost(err: LostLockError): never {
  throw err;
}

// One provider per client, shared by every Mutex on it (one subscriber connection, opened on the
// first wait and closed when idle, so it never keeps the process alive).
const providers = new WeakMap<object, LockProvider>();

function providerFor(client: MutexClient): LockProvider {
  if (isProvider(client)) return client;
  let p = providers.get(client);
  if (!p) {
    p = createRedisLockProvider({ client: toRedisClient(client) });
    providers.set(client, p);
  }
  return p;
}

function isProvider(c: MutexClient): c is LockProvider {
  return typeof (c as LockProvider).using === 'function' && typeof (c as LockProvider).acquire === 'function';
}

function toRedisClient(c: Exclude<MutexClient, LockProvider>): RedisClient {
  if (typeof (c as RedisClient).scriptLoad === 'function' && typeof (c as RedisClient).kind === 'string') return c as RedisClient;
  // ioredis first: it has a sendCommand of its own
  if (typeof (c as IoredisLike).call === 'function' && typeof (c as IoredisLike).evalsha === 'function') return fromIoredis(c as IoredisLike);
  if (typeof (c as NodeRedisLike).sendCommand === 'function') return fromNodeRedis(c as NodeRedisLike);
  throw new Error('"client" must be an ioredis or node-redis client, an allot RedisClient or an allot LockProvider');
}

interface MutexAcquireOptions {
  identifier: string;
  lockTimeout: number;
  acquireTimeout: number;
  acquireAttemptsLimit: number;
  retryInterval: number;
}

/**
 * redis-semaphore's RedisMutex: `new Mutex(client, key, options)`, acquire(), tryAcquire(),
 * release(), stopRefresh(), isAcquired, identifier; plus `lease` and `fence` (allot's).
 * The lock is allot's lock `key` (redis-semaphore stored it at "mutex:<key>").
 */
export class Mutex {
  protected _kind = 'mutex';
  protected _key: string;
  protected _identifier: string;
  protected _acquireOptions: MutexAcquireOptions;
  protected _refreshTimeInterval: number;
  protected _refreshInterval?: NodeJS.Timeout;
  protected _refreshing = false;
  protected _acquired = false;
  protected _acquiredExternally = false;
  protected _onLockLost: LockLostCallback;
  readonly #name: string;
  readonly #provider: LockProvider;
  #lease: Lease | undefined;

  constructor(client: MutexClient, key: string, options: LockOptions = defaultTimeoutOptions) {
    // Option checks first, in redis-semaphore's order and words.
    const {
      lockTimeout = defaultTimeoutOptions.lockTimeout,
      acquireTimeout = defaultTimeoutOptions.acquireTimeout,
      acquireAttemptsLimit = defaultTimeoutOptions.acquireAttemptsLimit,
      retryInterval = defaultTimeoutOptions.retryInterval,
      refreshInterval = Math.round(lockTimeout * REFRESH_INTERVAL_COEF),
      onLockLost = defaultOnLockLost,
      externallyAcquiredIdentifier,
      identifierSuffix,
      identifier,
      acquiredExternally,
    } = options;
    if (identifier !== undefined && (!identifier || typeof identifier !== 'string')) throw new Error('identifier must be not empty random string');
    if (acquiredExternally && !identifier) throw new Error('acquiredExternally=true meanless without custom identifier');
    if (externallyAcquiredIdentifier && (identifier || acquiredExternally)) throw new Error('Invalid usage. Use custom identifier and acquiredExternally: true');
    this._identifier = identifier || externallyAcquiredIdentifier || (identifierSuffix ? `${randomUUID()}-${identifierSuffix}` : randomUUID());
    this._acquiredExternally = !!acquiredExternally || !!externallyAcquiredIdentifier;
    this._acquireOptions = { lockTimeout, acquireTimeout, acquireAttemptsLimit, retryInterval, identifier: this._identifier };
    this._refreshTimeInterval = refreshInterval;
    this._onLockLost = onLockLost;
    if (!client) throw new Error('"client" is required');
    if (!key) throw new Error('"key" is required');
    if (typeof key !== 'string') throw new Error('"key" must be a string');
    this.#name = key;
    this._key = `mutex:${key}`;
    this.#provider = providerFor(client);
  }

  get identifier(): string {
    return this._identifier;
  }

  get isAcquired(): boolean {
    return this._acquired;
  }

  /** allot: the current acquisition's lease (fence, signal, expiresAt), while acquired */
  get lease(): Lease | undefined {
    return this._acquired ? this.#lease : undefined;
  }

  /** allot: the current acquisition's fencing token; pass it to fenced writes */
  get fence(): bigint | undefined {
    return this.lease?.fence;
  }

  #startRefresh(): void {
    this._refreshInterval = setInterval(this._processRefresh, this._refreshTimeInterval);
    this._refreshInterval.unref();
  }

  stopRefresh(): void {
    if (this._refreshInterval) clearInterval(this._refreshInterval);
  }

  // As in redis-semaphore: a failed renewal calls onLockLost inside this async function, so the
  // default (throwing) callback ends up as an unhandled rejection.
  private _processRefresh = async (): Promise<void> => {
    if (this._refreshing) return;
    this._refreshing = true;
    try {
      const refreshed = await this._refresh();
      if (!refreshed) {
        if (!this._acquired) return; // released on purpose meanwhile
        this._acquired = false;
        this.stopRefresh();
        this._onLockLost(new LostLockError(`Lost ${this._kind} for key ${this._key}`));
      }
    } finally {
      this._refreshing = false;
    }
  };

  /** Renews the lease, or (acquired externally, nothing adopted yet) adopts the lock; false when it is gone. */
  protected async _refresh(): Promise<boolean> {
    const { lockTimeout, identifier } = this._acquireOptions;
    const lease = this.#lease;
    try {
      if (!lease) {
        this.#lease = await this.#provider.adopt(this.#name, { identifier, ttlMs: lockTimeout });
        return true;
      }
      await lease.extend(lockTimeout);
      return true;
    } catch (error) {
      if (error instanceof LockLostError) return false;
      // Backend unreachable: not proof of loss, until the lease's own deadline passes.
      if (lease && Date.now() >= lease.expiresAt) return false;
      if (!lease) throw error;
      return true;
    }
  }

  protected async _acquire(abortSignal?: AbortSignal): Promise<boolean> {
    const { lockTimeout, acquireTimeout, acquireAttemptsLimit, retryInterval, identifier } = this._acquireOptions;
    const opts = { ttlMs: lockTimeout, identifier, ...(abortSignal ? { signal: abortSignal } : {}) };
    try {
      if (Number.isFinite(acquireAttemptsLimit)) {
        // redis-semaphore's loop: a bounded number of attempts, retryInterval apart
        const end = Date.now() + acquireTimeout;
        let attempt = 0;
        while (Date.now() < end && ++attempt <= acquireAttemptsLimit) {
          abortSignal?.throwIfAborted();
          const lease = await this.#provider.tryAcquire(this.#name, opts);
          if (lease) {
            this.#lease = lease;
            return true;
          }
          await sleep(retryInterval, abortSignal);
        }
        return false;
      }
      this.#lease = await this.#provider.acquire(this.#name, { ...opts, timeoutMs: acquireTimeout, retryMaxDelayMs: Math.max(1, retryInterval) });
      return true;
    } catch (error) {
      if (error instanceof LockTimeoutError) return false;
      // redis-semaphore rejects with the signal's own reason
      if (error instanceof LockAbortedError && abortSignal?.aborted) throw abortSignal.reason;
      throw error;
    }
  }

  protected async _release(): Promise<void> {
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease) return lease.release();
    // acquired externally and never adopted here: release it if it is still held under our identifier
    const adopted = await this.#provider.adopt(this.#name, { identifier: this._identifier, ttlMs: this._acquireOptions.lockTimeout }).catch((error: unknown) => {
      if (error instanceof LockLostError) return undefined;
      throw error;
    });
    await adopted?.release();
  }

  /** Waits up to acquireTimeout; throws TimeoutError. */
  async acquire(abortSignal?: AbortSignal): Promise<void> {
    const acquired = await this.tryAcquire(abortSignal);
    if (!acquired) throw new TimeoutError(`Acquire ${this._kind} ${this._key} timeout`);
  }

  /** Like acquire() (it also waits up to acquireTimeout), but resolves false instead of throwing. */
  async tryAcquire(abortSignal?: AbortSignal): Promise<boolean> {
    const acquired = this._acquiredExternally ? await this._refresh() : await this._acquire(abortSignal);
    if (!acquired) return false;
    this._acquired = true;
    this._acquiredExternally = false;
    if (this._refreshTimeInterval > 0) this.#startRefresh();
    return true;
  }

  /** Always safe to call, also after the lock was lost (allot never throws for that). */
  async release(): Promise<void> {
    if (this._refreshTimeInterval > 0) this.stopRefresh();
    if (this._acquired || this._acquiredExternally) await this._release();
    this._acquired = false;
    this._acquiredExternally = false;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
