// LOCKS_URL=etcd://host:2379[,host:2379…][?requestTimeoutMs=1500&connectTimeoutMs=5000]
// Locks in an etcd 3.4+ cluster through its JSON gateway (plain http, no etcd auth): every member
// listed, calls fail over between them. Fences are (epoch << 40) | create revision, the epoch from
// the SQL anchor (ctx.anchor), so they outrank fences of an earlier backend or etcd cluster.
import { BackendLockProvider, EtcdClient, EtcdLockBackend } from '@allot/lock';
import type { LockBackendContext, LockBackendOpener, OpenedLockBackend } from './types.ts';
import { connectTimeout, maskMultiHostUrl, parseMultiHostUrl } from './multi-host-url.ts';

export interface EtcdUrl {
  endpoints: string[];
  requestTimeoutMs: number | undefined;
  connectTimeoutMs: number;
}

const KNOWN = ['requestTimeoutMs', 'connectTimeoutMs'];

export function parseEtcdUrl(raw: string): EtcdUrl {
  const u = parseMultiHostUrl(raw, 2379);
  const shown = maskMultiHostUrl(raw);
  if (u.scheme !== 'etcd') throw new Error(`${shown}: expected the etcd:// scheme`);
  if (u.username !== undefined || u.password !== undefined) throw new Error(`${shown}: etcd authentication is not supported by allot's etcd client; give it a cluster (or a gateway) without auth`);
  if (u.path.length > 0) throw new Error(`${shown}: expected etcd://host:port,host:port,… (no path; the key prefix comes from the lock prefix)`);
  for (const key of u.params.keys()) if (!KNOWN.includes(key)) throw new Error(`${shown}: unknown parameter "${key}" (known: ${KNOWN.join(', ')})`);
  const t = u.params.get('requestTimeoutMs');
  if (t !== null && !/^[1-9]\d{0,5}$/.test(t)) throw new Error(`${shown}: requestTimeoutMs must be a positive integer (ms), got "${t}"`);
  return {
    endpoints: u.hosts.map((h) => `http://${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`),
    requestTimeoutMs: t === null ? undefined : Number(t),
    connectTimeoutMs: connectTimeout(u.params, shown),
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
  const client = new EtcdClient({ endpoints: cfg.endpoints, ...(cfg.requestTimeoutMs !== undefined ? { requestTimeoutMs: cfg.requestTimeoutMs } : {}) });
  const deadline = Date.now() + cfg.connectTimeoutMs;
  let lastError: unknown;
  while (true) {
    try {
      await clusterReady(client, AbortSignal.timeout(Math.max(1, deadline - Date.now())));
      break;
    } catch (error) {
      lastError = error;
      if (Date.now() >= deadline) {
        client.close();
        throw new Error(
          `cannot reach the etcd cluster at ${displayUrl} (LOCKS_URL) within ${cfg.connectTimeoutMs} ms: ${(lastError as Error).message}; ` +
            'check that the members run, serve clients over plain http on those addresses (--listen-client-urls) and have a quorum',
          { cause: lastError },
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
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
