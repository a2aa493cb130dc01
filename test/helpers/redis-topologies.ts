// Throwaway replicated Redis topologies on loopback for lock tests: Sentinel (1 master, 1 replica,
// 3 sentinels) and Cluster (3 masters, 3 replicas). Each process gets a free port and a temp dir,
// is stopped by its PID (SIGKILL at process exit as a backstop), and the dirs are removed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { Redis } from 'ioredis';
import { connectSql, type SqlConnection } from '../../src/adapters/sql/connect.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { lockFences } from '../../src/adapters/sql/migrations/002-lock-fences.ts';
import { lockFenceHolders } from '../../src/adapters/sql/migrations/007-lock-fence-holders.ts';
import { lockFencePrune } from '../../src/adapters/sql/migrations/008-lock-fence-prune.ts';
import { freePort } from './servers.ts';

export interface RedisNode {
  /** the plain port (the helpers' admin commands use it) */
  port: number;
  /** TLS topologies: the TLS port, the one clients (and the URL) use */
  tlsPort?: number;
  /** PID while running */
  pid(): number | undefined;
  kill(signal?: NodeJS.Signals): void;
  /** a short-lived connection: send one command, disconnect */
  command(...args: (string | number)[]): Promise<unknown>;
}

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL');
    children.clear();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    dirs.clear();
  };
  process.on('exit', cleanup);
  // A test runner that times a file out signals it: the servers must not outlive it.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      cleanup();
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.exit(128 + (os.constants.signals[signal] ?? 0));
    };
    process.on(signal, onSignal);
  }
}

async function command(port: number, args: (string | number)[], timeoutMs = 2_000): Promise<unknown> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, commandTimeout: timeoutMs, enableOfflineQueue: false });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await r.call(String(args[0]), ...args.slice(1));
  } finally {
    r.disconnect();
  }
}

/** A node that exited before it answered (a port taken meanwhile by another process: freePort's
 * port is free only when it is asked). The topology is started again on fresh ports. */
class NodeExitedError extends Error {}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (error) {
      if (error instanceof NodeExitedError) throw error;
      last = error;
    }
    await delay(50);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
}

/** A throwaway CA and a server certificate for 127.0.0.1 and localhost (openssl), plus an unrelated CA. */
export interface TestCerts {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** a CA that signed nothing here: a client trusting only it must be refused */
  otherCaFile: string;
}

export function makeTestCerts(dir: string): TestCerts {
  const f = (name: string) => path.join(dir, name);
  const run = (...args: string[]) => {
    const r = spawnSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.error || r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.error?.message ?? r.stderr.toString()}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=allot test CA');
  run('req', '-x509', ...ec, '-keyout', f('other-ca.key'), '-out', f('other-ca.crt'), '-days', '2', '-subj', '/CN=allot unrelated CA');
  run('req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', '2', '-extfile', f('ext.cnf'));
  return { caFile: f('ca.crt'), certFile: f('server.crt'), keyFile: f('server.key'), otherCaFile: f('other-ca.crt') };
}

/** Server configuration for TLS on tlsPort (clients need no certificate; replication, the
 * sentinels' links and, with cluster, the bus over TLS). */
function tlsConf(certs: TestCerts, tlsPort: number, cluster = false): string {
  return [`tls-port ${tlsPort}`, `tls-cert-file ${certs.certFile}`, `tls-key-file ${certs.keyFile}`, `tls-ca-cert-file ${certs.caFile}`, 'tls-auth-clients no', 'tls-replication yes', ...(cluster ? ['tls-cluster yes'] : [])].join('\n');
}

async function startNode(dir: string, port: number, conf: string, sentinel = false, tlsPort?: number): Promise<RedisNode> {
  const file = path.join(dir, `${port}.conf`);
  writeFileSync(file, `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsave ""\nappendonly no\nlogfile ${path.join(dir, `${port}.log`)}\n${conf}\n`);
  const child = spawn('redis-server', sentinel ? [file, '--sentinel'] : [file], { stdio: 'ignore' });
  children.add(child);
  let running = true;
  child.once('exit', () => {
    running = false;
    children.delete(child);
  });
  const node: RedisNode = {
    port,
    ...(tlsPort !== undefined ? { tlsPort } : {}),
    pid: () => (running ? child.pid : undefined),
    kill: (signal = 'SIGKILL') => {
      if (running) child.kill(signal);
    },
    command: (...args) => command(port, args),
  };
  const logFile = path.join(dir, `${port}.log`);
  await until(`redis on port ${port} to answer`, 10_000, async () => {
    if (!running) {
      let tail = '';
      try {
        tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-5).join('\n');
      } catch {
        // no log written
      }
      throw new NodeExitedError(`redis-server on port ${port}${tlsPort !== undefined ? ` (TLS ${tlsPort})` : ''} exited before it answered${tail ? `; its log ends:\n${tail}` : ''}`);
    }
    return (await command(port, ['PING'], 500)) === 'PONG' ? true : undefined;
  });
  return node;
}

async function stopAll(nodes: RedisNode[], dir: string): Promise<void> {
  await Promise.all(
    nodes.map(async (n) => {
      n.kill('SIGKILL');
      await until('node exit', 5_000, async () => (n.pid() === undefined ? true : undefined)).catch(() => undefined);
    }),
  );
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

export interface SentinelTopology {
  name: string;
  master: RedisNode;
  replica: RedisNode;
  sentinels: RedisNode[];
  /** redis-sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/<name> (TLS: rediss-sentinel://… on
   * the TLS ports, ?tlsCaFile=…) */
  url: string;
  /** TLS topologies: the certificates */
  certs?: TestCerts;
  /** the master's port as the sentinels report it (the TLS port in a TLS topology) */
  masterPort(): Promise<number>;
  /** SENTINEL FAILOVER, then waits until the sentinels report the other node and it is a master */
  failover(timeoutMs?: number): Promise<RedisNode>;
  destroy(): Promise<void>;
}

/** opts.tls: every node and sentinel also listens with TLS on a second port, the one the
 * topology's URL, replication and the sentinels use (the plain port serves the helpers). */
export function startSentinelTopology(name = 'mymaster', opts: { tls?: boolean } = {}): Promise<SentinelTopology> {
  return startAgainOnFreshPorts('sentinel', () => startSentinelOnce(name, opts));
}

/** Up to 3 starts when a node exited at start (what it did is stopped and removed each time). */
async function startAgainOnFreshPorts<T>(what: string, start: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (!(error instanceof NodeExitedError) || attempt >= 3) throw error;
      process.stderr.write(`redis ${what} topology: ${error.message}\nstarting it again on fresh ports (attempt ${attempt + 1} of 3)\n`);
    }
  }
}

async function startSentinelOnce(name: string, opts: { tls?: boolean }): Promise<SentinelTopology> {
  hookExit();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'allot-sentinel-'));
  dirs.add(dir);
  const nodes: RedisNode[] = [];
  try {
    const certs = opts.tls ? makeTestCerts(dir) : undefined;
    const tlsPort = async () => (certs ? await freePort() : undefined);
    const conf = (tp: number | undefined, rest: string) => (certs && tp !== undefined ? `${rest}\n${tlsConf(certs, tp)}` : rest);
    const [mp, rp, mtp, rtp] = [await freePort(), await freePort(), await tlsPort(), await tlsPort()];
    const master = await startNode(dir, mp, conf(mtp, 'repl-diskless-sync-delay 0'), false, mtp);
    nodes.push(master);
    const masterClientPort = mtp ?? mp;
    const replica = await startNode(dir, rp, conf(rtp, `replicaof 127.0.0.1 ${masterClientPort}\nrepl-diskless-sync-delay 0`), false, rtp);
    nodes.push(replica);
    await until('replica in sync', 10_000, async () => (/master_link_status:up/.test(String(await replica.command('INFO', 'replication'))) ? true : undefined));
    const sentinels: RedisNode[] = [];
    for (let i = 0; i < 3; i++) {
      const [sp, stp] = [await freePort(), await tlsPort()];
      const s = await startNode(
        dir,
        sp,
        conf(stp, [`sentinel monitor ${name} 127.0.0.1 ${masterClientPort} 2`, `sentinel down-after-milliseconds ${name} 1000`, `sentinel failover-timeout ${name} 4000`, `sentinel parallel-syncs ${name} 1`].join('\n')),
        true,
        stp,
      );
      sentinels.push(s);
      nodes.push(s);
    }
    // A failover needs each sentinel to know the replica and the others (hello messages every 2 s).
    await until('sentinels discover the replica and each other', 15_000, async () => {
      for (const s of sentinels) {
        const m = (await s.command('SENTINEL', 'MASTER', name)) as string[];
        const f = Object.fromEntries(m.flatMap((v, i) => (i % 2 ? [] : [[v, m[i + 1]]])));
        if (f['num-slaves'] !== '1' || f['num-other-sentinels'] !== '2') return undefined;
      }
      return true;
    });
    const masterPort = async () => Number(((await sentinels[0]!.command('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[])[1]);
    const clientPort = (n: RedisNode) => n.tlsPort ?? n.port;
    return {
      name,
      master,
      replica,
      sentinels,
      url: certs
        ? `rediss-sentinel://${sentinels.map((s) => `127.0.0.1:${clientPort(s)}`).join(',')}/${name}?tlsCaFile=${encodeURIComponent(certs.caFile)}`
        : `redis-sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${name}`,
      ...(certs ? { certs } : {}),
      masterPort,
      async failover(timeoutMs = 15_000) {
        const before = await masterPort();
        const next = before === clientPort(master) ? replica : master;
        await until('SENTINEL FAILOVER accepted', timeoutMs, async () => ((await sentinels[0]!.command('SENTINEL', 'FAILOVER', name)) === 'OK' ? true : undefined));
        await until('the other node promoted', timeoutMs, async () => ((await masterPort()) === clientPort(next) && /role:master/.test(String(await next.command('INFO', 'replication'))) ? true : undefined));
        return next;
      },
      destroy: () => stopAll(nodes, dir),
    };
  } catch (error) {
    await stopAll(nodes, dir);
    throw error;
  }
}

export interface ClusterTopology {
  nodes: RedisNode[];
  /** redis-cluster://127.0.0.1:p1,…,127.0.0.1:p6 (TLS: rediss-cluster://… on the TLS ports, ?tlsCaFile=…) */
  url: string;
  /** TLS topologies: the certificates */
  certs?: TestCerts;
  startupNodes: { host: string; port: number }[];
  /** the node serving the slot of a key, as the cluster reports it */
  masterOf(key: string): Promise<RedisNode>;
  /** SIGKILLs a master and waits until its replica serves its slots and the cluster is ok */
  killMaster(node: RedisNode, timeoutMs?: number): Promise<RedisNode>;
  destroy(): Promise<void>;
}

/** opts.tls: every node also listens with TLS on a second port, the one the topology's URL uses;
 * the bus and replication run over TLS (tls-cluster yes: the nodes announce their TLS ports). */
export function startClusterTopology(opts: { tls?: boolean } = {}): Promise<ClusterTopology> {
  return startAgainOnFreshPorts('cluster', () => startClusterOnce(opts));
}

async function startClusterOnce(opts: { tls?: boolean }): Promise<ClusterTopology> {
  hookExit();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'allot-cluster-'));
  dirs.add(dir);
  const nodes: RedisNode[] = [];
  try {
    const certs = opts.tls ? makeTestCerts(dir) : undefined;
    const ports: number[] = [];
    const tlsPorts: number[] = [];
    for (let i = 0; i < 6; i++) ports.push(await freePort());
    if (certs) for (let i = 0; i < 6; i++) tlsPorts.push(await freePort());
    const base = (p: number) => `cluster-enabled yes\ncluster-config-file nodes-${p}.conf\ncluster-node-timeout 1000\ncluster-replica-validity-factor 0\nrepl-diskless-sync-delay 0`;
    // allSettled: the nodes that did start are stopped too when one did not
    const started = await Promise.allSettled(ports.map((p, i) => (certs ? startNode(dir, p, `${base(p)}\n${tlsConf(certs, tlsPorts[i]!, true)}`, false, tlsPorts[i]) : startNode(dir, p, base(p)))));
    for (const r of started) if (r.status === 'fulfilled') nodes.push(r.value);
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const createArgs = certs ? ['--tls', '--cacert', certs.caFile, '--cluster', 'create', ...tlsPorts.map((p) => `127.0.0.1:${p}`)] : ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`)];
    await new Promise<void>((resolve, reject) => {
      const cli = spawn('redis-cli', [...createArgs, '--cluster-replicas', '1', '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(cli);
      let out = '';
      cli.stdout.on('data', (d: Buffer) => (out += d.toString()));
      cli.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const t = setTimeout(() => cli.kill('SIGKILL'), 20_000);
      cli.once('exit', (code) => {
        clearTimeout(t);
        children.delete(cli);
        if (code === 0) resolve();
        else reject(new Error(`redis-cli --cluster create failed (${code}): ${out.slice(-2000)}`));
      });
    });
    await waitClusterOk(nodes, 15_000);
    const byPort = new Map(nodes.map((n) => [n.port, n]));
    const masterOf = async (key: string) => {
      const slot = Number(await nodes[0]!.command('CLUSTER', 'KEYSLOT', key));
      for (const n of nodes) {
        if (n.pid() === undefined) continue;
        const shards = (await n.command('CLUSTER', 'SLOTS').catch(() => undefined)) as [number, number, [string, number]][] | undefined;
        const hit = shards?.find(([from, to]) => slot >= from && slot <= to);
        if (hit) return byPort.get(Number(hit[2][1]))!;
      }
      throw new Error(`no node serves slot ${slot}`);
    };
    return {
      nodes,
      url: certs ? `rediss-cluster://${tlsPorts.map((p) => `127.0.0.1:${p}`).join(',')}?tlsCaFile=${encodeURIComponent(certs.caFile)}` : `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
      ...(certs ? { certs } : {}),
      startupNodes: (certs ? tlsPorts : ports).map((port) => ({ host: '127.0.0.1', port })),
      masterOf,
      async killMaster(node, timeoutMs = 20_000) {
        const replicaPort = await until('its replica', 5_000, async () => {
          for (const n of nodes) {
            if (n === node) continue;
            if (new RegExp(`master_host:127\\.0\\.0\\.1\\s+master_port:(?:${node.port}|${node.tlsPort ?? node.port})\\b`).test(String(await n.command('INFO', 'replication')))) return n.port;
          }
          return undefined;
        });
        node.kill('SIGKILL');
        const replica = byPort.get(replicaPort)!;
        const promoted = async () => (/role:master/.test(String(await replica.command('INFO', 'replication'))) ? true : undefined);
        try {
          // Automatic failover: node timeout 1 s, then an election (normally 2–3 s).
          await until('replica promoted', timeoutMs / 2, promoted);
        } catch {
          // On a loaded machine (CI runs this beside the other test processes) the election once
          // did not come within 20 s. The test is about the locks across a promotion, not about
          // Redis's election timing: promote the replica by hand (a new replication id all the same).
          process.stderr.write(`redis cluster: no automatic failover within ${timeoutMs / 2} ms; CLUSTER FAILOVER TAKEOVER on the replica\n`);
          await replica.command('CLUSTER', 'FAILOVER', 'TAKEOVER').catch(() => undefined);
          await until('replica promoted', timeoutMs / 2, promoted);
        }
        await waitClusterOk(nodes.filter((n) => n !== node), timeoutMs);
        return replica;
      },
      destroy: () => stopAll(nodes, dir),
    };
  } catch (error) {
    await stopAll(nodes, dir);
    throw error;
  }
}

async function waitClusterOk(nodes: RedisNode[], timeoutMs: number): Promise<void> {
  await until('cluster_state:ok on every node', timeoutMs, async () => {
    for (const n of nodes) if (!/cluster_state:ok/.test(String(await n.command('CLUSTER', 'INFO')))) return undefined;
    return true;
  });
}

/**
 * A database with the fencing tables (lock_fences with holders, lock_epochs) and a log of fenced
 * writes, for fault tests: a private schema on the PostgreSQL `npm test` starts (DATABASE_URL_PG),
 * else PGlite (much slower to start on a loaded machine).
 */
export async function openFencedDb(): Promise<{ conn: SqlConnection; close(): Promise<void> }> {
  const base = process.env.DATABASE_URL_PG;
  const schema = async (conn: SqlConnection) => {
    const d = sqlDialect(conn.family);
    for (const stmt of [...lockFences.statements(d), ...lockFenceHolders.statements(d), ...lockFencePrune.statements(d)]) await sql.raw(stmt).execute(conn.db);
    await sql`CREATE TABLE fenced_log (n serial PRIMARY KEY, resource varchar(255) NOT NULL, fence decimal(39,0) NOT NULL, holder varchar(128) NOT NULL)`.execute(conn.db);
  };
  if (!base) {
    const conn = await connectSql({ url: 'memory://', poolSize: 1, timeoutMs: 5_000 });
    await schema(conn);
    return { conn, close: () => conn.db.destroy() };
  }
  const name = `topo_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = await connectSql({ url: base, poolSize: 1, timeoutMs: 5_000 });
  await sql.raw(`CREATE SCHEMA ${name}`).execute(admin.db);
  const conn = await connectSql({ url: `${base}${base.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${name}`)}`, poolSize: 4, timeoutMs: 5_000 });
  await schema(conn);
  return {
    conn,
    close: async () => {
      await conn.db.destroy();
      await sql.raw(`DROP SCHEMA ${name} CASCADE`).execute(admin.db);
      await admin.db.destroy();
    },
  };
}
