// Composition for the etcd lock provider: the JSON-gateway client, the etcd backend and the
// generic provider (validity, watchdog, metrics) over it.
import type { FenceAnchor } from '../fence/fence-anchor.ts';
import { BackendLockProvider, type LockProviderOptions } from '../provider.ts';
import type { LockProvider } from '../types.ts';
import { EtcdClient, type EtcdClientOptions } from './etcd-client.ts';
import { EtcdLockBackend } from './etcd-backend.ts';

export interface EtcdLockProviderOptions extends LockProviderOptions {
  /** client URLs of the cluster's members, e.g. ['http://10.0.0.1:2379', '10.0.0.2:2379'] (or all https://); calls fail over between them */
  endpoints: string[];
  /** https endpoints: CA, and a client certificate and key (EtcdClientOptions.tls) */
  tls?: EtcdClientOptions['tls'];
  /** etcd user and password, when the cluster has auth enabled (EtcdClientOptions.auth) */
  auth?: EtcdClientOptions['auth'];
  /** key prefix; default "allot:lock:" */
  prefix?: string;
  /** one request on one endpoint before the next is tried; default 1500 ms */
  requestTimeoutMs?: number;
  /** a waiter re-checks its place at least this often even if its watch stays silent; default 1000 ms */
  recheckMs?: number;
  /** fences (epoch << 40) | revision, the epoch from this anchor once per cluster; default: the revision alone */
  fenceAnchor?: FenceAnchor;
}

export function createEtcdLockProvider(opts: EtcdLockProviderOptions): LockProvider {
  const client = new EtcdClient({ endpoints: opts.endpoints, requestTimeoutMs: opts.requestTimeoutMs, ...(opts.tls ? { tls: opts.tls } : {}), ...(opts.auth ? { auth: opts.auth } : {}) });
  const backend = new EtcdLockBackend({ client, ownsClient: true, prefix: opts.prefix, recheckMs: opts.recheckMs, fenceAnchor: opts.fenceAnchor });
  return new BackendLockProvider(backend, opts);
}
