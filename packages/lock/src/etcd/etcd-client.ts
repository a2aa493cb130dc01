// A minimal etcd v3 client over the JSON gateway that etcd 3.4 serves at /v3/* (no gRPC
// dependency): unary calls with fail-over across endpoints, and streaming watches; plain http or
// TLS (https, optionally with a client certificate), and etcd's user/password authentication.
import http from 'node:http';
import https from 'node:https';

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
  /** http://host:port or https://host:port of each member (all one or the other); a bare host:port means http */
  endpoints: string[];
  /** one request on one endpoint; then the next endpoint is tried. Default 1500 ms. */
  requestTimeoutMs?: number;
  /** https endpoints: the CA that signed the members' certificates (default: Node's trust store)
   * and a client certificate with its key (members run with --client-cert-auth) */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  /** etcd authentication (auth enabled): the client takes a token with /v3/auth/authenticate, sends
   * it with every request, and takes a new one when etcd says the token is invalid (expired) */
  auth?: { username: string; password: string };
}

/** etcd refused the user name or password (or authentication is not enabled). */
export class EtcdAuthError extends Error {
  override readonly name = 'EtcdAuthError';
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
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RangeError(`etcd endpoint ${e}: only http:// and https:// are supported by the JSON gateway client`);
  return u;
}

/** gRPC code 16 (unauthenticated) and the messages etcd gives an expired or unknown token. */
function tokenRefused(e: EtcdRequestError): boolean {
  return e.grpcCode === 16 || /invalid auth token|user name is empty/i.test(e.message);
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
  readonly #tls: boolean;
  readonly #agent: http.Agent;
  /** TLS settings (ca, cert, key) for the watches, which take a connection each (a long-lived stream) */
  readonly #watchAgentOptions: https.AgentOptions;
  readonly #auth: EtcdClientOptions['auth'];
  readonly #watches = new Set<http.ClientRequest>();
  #token: string | undefined;
  #authenticating: Promise<string> | undefined;
  #current = 0;
  #closed = false;

  constructor(opts: EtcdClientOptions) {
    if (!opts.endpoints.length) throw new RangeError('etcd: at least one endpoint is required');
    this.endpoints = opts.endpoints.map(normalizeEndpoint);
    this.#tls = this.endpoints[0]!.protocol === 'https:';
    if (this.endpoints.some((e) => (e.protocol === 'https:') !== this.#tls)) throw new RangeError('etcd: the endpoints must be all http:// or all https://');
    if (opts.tls && !this.#tls) throw new RangeError('etcd: TLS options need https:// endpoints');
    this.#timeoutMs = opts.requestTimeoutMs ?? 1_500;
    const t = opts.tls ?? {};
    this.#watchAgentOptions = { ...(t.ca ? { ca: t.ca } : {}), ...(t.cert ? { cert: t.cert } : {}), ...(t.key ? { key: t.key } : {}) };
    this.#agent = this.#tls ? new https.Agent({ keepAlive: true, maxSockets: 32, ...this.#watchAgentOptions }) : new http.Agent({ keepAlive: true, maxSockets: 32 });
    this.#auth = opts.auth;
  }

  #request(options: https.RequestOptions, cb: (res: http.IncomingMessage) => void): http.ClientRequest {
    return this.#tls ? https.request(options, cb) : http.request(options, cb);
  }

  /** The token to send (authenticating first when there is none yet); undefined without auth. */
  async #currentToken(signal?: AbortSignal): Promise<string | undefined> {
    if (!this.#auth) return undefined;
    return this.#token ?? (await this.#authenticate(signal));
  }

  /** One authentication at a time; a refused one is an EtcdAuthError, not retried. */
  #authenticate(signal?: AbortSignal): Promise<string> {
    this.#authenticating ??= this.#unary<{ token?: string }>('/v3/auth/authenticate', { name: this.#auth!.username, password: this.#auth!.password }, signal, undefined)
      .then(
        (r) => {
          if (!r.token) throw new EtcdAuthError(`etcd authentication for user "${this.#auth!.username}" returned no token: is auth enabled on the cluster (etcdctl auth enable)?`);
          this.#token = r.token;
          return r.token;
        },
        (error: unknown) => {
          if (error instanceof EtcdRequestError) throw new EtcdAuthError(`etcd refused user "${this.#auth!.username}": ${error.message}`);
          throw error;
        },
      )
      .finally(() => {
        this.#authenticating = undefined;
      });
    return this.#authenticating;
  }

  /**
   * POSTs body to path, starting at the endpoint that answered last and failing over on
   * connection errors. With auth, a token etcd no longer knows (expired) is replaced once.
   */
  async call<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const token = await this.#currentToken(signal);
    try {
      return await this.#unary<T>(path, body, signal, token);
    } catch (error) {
      if (!(token !== undefined && error instanceof EtcdRequestError && tokenRefused(error))) throw error;
      if (this.#token === token) this.#token = undefined;
      return this.#unary<T>(path, body, signal, await this.#currentToken(signal));
    }
  }

  async #unary<T>(path: string, body: unknown, signal: AbortSignal | undefined, token: string | undefined): Promise<T> {
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
        const out = await this.#post<T>(this.endpoints[idx]!, path, payload, signal, multi !== undefined, token);
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

  #post<T>(endpoint: URL, path: string, payload: string, signal: AbortSignal | undefined, multi: boolean, token: string | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
      // the gateway passes Authorization on as the request's token
      if (token !== undefined) headers.authorization = token;
      const req = this.#request(
        { host: endpoint.hostname, port: endpoint.port, path, method: 'POST', agent: this.#agent, headers, timeout: this.#timeoutMs },
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
    // Without a token yet (auth, before the first call) or with a refused one, the stream fails
    // and the caller re-checks through call(), which authenticates.
    const token = this.#token;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      req.destroy();
      this.#watches.delete(req);
      fn();
    };
    const endpoint = this.endpoints[this.#current]!;
    const payload = JSON.stringify({ create_request: { key, start_revision: startRevision.toString(), filters: ['NOPUT'] } });
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
    if (token !== undefined) headers.authorization = token;
    const req = this.#request({ host: endpoint.hostname, port: endpoint.port, path: '/v3/watch', method: 'POST', agent: false, ...this.#watchAgentOptions, headers }, (res) => {
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
          // An expired token ends the stream (an error, or a canceled watch naming it): the next
          // call() takes a new one, and the caller's re-check goes through call().
          const refused = (why: unknown) => {
            if (token !== undefined && this.#token === token && /invalid auth token/i.test(JSON.stringify(why))) this.#token = undefined;
          };
          if (!r || msg.error !== undefined) {
            refused(msg.error);
            return finish(() => cb.onError(new Error(`watch error: ${JSON.stringify(msg.error)}`)));
          }
          if (r.canceled) {
            refused(r.cancel_reason);
            return finish(() => cb.onError(new Error(`watch canceled: ${r.cancel_reason ?? `compacted at ${r.compact_revision}`}`)));
          }
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
