// Fault injection for lab runs: `kind[:arg][@when]`, when = 500ms | 2s | 300ops (after that many
// completed operations); no @ means from the start. Each fault acts on a real process, server
// or connection: kill -9 or SIGSTOP a worker, Redis restart / FLUSHALL / CLIENT PAUSE, and the
// TCP proxy's latency, resets and blackholes between the app and the database or Redis.
import { Redis } from 'ioredis';
import type { FaultProxy } from './proxy.ts';
import type { TestServer } from './servers.ts';

export const FAULT_KINDS = {
  'kill-worker': 'kill -9 worker 0 (its in-flight requests end with no answer)',
  'stop-worker': 'SIGSTOP worker 0 for ARG ms (default 2000), then SIGCONT',
  'redis-restart': 'stop and restart the lab\'s own Redis (no persistence: locks and fences epochs vanish)',
  'redis-flushall': 'FLUSHALL on Redis',
  'redis-pause': 'CLIENT PAUSE ARG ms (default 1000) on Redis',
  'db-latency': 'add ARG ms (default 100) each way between the app and the database',
  'db-reset': 'reset every connection to the database',
  'db-blackhole': 'swallow all database traffic for ARG ms (default 1000), then reset',
  'redis-latency': 'add ARG ms (default 100) each way between the app and Redis',
  'redis-reset': 'reset every connection to Redis',
  'redis-blackhole': 'swallow all Redis traffic for ARG ms (default 1000), then reset',
} as const;

export type FaultKind = keyof typeof FAULT_KINDS;

export interface Fault {
  spec: string;
  kind: FaultKind;
  arg: number | null;
  /** ms after go, or completed operations; null: from the start */
  when: { ms: number } | { ops: number } | null;
}

export function parseFault(spec: string): Fault {
  const m = /^([a-z-]+)(?::(\d+))?(?:@(\d+)(ms|s|ops))?$/.exec(spec.trim());
  if (!m || !(m[1]! in FAULT_KINDS)) {
    throw new Error(`--fault ${spec}: expected KIND[:ARG][@WHEN] with KIND one of ${Object.keys(FAULT_KINDS).join(', ')} and WHEN like 500ms, 2s or 300ops`);
  }
  const n = m[3] === undefined ? null : Number(m[3]);
  const when = n === null ? null : m[4] === 'ops' ? { ops: n } : { ms: m[4] === 's' ? n * 1000 : n };
  return { spec, kind: m[1] as FaultKind, arg: m[2] === undefined ? null : Number(m[2]), when };
}

export interface FaultTargets {
  workerPid(index: number): number | undefined;
  dbProxy: FaultProxy | null;
  redisProxy: FaultProxy | null;
  redisUrl: string | null;
  redisServer: TestServer | null;
  log(line: string): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Which proxies a set of faults needs (they must be in place before the workers connect). */
export function proxiesNeeded(faults: Fault[]): { db: boolean; redis: boolean } {
  return { db: faults.some((f) => f.kind.startsWith('db-')), redis: faults.some((f) => f.kind.startsWith('redis-') && !['redis-restart', 'redis-flushall', 'redis-pause'].includes(f.kind)) };
}

export async function applyFault(f: Fault, t: FaultTargets): Promise<void> {
  t.log(`fault: ${f.spec}`);
  const arg = (def: number) => f.arg ?? def;
  switch (f.kind) {
    case 'kill-worker': {
      const pid = t.workerPid(0);
      if (pid) process.kill(pid, 'SIGKILL');
      return;
    }
    case 'stop-worker': {
      const pid = t.workerPid(0);
      if (!pid) return;
      process.kill(pid, 'SIGSTOP');
      await sleep(arg(2000));
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // it may have been killed meanwhile
      }
      return;
    }
    case 'redis-restart':
      if (!t.redisServer) throw new Error('redis-restart needs the lab\'s own Redis: run without REDIS_URL / --redis-url');
      await t.redisServer.stop();
      await t.redisServer.start();
      return;
    case 'redis-flushall':
    case 'redis-pause': {
      if (!t.redisUrl) throw new Error(`${f.kind}: no Redis in this run`);
      const r = new Redis(t.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
      r.on('error', () => undefined);
      try {
        await r.connect();
        if (f.kind === 'redis-flushall') await r.flushall();
        else await r.call('CLIENT', 'PAUSE', String(arg(1000)), 'ALL');
      } finally {
        r.disconnect();
      }
      return;
    }
    default: {
      const proxy = f.kind.startsWith('db-') ? t.dbProxy : t.redisProxy;
      if (!proxy) throw new Error(`${f.kind}: no proxy in place`);
      if (f.kind.endsWith('-latency')) proxy.setLatency(arg(100));
      else if (f.kind.endsWith('-reset')) proxy.resetAll();
      else {
        proxy.setBlackhole(true);
        await sleep(arg(1000));
        proxy.setBlackhole(false);
        proxy.resetAll();
      }
    }
  }
}
