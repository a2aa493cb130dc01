// LOCKS_URL=etcd://[user:password@]host:2379[,host:2379…][?requestTimeoutMs=1500&connectTimeoutMs=5000]
// (etcds://…[&tlsCaFile=…&tlsCertFile=…&tlsKeyFile=…]: TLS to the members)
// Locks in an etcd 3.4+ cluster through its JSON gateway (http or https; etcd's user/password
// authentication when the URL has a user): every member listed, calls fail over between them. Fences are (epoch << 40) | create revision, the epoch from
// the SQL anchor (ctx.anchor), so they outrank fences of an earlier backend or etcd cluster.
import { BackendLockProvider, EtcdAuthError, EtcdClient, EtcdLockBackend, EtcdRequestError } from '@allot/lock';
import type { LockBackendContext, LockBackendOpener, OpenedLockBackend } from './types.ts';
import { checkParams, connectTimeout, maskMultiHostUrl, parseMultiHostUrl, TLS_PARAMS, tlsFiles, tlsOptions, type TlsFiles } from './multi-host-url.ts';

export interface EtcdUrl {
  endpoints: string[];
  requestTimeoutMs: number | undefined;
  connectTimeoutMs: number;
  /** etcd authentication: the URL's user and password */
  auth: { username: string; password: string } | undefined;
  /** etcds://: TLS to the members (undefined: plain http) */
  tls: TlsFiles | undefined;
}

const KNOWN = ['requestTimeoutMs', 'connectTimeoutMs', ...TLS_PARAMS];

export function parseEtcdUrl(raw: string): EtcdUrl {
  const u = parseMultiHostUrl(raw, 2379);
  const shown = maskMultiHostUrl(raw);
  if (u.scheme !== 'etcd' && u.scheme !== 'etcds') throw new Error(`${shown}: expected the etcd:// (or, with TLS, etcds://) scheme`);
  if ((u.username === undefined) !== (u.password === undefined)) throw new Error(`${shown}: etcd authentication takes a user and a password (${u.scheme}://user:password@host:port,…)`);
  if (u.path.length > 0) throw new Error(`${shown}: expected ${u.scheme}://host:port,host:port,… (no path; the key prefix comes from the lock prefix)`);
  checkParams(u, KNOWN, shown);
  const tls = tlsFiles(u, u.scheme === 'etcds', shown, 'etcds');
  const t = u.params.get('requestTimeoutMs');
  if (t !== null && !/^[1-9]\d{0,5}$/.test(t)) throw new Error(`${shown}: requestTimeoutMs must be a positive integer (ms), got "${t}"`);
  return {
    endpoints: u.hosts.map((h) => `${tls ? 'https' : 'http'}://${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`),
    requestTimeoutMs: t === null ? undefined : Number(t),
    connectTimeoutMs: connectTimeout(u.params, shown),
    auth: u.username !== undefined && u.password !== undefined ? { username: u.username, password: u.password } : undefined,
    tls,
  };
}

interface StatusReply {
  leader?: string;
}

/** Resolves when some member answers and knows a leader (the cluster can commit). */
async function clusterReady(client: EtcdClient, signal?: AbortSignal): Promise<void> {
  const st = await client.call<StatusReply>('/v3/maintenance/status', {}, signal);
  if (!st.leader || st.leader === '0') throw new Error('the member that answered knows no leader (no quorum?)');
}

export async function openEtcd(url: URL | string, ctx: LockBackendContext): Promise<OpenedLockBackend> {
  const raw = String(url);
  const displayUrl = maskMultiHostUrl(raw);
  const cfg = parseEtcdUrl(raw);
  const tls = cfg.tls ? await tlsOptions(cfg.tls, displayUrl) : undefined;
  const client = new EtcdClient({
    endpoints: cfg.endpoints,
    ...(cfg.requestTimeoutMs !== undefined ? { requestTimeoutMs: cfg.requestTimeoutMs } : {}),
    ...(tls ? { tls } : {}),
    ...(cfg.auth ? { auth: cfg.auth } : {}),
  });
  const deadline = Date.now() + cfg.connectTimeoutMs;
  let lastError: unknown;
  while (true) {
    try {
      await clusterReady(client, AbortSignal.timeout(Math.max(1, deadline - Date.now())));
      break;
    } catch (error) {
      lastError = error;
      // a wrong user or password will not get better by waiting
      if (error instanceof EtcdAuthError) {
        client.close();
        throw new Error(`cannot log in to the etcd cluster at ${displayUrl} (LOCKS_URL): ${error.message}; check the user and password in the URL`, { cause: error });
      }
      if (Date.now() >= deadline) {
        client.close();
        throw new Error(
          `cannot reach the etcd cluster at ${displayUrl} (LOCKS_URL) within ${cfg.connectTimeoutMs} ms: ${(lastError as Error).message}; ` +
            (cfg.tls
              ? "check that the members run, serve clients over https on those addresses (--listen-client-urls https://…, --cert-file) and have a quorum, that the CA (?tlsCaFile=) signed their certificates for these host names, and, if they require client certificates (--client-cert-auth), tlsCertFile and tlsKeyFile"
              : 'check that the members run, serve clients over plain http on those addresses (--listen-client-urls; etcds:// for https) and have a quorum'),
          { cause: lastError },
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  // The status call needs no credentials: a read under the lock prefix shows whether these can use
  // the keys (auth enabled without a user in the URL, or a user without permission on the prefix).
  try {
    await client.call('/v3/kv/range', { key: Buffer.from(ctx.prefix).toString('base64'), limit: 1, keys_only: true, serializable: true }, AbortSignal.timeout(Math.max(1_000, deadline - Date.now())));
  } catch (error) {
    client.close();
    const denied = error instanceof EtcdRequestError && /user name is empty|permission denied|invalid auth token/i.test(error.message);
    throw new Error(
      `the etcd cluster at ${displayUrl} (LOCKS_URL) refused to read the lock keys: ${(error as Error).message}` +
        (denied ? (cfg.auth ? `; give user "${cfg.auth.username}" read and write permission on the prefix "${ctx.prefix}"` : '; the cluster has authentication enabled: put the user and password in the URL (etcd://user:password@host:port,…)') : ''),
      { cause: error },
    );
  }
  const backend = new EtcdLockBackend({ client, ownsClient: true, prefix: ctx.prefix, fenceAnchor: ctx.anchor });
  const provider = new BackendLockProvider(backend, { metrics: ctx.metrics, ...(ctx.onEvent ? { onEvent: ctx.onEvent } : {}) });
  return {
    provider,
    kind: 'etcd',
    displayUrl,
    ping: () => clusterReady(client, AbortSignal.timeout(2_000)),
    close: () => provider.close(),
  };
}

export const open: LockBackendOpener = openEtcd;
