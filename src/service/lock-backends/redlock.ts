// LOCKS_URL=redlock://[[user]:password@]host:port,host:port,host:port[/<db>][?nodeTimeoutMs=100]
// Redlock over N independent Redis masters (N odd): a lock counts only when a majority grants it.
// The credentials and the database number apply to every node. Fences are anchored in SQL (ctx.anchor).
import { Redis } from 'ioredis';
import { createRedlockProvider, fromIoredis } from '@allot/lock';
import type { LockBackendContext, LockBackendOpener, OpenedLockBackend } from './types.ts';
import { maskMultiHostUrl, parseMultiHostUrl } from './multi-host-url.ts';

const CONNECT_TIMEOUT_MS = 5_000;

export interface RedlockUrl {
  nodes: { host: string; port: number }[];
  username: string | undefined;
  password: string | undefined;
  db: number;
  nodeTimeoutMs: number | undefined;
}

export function parseRedlockUrl(raw: string): RedlockUrl {
  const u = parseMultiHostUrl(raw, 6379);
  const shown = maskMultiHostUrl(raw);
  if (u.scheme !== 'redlock') throw new Error(`${shown}: expected the redlock:// scheme`);
  const [db, ...rest] = u.path;
  if (rest.length > 0 || (db !== undefined && !/^\d{1,2}$/.test(db))) throw new Error(`${shown}: expected redlock://host:port,host:port,host:port[/<db number>]`);
  if (u.hosts.length % 2 === 0) throw new Error(`${shown}: Redlock needs an odd number of independent Redis masters (3 or 5), got ${u.hosts.length}`);
  const seen = new Set(u.hosts.map((h) => `${h.host}:${h.port}`));
  if (seen.size !== u.hosts.length) throw new Error(`${shown}: a node is listed twice; Redlock needs independent masters`);
  const t = u.params.get('nodeTimeoutMs');
  if (t !== null && !/^[1-9]\d{0,5}$/.test(t)) throw new Error(`${shown}: nodeTimeoutMs must be a positive integer (ms), got "${t}"`);
  for (const key of u.params.keys()) if (key !== 'nodeTimeoutMs') throw new Error(`${shown}: unknown parameter "${key}" (known: nodeTimeoutMs)`);
  return { nodes: u.hosts, username: u.username, password: u.password, db: Number(db ?? 0), nodeTimeoutMs: t === null ? undefined : Number(t) };
}

export async function openRedlock(url: URL | string, ctx: LockBackendContext): Promise<OpenedLockBackend> {
  const raw = String(url);
  const displayUrl = maskMultiHostUrl(raw);
  const cfg = parseRedlockUrl(raw);
  const names = cfg.nodes.map((n) => (n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`));
  const quorum = Math.floor(cfg.nodes.length / 2) + 1;
  const lastError: (string | undefined)[] = cfg.nodes.map(() => undefined);
  let opened = false;
  const clients = cfg.nodes.map((n, i) => {
    // Each node connects (and reconnects) on its own: a node down at start joins when it is back.
    // maxRetriesPerRequest: a command to a dead node fails soon; the per-node timeout bounds it anyway.
    const r = new Redis({
      host: n.host,
      port: n.port,
      db: cfg.db,
      ...(cfg.username ? { username: cfg.username } : {}),
      ...(cfg.password ? { password: cfg.password } : {}),
      connectTimeout: 2_000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
    });
    r.on('error', (error: Error) => {
      lastError[i] = error.message;
      if (opened) ctx.onEvent?.({ type: 'backendError', error: new Error(`Redlock node ${names[i]}: ${error.message}`, { cause: error }) });
    });
    return r;
  });
  const disconnectAll = () => {
    for (const c of clients) c.disconnect();
  };
  try {
    await majorityReady(clients, quorum, CONNECT_TIMEOUT_MS);
  } catch {
    disconnectAll();
    const detail = clients.map((c, i) => `${names[i]}: ${c.status === 'ready' ? 'ready' : (lastError[i] ?? c.status)}`).join('; ');
    throw new Error(
      `cannot reach a majority (${quorum} of ${clients.length}) of the Redlock nodes at ${displayUrl} (LOCKS_URL) within ${CONNECT_TIMEOUT_MS} ms: ${detail}; ` +
        'check that the Redis masters run and listen on those addresses, and the password / database in the URL',
    );
  }
  opened = true;
  const provider = createRedlockProvider({
    clients: clients.map((c) => fromIoredis(c)),
    nodeNames: names,
    prefix: ctx.prefix,
    fenceAnchor: ctx.anchor,
    metrics: ctx.metrics,
    ...(cfg.nodeTimeoutMs !== undefined ? { nodeTimeoutMs: cfg.nodeTimeoutMs } : {}),
    ...(ctx.onEvent ? { onEvent: ctx.onEvent } : {}),
  });
  return {
    provider,
    kind: 'redlock',
    displayUrl,
    // Up when a majority answers: that is all a lock needs.
    ping: async () => {
      const replies = await Promise.allSettled(clients.map((c) => withTimeout(c.ping(), 1_000)));
      const up = replies.filter((r) => r.status === 'fulfilled').length;
      if (up >= quorum) return;
      const detail = replies.map((r, i) => `${names[i]}: ${r.status === 'fulfilled' ? 'ok' : (r.reason as Error).message}`).join('; ');
      throw new Error(`only ${up} of ${clients.length} Redlock nodes answer (${quorum} needed): ${detail}`);
    },
    close: async () => {
      await provider.close();
      await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    },
  };
}

function majorityReady(clients: Redis[], quorum: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = new Set<Redis>();
    const check = () => {
      if (clients.filter((c) => c.status === 'ready').length >= quorum) {
        cleanup();
        resolve();
      } else if (clients.filter((c) => failed.has(c) && c.status !== 'ready').length > clients.length - quorum) {
        // a majority already failed to connect at least once: fail now rather than at the timeout
        cleanup();
        reject(new Error('no majority'));
      }
    };
    const onError = new Map(clients.map((c) => [c, () => (failed.add(c), check())] as const));
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error('timeout'));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      for (const c of clients) {
        c.off('ready', check);
        c.off('error', onError.get(c)!);
      }
    };
    for (const c of clients) {
      c.on('ready', check);
      c.on('error', onError.get(c)!);
    }
    check();
  });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

/** Takes the URL as a string too: WHATWG URL refuses the comma-separated host list. */
export const open: LockBackendOpener = openRedlock;
