// A throwaway 3-member etcd cluster on loopback for lock tests: temp data dirs (in /dev/shm when
// present, so fsync is cheap), free ports, --initial-cluster, members stopped by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { freePort } from './servers.ts';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  pid(): number | undefined;
  /** sends a signal to the member process (SIGKILL, SIGSTOP, SIGCONT); no-op once it exited */
  kill(signal?: NodeJS.Signals): void;
  /** resolves when the process has exited */
  exited(): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  endpoints: string[];
  /** turns etcd authentication on with user root (role root) and this password */
  enableAuth(password: string): Promise<void>;
  /** the current leader (asks each live member's /v3/maintenance/status) */
  leader(): Promise<EtcdMember>;
  /** SIGKILL (or SIGTERM) every member by PID and remove the data dirs */
  destroy(): Promise<void>;
}

interface StatusReply {
  header?: { member_id?: string };
  leader?: string;
}

/** TLS for the members' client URLs (https): files of a CA and a certificate for 127.0.0.1. */
export interface EtcdTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** members require a client certificate signed by the CA (--client-cert-auth); the helper uses the server's */
  clientCertAuth?: boolean;
}

/** POSTs a JSON body to a member (http or, with tls, https) and parses the reply. */
function post<T>(url: string, body: string, tls: EtcdTls | undefined, timeoutMs = 1_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const u = new URL(url);
    const opts: https.RequestOptions = { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json' }, timeout: timeoutMs, agent: false };
    if (tls) Object.assign(opts, { ca: readFileSync(tls.caFile), ...(tls.clientCertAuth ? { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } : {}) });
    const req = (tls ? https : http).request(opts, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${u.pathname} answered ${res.statusCode}: ${text.slice(0, 200)}`));
        try {
          resolve(JSON.parse(text) as T);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no reply within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

export interface EtcdClusterOptions {
  size?: number;
  heartbeatMs?: number;
  electionMs?: number;
  startTimeoutMs?: number;
  /** clients over TLS (https client URLs; the peers stay on http) */
  tls?: EtcdTls;
  /** --auth-token-ttl, seconds (etcd's default 300): how long an idle simple token lives */
  authTokenTtlS?: number;
}

/** Starts a cluster; a member that exits during start (a port taken between probe and bind) is retried on new ports. */
export async function startEtcdCluster(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (error) {
      if (attempt >= 3 || !(error instanceof Error) || !error.message.startsWith('an etcd member exited during start')) throw error;
    }
  }
}

async function startOnce(opts: EtcdClusterOptions): Promise<EtcdCluster> {
  const size = opts.size ?? 3;
  const root = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'allot-etcd-'));
  const token = `allot-${process.pid}-${Date.now().toString(36)}`;
  const specs: { name: string; clientPort: number; peerPort: number }[] = [];
  for (let i = 0; i < size; i++) specs.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort() });
  const initial = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
  const procs: ChildProcess[] = [];
  const members: EtcdMember[] = [];
  const logs: string[][] = [];
  let spawnError: Error | undefined;
  const status = (url: string) => post<StatusReply>(`${url}/v3/maintenance/status`, '{}', opts.tls);
  for (const s of specs) {
    const dataDir = join(root, s.name);
    const clientUrl = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${s.clientPort}`;
    const peerUrl = `http://127.0.0.1:${s.peerPort}`;
    const log: string[] = [];
    logs.push(log);
    const child = spawn(
      'etcd',
      [
        '--name', s.name,
        '--data-dir', dataDir,
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', initial,
        '--initial-cluster-token', token,
        '--initial-cluster-state', 'new',
        '--heartbeat-interval', String(opts.heartbeatMs ?? 50),
        '--election-timeout', String(opts.electionMs ?? 500),
        '--log-level', 'error',
        '--logger', 'zap',
        '--enable-pprof=false',
        ...(opts.tls ? ['--cert-file', opts.tls.certFile, '--key-file', opts.tls.keyFile] : []),
        ...(opts.tls?.clientCertAuth ? ['--client-cert-auth', '--trusted-ca-file', opts.tls.caFile] : []),
        ...(opts.authTokenTtlS !== undefined ? ['--auth-token-ttl', String(opts.authTokenTtlS)] : []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      log.push(d);
      if (log.length > 50) log.shift();
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      spawnError ??= e.code === 'ENOENT' ? new Error('etcd is not installed (no `etcd` on PATH): install the Debian package etcd-server') : e;
    });
    procs.push(child);
    let exit: Promise<void> | undefined;
    // A process that never spawned (no etcd on PATH) emits 'error' and no 'exit'.
    const exited = () =>
      (exit ??= child.exitCode !== null || child.signalCode !== null
        ? Promise.resolve()
        : new Promise<void>((r) => {
            child.once('exit', () => r());
            child.once('error', () => {
              if (child.pid === undefined) r();
            });
          }));
    exited();
    members.push({
      name: s.name,
      clientUrl,
      peerUrl,
      dataDir,
      pid: () => (child.exitCode === null && child.signalCode === null ? child.pid : undefined),
      kill: (signal = 'SIGKILL') => {
        if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, signal);
      },
      exited,
    });
  }
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    async enableAuth(password) {
      const url = members[0]!.clientUrl;
      await post(`${url}/v3/auth/user/add`, JSON.stringify({ name: 'root', password }), opts.tls);
      await post(`${url}/v3/auth/user/grant`, JSON.stringify({ user: 'root', role: 'root' }), opts.tls);
      await post(`${url}/v3/auth/enable`, '{}', opts.tls);
    },
    async leader() {
      for (const m of members) {
        if (m.pid() === undefined) continue;
        try {
          const st = await status(m.clientUrl);
          if (!st.leader || st.leader === '0') continue;
          for (const other of members) {
            if (other.pid() === undefined) continue;
            const os = await status(other.clientUrl).catch(() => undefined);
            if (os?.header?.member_id === st.leader) return other;
          }
        } catch {
          // try the next member
        }
      }
      throw new Error('no etcd leader found');
    },
    async destroy() {
      for (const m of members) m.kill('SIGCONT');
      for (const m of members) m.kill('SIGKILL');
      await Promise.all(members.map((m) => m.exited()));
      await rm(root, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
  try {
    while (true) {
      if (spawnError) throw spawnError;
      const alive = members.filter((m) => m.pid() !== undefined);
      if (alive.length < members.length) {
        await delay(20); // a failed spawn reports its error on a later tick
        throw spawnError ?? new Error('an etcd member exited during start');
      }
      try {
        await cluster.leader();
        // A write must commit (the cluster accepts proposals), not only elect.
        await post(`${members[0]!.clientUrl}/v3/kv/put`, JSON.stringify({ key: Buffer.from('allot-boot').toString('base64'), value: '' }), opts.tls, 2_000);
        break;
      } catch {
        // not ready yet
      }
      if (Date.now() > deadline) throw new Error('etcd cluster did not elect a leader in time');
      await delay(50);
    }
  } catch (error) {
    const tail = logs.map((l, i) => `[m${i}] ${l.join('').slice(-800)}`).join('\n');
    await cluster.destroy();
    throw new Error(`${(error as Error).message}\n${tail}`, { cause: error });
  }
  return cluster;
}
