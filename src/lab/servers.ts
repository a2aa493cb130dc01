// Throwaway database servers for tests and local development.
//
// Each server gets free loopback ports, a fresh temp dir (data, socket, pid and log inside it) and is
// stopped by its PID. Used by test files directly (startRedis / startPostgres / startMariadb) and by
// scripts/services.sh, which runs this file as a CLI to start long-lived, detached servers:
//
//   node --import tsx src/lab/servers.ts up --state-dir DIR [redis] [postgres] [mariadb]
//
// writes DIR/<kind>.pid, DIR/<kind>.url, DIR/<kind>.port and DIR/<kind>.dir for each kind started.
//
// Servers are SIGKILLed (and their temp dirs removed) when this process exits or dies of SIGINT/SIGTERM/SIGHUP,
// so a test file that crashes or forgets to stop one leaves nothing behind. Only a server handed over with
// keepRunning() (what the CLI does once the state files are written) outlives this process.
//
// Credentials: PostgreSQL and MariaDB get a real user `allot` with a random password and a database `allot`
// (PostgreSQL: scram-sha-256 over TCP; MariaDB: 'allot'@'127.0.0.1' and 'allot'@'localhost' with all privileges
// on allot.*). As root, PostgreSQL runs as the `postgres` OS user and MariaDB with --user=root.
//
// Environment: ALLOT_SERVER_START_TIMEOUT_MS (default 30000), ALLOT_SERVERS_VERBOSE=1 (print start timings),
// ALLOT_KEEP_SERVER_DATA=1 (keep temp dirs at exit, for post-mortems), ALLOT_PG_BIN (PostgreSQL bin dir).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';

export type ServerKind = 'redis' | 'postgres' | 'mariadb';

export interface TestServer {
  kind: ServerKind;
  /** redis://127.0.0.1:PORT, postgres://USER:PASS@127.0.0.1:PORT/DB, mysql://USER:PASS@127.0.0.1:PORT/DB */
  url: string;
  port: number;
  /** The server's private temp dir: data, unix socket, pid file and server.log all live inside it. */
  dataDir: string;
  /** PID of the running server process, undefined while it is stopped. */
  pid(): number | undefined;
  /** Graceful stop (Redis/MariaDB: SIGTERM, PostgreSQL: SIGINT = fast shutdown); SIGKILL after the stop timeout. Waits for the exit. Idempotent. */
  stop(): Promise<void>;
  /** (Re)start on the same port and data dir; resolves once the server answers a real (authenticated) query. No-op while running. */
  start(): Promise<void>;
  /** Send a raw signal to the server process (SIGKILL, SIGSTOP, SIGCONT, ...). No-op while stopped. */
  kill(signal?: NodeJS.Signals): void;
  /** stop() and remove the temp dir. */
  destroy(): Promise<void>;
}

export interface StartOptions {
  /** Start in its own session (no terminal signals reach it). Still cleaned up at exit until keepRunning(server). Default false. */
  detached?: boolean;
  /** How long one start may take before it fails with the log tail. Default 30 s (ALLOT_SERVER_START_TIMEOUT_MS). */
  startTimeoutMs?: number;
  /** How long a graceful stop may take before SIGKILL. Default 15 s. */
  stopTimeoutMs?: number;
  /** PostgreSQL and MariaDB: commit durably, as a production server does (PostgreSQL fsync,
   * synchronous_commit and full_page_writes on; MariaDB innodb_flush_log_at_trx_commit=1 and the
   * doublewrite buffer) — what the benchmarks measure. Default false, for tests: a commit is
   * acknowledged before it reaches the disk, and a crash of the server may lose the last ones. */
  durable?: boolean;
}

export interface RedisOptions extends StartOptions {
  /** Turn on the append-only file with appendfsync always (acknowledged writes survive SIGKILL),
   * or 'everysec' (the last second may be lost). Default false: --save '' --appendonly no. */
  persistence?: boolean | 'everysec';
}

export const PACKAGES: Record<ServerKind, string> = {
  redis: 'redis-server',
  postgres: 'postgresql',
  mariadb: 'mariadb-server',
};

const DEFAULT_START_TIMEOUT_MS = Number(process.env.ALLOT_SERVER_START_TIMEOUT_MS ?? '') || 30_000;
const DEFAULT_STOP_TIMEOUT_MS = 15_000;
const TERMINATING = new Set<NodeJS.Signals>(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGQUIT']);
const DB_USER = 'allot';
const DB_NAME = 'allot';

// ---------------------------------------------------------------------------------------------------
// small helpers

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait for `promise` at most `ms`; true when it settled in time. The timer is cleared, so nothing lingers. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

let verbose = process.env.ALLOT_SERVERS_VERBOSE === '1';

/** Progress (start timings): only with ALLOT_SERVERS_VERBOSE=1 or from the CLI. */
function log(message: string): void {
  if (verbose) warn(message);
}

/** Things worth knowing in any case (package installs, SIGKILL fallbacks). Always stderr. */
function warn(message: string): void {
  process.stderr.write(`[servers] ${message}\n`);
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      if (address === null || typeof address === 'string') {
        srv.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      const { port } = address;
      srv.close(() => resolve(port));
    });
  });
}

function tailOf(file: string, lines = 40, fromByte = 0): string {
  try {
    const text = readFileSync(file).subarray(fromByte).toString('utf8');
    return text.split('\n').slice(-lines).join('\n').trimEnd();
  } catch {
    return '(no log)';
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function which(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Directory with the PostgreSQL server binaries (postgres, initdb): $ALLOT_PG_BIN, the newest /usr/lib/postgresql/N/bin, or PATH. */
function postgresBinDir(): string | undefined {
  const fromEnv = process.env.ALLOT_PG_BIN;
  if (fromEnv && existsSync(path.join(fromEnv, 'postgres'))) return fromEnv;
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(path.join('/usr/lib/postgresql', v, 'bin', 'postgres')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return path.join('/usr/lib/postgresql', versions[0], 'bin');
  } catch {
    // no Debian layout
  }
  const onPath = which('postgres');
  if (onPath && which('initdb')) return path.dirname(onPath);
  return undefined;
}

interface MariadbBinaries {
  server: string;
  installDb: string;
}

function mariadbBinaries(): MariadbBinaries | undefined {
  const server = which('mariadbd') ?? which('mysqld');
  const installDb = which('mariadb-install-db') ?? which('mysql_install_db');
  return server && installDb ? { server, installDb } : undefined;
}

function binaryPresent(kind: ServerKind): boolean {
  switch (kind) {
    case 'redis':
      return which('redis-server') !== undefined;
    case 'postgres':
      return postgresBinDir() !== undefined;
    case 'mariadb':
      return mariadbBinaries() !== undefined;
  }
}

function runCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    // stdout of the child goes to our stderr: stdout of services.sh is reserved for the export lines.
    const child = spawn(cmd, args, { stdio: ['ignore', 2, 2], env });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

let aptUpdated = false;

/** Install the Debian packages of the kinds whose binaries are missing (as root, with apt-get); a clear error otherwise. */
export async function ensureInstalled(kinds: ServerKind[]): Promise<void> {
  const missing = [...new Set(kinds)].filter((kind) => !binaryPresent(kind));
  if (missing.length === 0) return;
  const packages = missing.map((kind) => PACKAGES[kind]);
  const hint = `install them with: apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${packages.join(' ')}`;
  if (!isRoot() || which('apt-get') === undefined) {
    throw new Error(`missing server binaries for ${missing.join(', ')} (need: ${packages.join(' ')}); ${hint}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  warn(`installing ${packages.join(' ')} with apt-get (missing: ${missing.join(', ')})`);
  if (!aptUpdated) {
    const code = await runCommand('apt-get', ['update', '-q'], env);
    if (code !== 0) throw new Error(`apt-get update failed with exit code ${code}; ${hint}`);
    aptUpdated = true;
  }
  const code = await runCommand('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], env);
  if (code !== 0) throw new Error(`apt-get install ${packages.join(' ')} failed with exit code ${code}`);
  const still = missing.filter((kind) => !binaryPresent(kind));
  if (still.length > 0) throw new Error(`after apt-get install, binaries still missing for ${still.join(', ')}`);
}

interface PasswdEntry {
  uid: number;
  gid: number;
}

function passwdEntry(user: string): PasswdEntry | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const fields = line.split(':');
      if (fields[0] === user && fields[2] !== undefined && fields[3] !== undefined) {
        return { uid: Number(fields[2]), gid: Number(fields[3]) };
      }
    }
  } catch {
    // no passwd file
  }
  return undefined;
}

function chownRecursive(target: string, owner: PasswdEntry): void {
  chownSync(target, owner.uid, owner.gid);
  if (statSync(target).isDirectory()) {
    for (const entry of readdirSync(target)) chownRecursive(path.join(target, entry), owner);
  }
}

/** A fresh temp dir, removed when this process exits unless handed over with keepRunning(). */
function makeTempDir(kind: ServerKind): string {
  installExitHooks();
  const dir = mkdtempSync(path.join(os.tmpdir(), `allot-${kind}-`));
  ownedDirs.add(dir);
  return dir;
}

/** Run a setup tool (initdb, mariadb-install-db) with its output appended to logFile; resolves to its exit code. */
async function runTool(command: string, args: string[], logFile: string, cwd: string, owner?: PasswdEntry): Promise<number> {
  const fd = openSync(logFile, 'a');
  try {
    return await new Promise<number>((resolve, reject) => {
      const child = spawn(command, args, {
        cwd,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
        ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      });
      helpers.add(child);
      child.once('error', (err) => {
        helpers.delete(child);
        reject(err);
      });
      child.once('exit', (code, signal) => {
        helpers.delete(child);
        resolve(code ?? (signal ? 128 : 1));
      });
    });
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------
// cleanup of everything this process started (unless handed over with keepRunning)

const owned = new Set<ManagedServer>();
const ownedDirs = new Set<string>();
const helpers = new Set<ChildProcess>();
let exitHooksInstalled = false;

function cleanupSync(): void {
  for (const child of helpers) child.kill('SIGKILL');
  helpers.clear();
  for (const server of owned) server.killSync();
  owned.clear();
  if (process.env.ALLOT_KEEP_SERVER_DATA === '1') return;
  for (const dir of ownedDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    } catch {
      // best effort
    }
  }
  ownedDirs.clear();
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', cleanupSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupSync();
      process.removeListener(signal, onSignal);
      // Nobody else handles it: exit as the signal would have (128 + its number).
      if (process.listenerCount(signal) === 0) process.exit(128 + (os.constants.signals[signal] ?? 0));
    };
    process.on(signal, onSignal);
  }
}

// ---------------------------------------------------------------------------------------------------
// one managed server process

interface SpawnSpec {
  command: string;
  args: string[];
  owner?: PasswdEntry;
}

interface ServerSpec {
  kind: ServerKind;
  url: string;
  port: number;
  dataDir: string;
  logFile: string;
  spawnSpec(): SpawnSpec;
  /** One readiness attempt: resolves when the server answered a real query; rejects otherwise. */
  probe(): Promise<void>;
  /** Signal for a graceful stop. */
  stopSignal: NodeJS.Signals;
  /** A start that died with this log text may be retried (e.g. orphaned backends of a SIGKILLed postmaster). */
  retryableExit?(logText: string): boolean;
}

class ManagedServer implements TestServer {
  readonly kind: ServerKind;
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private destroyed = false;
  private pending: Promise<void> | undefined;
  /** A terminating signal was sent with kill(): the process is on its way out even if its exit was not seen yet. */
  private terminating = false;
  /** Handed over with keepRunning(): no longer killed / removed when this process exits. */
  released = false;

  constructor(
    private readonly spec: ServerSpec,
    private readonly options: StartOptions,
  ) {
    this.kind = spec.kind;
    this.url = spec.url;
    this.port = spec.port;
    this.dataDir = spec.dataDir;
    installExitHooks();
    ownedDirs.add(spec.dataDir);
  }

  release(): void {
    this.released = true;
    owned.delete(this);
    ownedDirs.delete(this.dataDir);
  }

  pid(): number | undefined {
    return this.child?.pid;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    const pid = this.pid();
    if (pid === undefined) return;
    if (TERMINATING.has(signal)) this.terminating = true;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }

  /** Synchronous SIGKILL for the exit hook. */
  killSync(): void {
    this.kill('SIGKILL');
  }

  start(): Promise<void> {
    return this.serialize(() => this.doStart());
  }

  stop(): Promise<void> {
    return this.serialize(() => this.doStop());
  }

  async destroy(): Promise<void> {
    await this.stop();
    this.destroyed = true;
    rmSync(this.dataDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    ownedDirs.delete(this.dataDir);
  }

  /** start/stop never overlap on one server. */
  private serialize(op: () => Promise<void>): Promise<void> {
    const previous = this.pending ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(op);
    this.pending = next;
    return next;
  }

  private spawnOnce(): { child: ChildProcess; exited: Promise<void>; exitInfo: () => string | undefined } {
    const { command, args, owner } = this.spec.spawnSpec();
    const logFd = openSync(this.spec.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(command, args, {
        cwd: this.dataDir,
        stdio: ['ignore', logFd, logFd],
        detached: Boolean(this.options.detached),
        env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
        ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      });
    } finally {
      closeSync(logFd);
    }
    child.unref();
    let info: string | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('error', (err) => {
        info = `failed to spawn ${command}: ${err.message}`;
        resolve();
      });
      child.once('exit', (code, signal) => {
        info = signal ? `killed by ${signal}` : `exited with code ${code}`;
        if (this.child === child) this.child = undefined;
        owned.delete(this);
        resolve();
      });
    });
    return { child, exited, exitInfo: () => info };
  }

  private async doStart(): Promise<void> {
    if (this.destroyed) throw new Error(`${this.kind} on port ${this.port} was destroyed`);
    if (this.child && this.terminating) {
      // e.g. kill('SIGKILL') then start(): wait for that exit first (SIGKILL after the stop timeout).
      await this.waitForExit(this.options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS);
    }
    if (this.child) return;
    const timeoutMs = this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const started = Date.now();
    const deadline = started + timeoutMs;
    let lastProbeError = '';
    for (;;) {
      const logOffset = fileSize(this.spec.logFile);
      const { child, exited, exitInfo } = this.spawnOnce();
      this.child = child;
      this.terminating = false;
      this.exited = exited;
      if (!this.released) owned.add(this);
      let dead = false;
      void exited.then(() => {
        dead = true;
      });
      while (!dead && Date.now() < deadline) {
        try {
          await this.spec.probe();
          return;
        } catch (err) {
          lastProbeError = err instanceof Error ? err.message : String(err);
        }
        if (dead) break;
        await sleep(30);
      }
      if (dead) {
        await exited;
        const fresh = tailOf(this.spec.logFile, 200, logOffset);
        if (Date.now() < deadline && this.spec.retryableExit?.(fresh)) {
          await sleep(100);
          continue;
        }
        throw new Error(
          `${this.kind} on 127.0.0.1:${this.port} ${exitInfo() ?? 'exited'} during start (data dir ${this.dataDir}); log tail:\n${tailOf(this.spec.logFile)}`,
        );
      }
      // timed out
      this.kill('SIGKILL');
      await settlesWithin(exited, 5_000);
      throw new Error(
        `${this.kind} on 127.0.0.1:${this.port} did not accept connections within ${timeoutMs} ms (last probe error: ${lastProbeError}; data dir ${this.dataDir}); log tail:\n${tailOf(this.spec.logFile)}`,
      );
    }
  }

  private async doStop(): Promise<void> {
    const child = this.child;
    if (!child || child.pid === undefined) return;
    const timeoutMs = this.options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.kill(this.spec.stopSignal);
    this.kill('SIGCONT'); // a SIGSTOPped server would never act on the stop signal
    await this.waitForExit(timeoutMs);
  }

  /** Wait for the tracked process to exit; SIGKILL it after timeoutMs. */
  private async waitForExit(timeoutMs: number): Promise<void> {
    const child = this.child;
    if (!child) return;
    // The timer keeps the event loop alive while we wait (the child itself is unref'd).
    if (!(await settlesWithin(this.exited, timeoutMs))) {
      warn(`${this.kind} pid ${child.pid} did not exit within ${timeoutMs} ms; sending SIGKILL`);
      this.kill('SIGKILL');
      this.kill('SIGCONT');
      await settlesWithin(this.exited, 10_000);
    }
    if (this.child === child) this.child = undefined;
    owned.delete(this);
  }
}

// ---------------------------------------------------------------------------------------------------
// Redis

function redisPing(port: number, timeoutMs = 1_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buffer = '';
    const done = (err?: Error): void => {
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(new Error('PING timed out')));
    socket.once('error', (err) => done(err));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      if (!buffer.includes('\r\n')) return;
      if (buffer.startsWith('+PONG')) done();
      else done(new Error(`PING answered ${JSON.stringify(buffer.trim())}`)); // e.g. -LOADING
    });
  });
}

export async function startRedis(opts: RedisOptions = {}): Promise<TestServer> {
  await ensureInstalled(['redis']);
  const command = which('redis-server');
  if (!command) throw new Error('redis-server not found');
  return startWithPortRetry(async () => {
    const port = await freePort();
    const dataDir = makeTempDir('redis');
    const persistence = opts.persistence
      ? ['--appendonly', 'yes', '--appendfsync', opts.persistence === 'everysec' ? 'everysec' : 'always', '--save', '']
      : ['--save', '', '--appendonly', 'no'];
    const spec: ServerSpec = {
      kind: 'redis',
      url: `redis://127.0.0.1:${port}`,
      port,
      dataDir,
      logFile: path.join(dataDir, 'server.log'),
      stopSignal: 'SIGTERM',
      spawnSpec: () => ({
        command,
        args: [
          '--bind', '127.0.0.1',
          '--port', String(port),
          ...persistence,
          '--dir', dataDir,
          '--daemonize', 'no',
          '--logfile', '',
          '--pidfile', path.join(dataDir, 'redis.pid'),
        ],
      }),
      probe: () => redisPing(port),
    };
    return new ManagedServer(spec, opts);
  });
}

// ---------------------------------------------------------------------------------------------------
// PostgreSQL

function randomPassword(): string {
  return randomBytes(12).toString('hex');
}

async function pgQuery(config: pg.ClientConfig, sql: string): Promise<void> {
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 2_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(sql);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function startPostgres(opts: StartOptions = {}): Promise<TestServer> {
  await ensureInstalled(['postgres']);
  const binDir = postgresBinDir();
  if (!binDir) throw new Error('PostgreSQL binaries not found');
  // PostgreSQL refuses to run as root: run it as the postgres user (created by the Debian package).
  const owner = isRoot() ? (passwdEntry('postgres') ?? passwdEntry('nobody')) : undefined;
  if (isRoot() && !owner) throw new Error('running as root but there is no postgres (or nobody) user to run PostgreSQL as');

  return startWithPortRetry(async () => {
    const port = await freePort();
    const dir = makeTempDir('postgres');
    const pgdata = path.join(dir, 'data');
    const password = randomPassword();
    const pwfile = path.join(dir, 'pwfile');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (owner) chownRecursive(dir, owner);
    const logFile = path.join(dir, 'server.log');

    const initdbLog = path.join(dir, 'initdb.log');
    const code = await runTool(
      path.join(binDir, 'initdb'),
      ['-D', pgdata, '-U', DB_USER, `--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      initdbLog,
      dir,
      owner,
    );
    rmSync(pwfile, { force: true });
    if (code !== 0) {
      const tail = tailOf(initdbLog);
      rmSync(dir, { recursive: true, force: true });
      ownedDirs.delete(dir);
      throw new Error(`initdb failed with exit code ${code}; log tail:\n${tail}`);
    }

    const base = { host: '127.0.0.1', port, user: DB_USER, password };
    let databaseCreated = false;
    const spec: ServerSpec = {
      kind: 'postgres',
      url: `postgres://${DB_USER}:${password}@127.0.0.1:${port}/${DB_NAME}`,
      port,
      dataDir: dir,
      logFile,
      stopSignal: 'SIGINT', // fast shutdown: rolls back open transactions, disconnects clients
      spawnSpec: () => ({
        command: path.join(binDir, 'postgres'),
        args: [
          '-D', pgdata,
          '-p', String(port),
          '-k', dir,
          '-c', 'listen_addresses=127.0.0.1',
          ...(opts.durable
            ? ['-c', 'fsync=on', '-c', 'synchronous_commit=on', '-c', 'full_page_writes=on']
            : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
          '-c', 'max_connections=200',
          '-c', 'logging_collector=off',
        ],
        ...(owner ? { owner } : {}),
      }),
      probe: async () => {
        if (!databaseCreated) {
          try {
            await pgQuery({ ...base, database: 'postgres' }, `CREATE DATABASE ${DB_NAME}`);
          } catch (err) {
            if ((err as { code?: string }).code !== '42P04') throw err; // 42P04: exists already
          }
          databaseCreated = true;
        }
        await pgQuery({ ...base, database: DB_NAME }, 'SELECT 1');
      },
      // After a SIGKILL of the postmaster its backends linger for a moment and hold the shared memory.
      retryableExit: (text) => /pre-existing shared memory block|lock file .* already exists/.test(text),
    };
    return new ManagedServer(spec, opts);
  });
}

// ---------------------------------------------------------------------------------------------------
// MariaDB

async function mysqlQuery(config: mysql.ConnectionOptions, sql: string): Promise<void> {
  const connection = await mysql.createConnection({ ...config, connectTimeout: 2_000 });
  try {
    await connection.query(sql);
  } finally {
    await connection.end().catch(() => connection.destroy());
  }
}

export async function startMariadb(opts: StartOptions = {}): Promise<TestServer> {
  await ensureInstalled(['mariadb']);
  const binaries = mariadbBinaries();
  if (!binaries) throw new Error('mariadbd / mariadb-install-db not found');

  return startWithPortRetry(async () => {
    const port = await freePort();
    const dir = makeTempDir('mariadb');
    const datadir = path.join(dir, 'data');
    const tmpdir = path.join(dir, 'tmp');
    mkdirSync(tmpdir);
    const password = randomPassword();
    const logFile = path.join(dir, 'server.log');
    const userArgs = isRoot() ? ['--user=root'] : [];
    const innodb = [
      '--innodb-buffer-pool-size=64M',
      '--innodb-log-file-size=32M',
      `--innodb-flush-log-at-trx-commit=${opts.durable ? 1 : 0}`,
      '--innodb-lock-wait-timeout=10',
      `--innodb-doublewrite=${opts.durable ? 1 : 0}`,
    ];
    // Runs in bootstrap mode right after the system tables are created: a real user with a password.
    const initSql = path.join(dir, 'init.sql');
    writeFileSync(
      initSql,
      [
        'FLUSH PRIVILEGES;', // bootstrap runs with --skip-grant-tables: load them so CREATE USER works
        `CREATE DATABASE IF NOT EXISTS ${DB_NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;`,
        ...['127.0.0.1', 'localhost'].flatMap((host) => [
          `CREATE USER IF NOT EXISTS '${DB_USER}'@'${host}' IDENTIFIED BY '${password}';`,
          `GRANT ALL PRIVILEGES ON ${DB_NAME}.* TO '${DB_USER}'@'${host}';`,
          // The race lab makes a database of its own per run (lab_<id>), never touching the service's tables.
          `GRANT ALL PRIVILEGES ON \`lab\\_%\`.* TO '${DB_USER}'@'${host}';`,
        ]),
        '',
      ].join('\n'),
    );
    const installLog = path.join(dir, 'install-db.log');
    const code = await runTool(
      binaries.installDb,
      [
        '--no-defaults', // must come first
        `--datadir=${datadir}`,
        `--tmpdir=${tmpdir}`, // private: concurrent bootstraps in a shared /tmp collide on temp table names
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        '--skip-name-resolve',
        `--extra-file=${initSql}`,
        ...userArgs,
        ...innodb,
      ],
      installLog,
      dir,
    );
    rmSync(initSql, { force: true });
    if (code !== 0) {
      const tail = tailOf(installLog);
      rmSync(dir, { recursive: true, force: true });
      ownedDirs.delete(dir);
      throw new Error(`mariadb-install-db failed with exit code ${code}; log tail:\n${tail}`);
    }

    const spec: ServerSpec = {
      kind: 'mariadb',
      url: `mysql://${DB_USER}:${password}@127.0.0.1:${port}/${DB_NAME}`,
      port,
      dataDir: dir,
      logFile,
      stopSignal: 'SIGTERM',
      spawnSpec: () => ({
        command: binaries.server,
        args: [
          '--no-defaults', // must come first
          `--datadir=${datadir}`,
          `--tmpdir=${tmpdir}`,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          `--socket=${path.join(dir, 'mysqld.sock')}`,
          `--pid-file=${path.join(dir, 'mysqld.pid')}`,
          `--log-error=${logFile}`,
          '--skip-log-bin',
          '--skip-name-resolve',
          '--max-connections=300',
          '--character-set-server=utf8mb4',
          '--collation-server=utf8mb4_general_ci',
          '--performance-schema=OFF',
          ...innodb,
          ...userArgs,
        ],
      }),
      probe: () => mysqlQuery({ host: '127.0.0.1', port, user: DB_USER, password, database: DB_NAME }, 'SELECT 1'),
    };
    return new ManagedServer(spec, opts);
  });
}

// ---------------------------------------------------------------------------------------------------

/** Create + start; on a port lost between freePort() and the bind, try again on another port. */
async function startWithPortRetry(create: () => Promise<ManagedServer>): Promise<ManagedServer> {
  for (let attempt = 1; ; attempt++) {
    const server = await create();
    const started = Date.now();
    try {
      await server.start();
      log(`${server.kind} ready on 127.0.0.1:${server.port} (pid ${server.pid()}) in ${Date.now() - started} ms`);
      return server;
    } catch (err) {
      await server.destroy().catch(() => undefined);
      const message = err instanceof Error ? err.message : String(err);
      if (attempt < 3 && /address already in use|EADDRINUSE|Could not create any TCP\/IP sockets/i.test(message)) continue;
      throw err;
    }
  }
}

export function startServer(kind: ServerKind, opts: StartOptions = {}): Promise<TestServer> {
  switch (kind) {
    case 'redis':
      return startRedis(opts);
    case 'postgres':
      return startPostgres(opts);
    case 'mariadb':
      return startMariadb(opts);
  }
}

/** Let a server (started with { detached: true }) outlive this process: it is no longer killed or removed at exit. */
export function keepRunning(server: TestServer): void {
  if (!(server instanceof ManagedServer)) throw new Error('keepRunning: not a server started by src/lab/servers.ts');
  server.release();
}

/** Stop every server this process started (and did not hand over) and remove their temp dirs. */
export async function destroyAll(): Promise<void> {
  const servers = [...owned];
  await Promise.all(servers.map((s) => s.destroy().catch(() => undefined)));
}

// ---------------------------------------------------------------------------------------------------
// CLI for scripts/services.sh

const KINDS: ServerKind[] = ['redis', 'postgres', 'mariadb'];

async function cliUp(args: string[]): Promise<void> {
  let stateDir: string | undefined;
  const kinds: ServerKind[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--state-dir') stateDir = args[++i];
    else if (arg !== undefined && (KINDS as string[]).includes(arg)) kinds.push(arg as ServerKind);
    else throw new Error(`unknown argument ${arg}; usage: servers.ts up --state-dir DIR [redis] [postgres] [mariadb]`);
  }
  if (!stateDir) throw new Error('--state-dir DIR is required');
  const wanted = kinds.length > 0 ? [...new Set(kinds)] : KINDS;
  await mkdir(stateDir, { recursive: true });
  await ensureInstalled(wanted);
  const results = await Promise.allSettled(wanted.map((kind) => startServer(kind, { detached: true })));
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length > 0) {
    for (const r of results) if (r.status === 'fulfilled') await r.value.destroy().catch(() => undefined);
    for (const f of failures) warn(`start failed: ${f.reason instanceof Error ? f.reason.message : String(f.reason)}`);
    process.exitCode = 1;
    return;
  }
  for (const r of results) {
    if (r.status !== 'fulfilled') continue;
    const server = r.value;
    const write = (name: string, value: string | number | undefined): Promise<void> =>
      writeFile(path.join(stateDir, `${server.kind}.${name}`), `${value ?? ''}\n`);
    await write('dir', server.dataDir);
    await write('port', server.port);
    await write('url', server.url);
    await write('pid', server.pid()); // last: its presence means the others are complete
    keepRunning(server); // from here on scripts/services.sh owns it
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  verbose = true;
  if (command === 'up') {
    await cliUp(rest);
  } else {
    process.stderr.write('usage: node --import tsx src/lab/servers.ts up --state-dir DIR [redis] [postgres] [mariadb]\n');
    process.exitCode = 2;
  }
}

const invokedDirectly = ((): boolean => {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return path.resolve(entry) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    // Detached servers live on; nothing else should hold the process.
    () => process.exit(process.exitCode ?? 0),
    (err: unknown) => {
      process.stderr.write(`[servers] ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
