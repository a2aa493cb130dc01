// A minimal etcd v3 client over the JSON gateway that etcd 3.4 serves at /v3/* (no gRPC
// dependency): unary calls with fail-over across endpoints, and streaming watches.
import http from 'node:http';

/** The gateway's int64s arrive as decimal strings; keys and values as base64. */
export interface EtcdKv {
  key: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  lease?: string;
}
export interface EtcdHeader {
  revision?: string;
}

export interface EtcdClientOptions {
  /** http://host:port of each member; a bare host:port means http */
  endpoints: string[];
  /** one request on one endpoint; then the next endpoint is tried. Default 1500 ms. */
  requestTimeoutMs?: number;
}

/** Every endpoint failed for this call; causes lists each endpoint's failure. */
export class EtcdUnavailableError extends Error {
  override readonly name = 'EtcdUnavailableError';
  constructor(readonly path: string, readonly causes: { endpoint: string; error: string }[]) {
    super(`etcd ${path} failed on every endpoint: ${causes.map((c) => `${c.endpoint}: ${c.error}`).join('; ')}`);
  }
}

/** etcd answered with an error that another endpoint would answer the same way. */
export class EtcdRequestError extends Error {
  override readonly name = 'EtcdRequestError';
  constructor(readonly path: string, readonly status: number, readonly grpcCode: number | undefined, message: string) {
    super(`etcd ${path} answered ${status}: ${message}`);
  }
}

class RetryableError extends Error {}

/** call(path, { [MULTI]: [m1, m2] }) sends several messages on a streaming RPC and returns every reply */
const MULTI = Symbol('etcd.multi');

// Answers that mean "this member cannot serve now", not "the request is wrong".
const RETRYABLE_STATUS = new Set([502, 503, 504]);
const RETRYABLE_MESSAGE = /no leader|leader changed|request timed out|not capable|too many requests|stopped|timed out/i;

export function normalizeEndpoint(e: string): URL {
  const u = new URL(/^[a-z]+:\/\//i.test(e) ? e : `http://${e}`);
  if (u.protocol !== 'http:') throw new RangeError(`etcd endpoint ${e}: only http:// is supported by the JSON gateway client`);
  return u;
}

export interface WatchHandle {
  close(): void;
}

export interface WatchCallbacks {
  /** the key was deleted at or after the start revision */
  onDelete(): void;
  /** the stream broke or was refused (compaction, member gone): the caller re-checks */
  onError(error: unknown): void;
}

export class EtcdClient {
  readonly endpoints: readonly URL[];
  /** the cluster id in the latest reply: a rebuilt cluster (its revisions restart) has a new one */
  clusterId: string | undefined;
  readonly #timeoutMs: number;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  readonly #watches = new Set<http.ClientRequest>();
  #current = 0;
  #closed = false;

  constructor(opts: EtcdClientOptions) {
    if (!opts.endpoints.length) throw new RangeError('etcd: at least one endpoint is required');
    this.endpoints = opts.endpoints.map(normalizeEndpoint);
    this.#timeoutMs = opts.requestTimeoutMs ?? 1_500;
  }

  /** POSTs body to path, starting at the endpoint that answered last and failing over on connection errors. */
  async call<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    // A streaming RPC takes one JSON message per line; its replies come back one per line.
    const multi = (body as { [MULTI]?: unknown[] } | null)?.[MULTI];
    const payload = multi ? multi.map((m) => JSON.stringify(m)).join('\n') : JSON.stringify(body);
    const causes: { endpoint: string; error: string }[] = [];
    const n = this.endpoints.length;
    const start = this.#current;
    for (let i = 0; i < n; i++) {
      if (this.#closed) throw new Error('etcd client closed');
      signal?.throwIfAborted();
      const idx = (start + i) % n;
      try {
        const out = await this.#post<T>(this.endpoints[idx]!, path, payload, signal, multi !== undefined);
        this.#current = idx;
        return out;
      } catch (error) {
        if (!(error instanceof RetryableError)) throw error;
        causes.push({ endpoint: this.endpoints[idx]!.host, error: error.message });
      }
    }
    // Next time, start past the endpoint that failed first.
    this.#current = (start + 1) % n;
    throw new EtcdUnavailableError(path, causes);
  }

  /**
   * Renews several leases in one request (the keepalive stream with one message per lease);
   * returns each lease's remaining TTL in seconds, 0 for a lease that no longer exists.
   */
  async keepAlive(ids: readonly string[]): Promise<Map<string, number>> {
    const replies = await this.call<{ ID?: string; TTL?: string }[]>('/v3/lease/keepalive', { [MULTI]: ids.map((ID) => ({ ID })) });
    const out = new Map<string, number>();
    for (const r of replies) if (r.ID) out.set(r.ID, Number(r.TTL ?? 0));
    return out;
  }

  #post<T>(endpoint: URL, path: string, payload: string, signal: AbortSignal | undefined, multi = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        { host: endpoint.hostname, port: endpoint.port, path, method: 'POST', agent: this.#agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }, timeout: this.#timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(new RetryableError(e.message)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            let parsed: unknown;
            let lines: unknown[] = [];
            try {
              lines = text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown);
              parsed = lines[0] ?? {};
            } catch {
              return reject(new RetryableError(`unparsable reply (${status}): ${text.slice(0, 200)}`));
            }
            const err = parsed as { error?: string; message?: string; code?: number };
            if (status !== 200 || err.error !== undefined) {
              const message = err.message ?? err.error ?? text.slice(0, 200);
              if (RETRYABLE_STATUS.has(status) || err.code === 14 || RETRYABLE_MESSAGE.test(message)) return reject(new RetryableError(`${status} ${message}`));
              return reject(new EtcdRequestError(path, status, err.code, message));
            }
            // Streaming RPCs (lease keepalive) wrap each message in {"result": …}.
            const unwrap = (m: unknown) => (m as { result?: unknown }).result ?? m;
            const cluster = (unwrap(parsed) as { header?: { cluster_id?: string } }).header?.cluster_id;
            if (cluster) this.clusterId = cluster;
            resolve((multi ? lines.map(unwrap) : unwrap(parsed)) as T);
          });
        },
      );
      const onAbort = () => req.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('close', () => signal?.removeEventListener('abort', onAbort));
      req.on('timeout', () => req.destroy(new RetryableError(`no reply within ${this.#timeoutMs} ms`)));
      req.on('error', (e) => {
        if (signal?.aborted) reject(signal.reason);
        else reject(e instanceof RetryableError ? e : new RetryableError(e.message || (e as NodeJS.ErrnoException).code || 'connection error'));
      });
      req.end(payload);
    });
  }

  /**
   * Watches key for its deletion from startRevision on (one stream per call, like etcd's own
   * mutex: each waiter watches only its predecessor). Calls exactly one callback, at most once.
   */
  watchDelete(key: string, startRevision: bigint, cb: WatchCallbacks): WatchHandle {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      req.destroy();
      this.#watches.delete(req);
      fn();
    };
    const endpoint = this.endpoints[this.#current]!;
    const payload = JSON.stringify({ create_request: { key, start_revision: startRevision.toString(), filters: ['NOPUT'] } });
    const req = http.request({ host: endpoint.hostname, port: endpoint.port, path: '/v3/watch', method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return finish(() => {
          this.#rotate(endpoint);
          cb.onError(new Error(`watch answered ${res.statusCode}`));
        });
      }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          let msg: { result?: { canceled?: boolean; compact_revision?: string; cancel_reason?: string; events?: { type?: string }[] }; error?: unknown };
          try {
            msg = JSON.parse(line) as typeof msg;
          } catch {
            return finish(() => cb.onError(new Error('unparsable watch message')));
          }
          const r = msg.result;
          if (!r || msg.error !== undefined) return finish(() => cb.onError(new Error(`watch error: ${JSON.stringify(msg.error)}`)));
          if (r.canceled) return finish(() => cb.onError(new Error(`watch canceled: ${r.cancel_reason ?? `compacted at ${r.compact_revision}`}`)));
          // NOPUT filter: any event is a deletion (the gateway omits type for the zero value PUT).
          if (r.events?.some((e) => e.type === 'DELETE')) return finish(() => cb.onDelete());
        }
      });
      res.on('end', () => finish(() => cb.onError(new Error('watch stream ended'))));
      res.on('error', (e) => finish(() => cb.onError(e)));
    });
    req.on('error', (e) => {
      this.#rotate(endpoint);
      finish(() => cb.onError(e));
    });
    req.end(payload);
    this.#watches.add(req);
    return {
      close: () => {
        settled = true;
        req.destroy();
        this.#watches.delete(req);
      },
    };
  }

  /** a watch on this endpoint failed: later calls start at the next one */
  #rotate(endpoint: URL): void {
    if (this.endpoints[this.#current] === endpoint) this.#current = (this.#current + 1) % this.endpoints.length;
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watches) w.destroy();
    this.#watches.clear();
    this.#agent.destroy();
  }
}
