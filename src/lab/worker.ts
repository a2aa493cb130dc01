// A race-lab worker: a separate OS process (so in-process mutexes fail as in production) that
// opens its own service on the lab's database — or talks HTTP to running instances — waits for
// "go", fires its operations at their scheduled instants and records every one (invoke, then
// ok / fail / unknown) synchronously to its JSONL history, so a kill -9 loses no invoke.
import { closeSync, openSync, writeSync } from 'node:fs';
import { AllotError } from '../core/errors.ts';
import { AllotService } from '../service/service.ts';
import type { HistoryEvent } from './types.ts';

export interface LabOp {
  op: number;
  campaignId: string;
  userId: string;
  key: string | null;
  /** ms after "go" */
  at: number;
}

export interface WorkerJob {
  worker: number;
  historyFile: string;
  ops: LabOp[];
  /** direct: an AllotService of its own on `databaseUrl`; http: POST to the targets in turn */
  mode: 'direct' | 'http';
  databaseUrl?: string;
  isolation?: 'read committed' | 'repeatable read';
  locksUrl?: string;
  lockPrefix?: string;
  poolSize?: number;
  thinkMs?: number;
  lockTtlMs?: number;
  /** a campaign of the run's strategy to warm the claim path on before "ready" (direct mode) */
  warmupCampaignId?: string;
  /** lock-expiry: before its first transaction, op 0 tells the parent it holds its lock and waits for "proceed" */
  pauseAfterLock?: boolean;
  targets?: string[];
  token?: string;
  /** redis-atomic's settings (the lab's `redis-atomic-fast` runs it in `fast` mode) */
  redisAtomic?: { mode: 'durable' | 'fast'; leaseTtlMs?: number; recoverEveryMs?: number };
}

export type WorkerMessage = { type: 'ready' } | { type: 'progress'; done: number } | { type: 'holding' } | { type: 'done'; done: number } | { type: 'error'; message: string };

interface Answer {
  status: number;
  body: unknown;
  replayed: boolean;
  retries?: number;
  fence?: { resource: string; fence: bigint; committedAt: number };
}

type Client = { claim(op: LabOp): Promise<Answer>; close(): Promise<void> };

function send(msg: WorkerMessage): void {
  process.send?.(msg);
}

function waitFor(type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const on = (m: Record<string, unknown>) => {
      if (m?.type === type) {
        process.off('message', on);
        resolve(m);
      }
    };
    process.on('message', on);
  });
}

async function directClient(job: WorkerJob): Promise<Client> {
  const service = await AllotService.open({
    config: {
      databaseUrl: job.databaseUrl!,
      dbPoolSize: job.poolSize ?? 10,
      dbTimeoutMs: 20_000,
      defaultStrategy: 'conditional',
      allowUnsafeStrategies: true,
      locksUrl: job.locksUrl,
      lockPrefix: job.lockPrefix,
      ...(job.isolation ? { dbIsolation: job.isolation } : {}),
    },
    migrate: false,
    ...(job.redisAtomic ? { redisAtomic: job.redisAtomic } : {}),
    strategies: {
      unsafeThinkMs: job.thinkMs ?? 0,
      redisLock: {
        ...(job.lockTtlMs ? { ttlMs: job.lockTtlMs } : {}),
        ...(job.pauseAfterLock
          ? {
              afterLock: async () => {
                if (!pausing) return;
                pausing = false;
                send({ type: 'holding' });
                await waitFor('proceed');
              },
            }
          : {}),
      },
    },
  });
  let pausing = job.pauseAfterLock === true;
  // Warm up before "go": the first claims of a fresh process take hundreds of ms (connections,
  // compilation), and that, not the strategy, would otherwise decide who wins the race. As many
  // at once as the pool holds, so every connection is open before "go" (a connection opened
  // during the race arrives late and serializes the first wave).
  if (job.warmupCampaignId) {
    const width = job.poolSize ?? 10;
    for (let round = 0; round < 3; round++) {
      await Promise.all(Array.from({ length: width }, (_, i) => service.claim(job.warmupCampaignId!, `warmup-${job.worker}-${round}-${i}`, null).catch(() => undefined)));
    }
  }
  return {
    async claim(op) {
      const out = await service.claim(op.campaignId, op.userId, op.key);
      return { status: out.status, body: out.body, replayed: out.replayed, ...(out.stats ? { retries: out.stats.retries, ...(out.stats.fence ? { fence: out.stats.fence } : {}) } : {}) };
    },
    close: () => service.close(),
  };
}

function httpClient(job: WorkerJob): Client {
  const targets = job.targets ?? [];
  let next = job.worker;
  return {
    async claim(op) {
      const base = targets[next++ % targets.length]!;
      const res = await fetch(`${base.replace(/\/$/, '')}/v1/campaigns/${encodeURIComponent(op.campaignId)}/claims`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${job.token ?? ''}`, ...(op.key ? { 'idempotency-key': op.key } : {}) },
        body: JSON.stringify({ userId: op.userId }),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      let body: unknown = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = { raw: text.slice(0, 200) };
      }
      return { status: res.status, body, replayed: res.headers.get('idempotent-replayed') === 'true' };
    },
    close: async () => undefined,
  };
}

/** The completion event of an answer: ok, a definite failure, or unknown. */
export function classify(a: Answer, t0 = 0): Pick<HistoryEvent, 'type' | 'status' | 'claimId' | 'code' | 'replayed' | 'retries' | 'fence' | 'fenceResource' | 'fenceAt' | 'body'> {
  const body = a.body as { claim?: { id?: string }; error?: { code?: string; outcome?: string } } | null;
  const common = { status: a.status, replayed: a.replayed, body: a.body, ...(a.retries !== undefined ? { retries: a.retries } : {}) };
  if (a.status === 201 && body?.claim?.id) {
    return { ...common, type: 'ok', claimId: body.claim.id, ...(a.fence ? { fence: a.fence.fence.toString(), fenceResource: a.fence.resource, fenceAt: a.fence.committedAt - t0 } : {}) };
  }
  const code = body?.error?.code ?? `HTTP_${a.status}`;
  if (a.status >= 500 && body?.error?.outcome !== 'nothing-issued') return { ...common, type: 'unknown', code };
  return { ...common, type: 'fail', code };
}

async function main(): Promise<void> {
  const job = (await waitFor('job')).job as WorkerJob;
  const fd = openSync(job.historyFile, 'a');
  let t0 = 0;
  const record = (e: Omit<HistoryEvent, 'worker' | 't'>) => {
    writeSync(fd, `${JSON.stringify({ ...e, worker: job.worker, t: Date.now() - t0 })}\n`);
  };
  const client = job.mode === 'http' ? httpClient(job) : await directClient(job);
  send({ type: 'ready' });
  t0 = Number((await waitFor('go')).t0);
  let done = 0;
  const progress = setInterval(() => send({ type: 'progress', done }), 100);
  await Promise.all(
    job.ops.map(async (op) => {
      const wait = t0 + op.at - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const base = { op: op.op, campaignId: op.campaignId, userId: op.userId, key: op.key };
      record({ ...base, type: 'invoke' });
      try {
        record({ ...base, ...classify(await client.claim(op), t0) });
      } catch (err) {
        const e = err as Error & { cause?: Error };
        const nothing = err instanceof AllotError && err.details?.outcome === 'nothing-issued';
        const code = err instanceof AllotError ? err.code : 'ERROR';
        record({ ...base, type: nothing ? 'fail' : 'unknown', status: 0, code, error: `${e.message}${e.cause ? ` (cause: ${e.cause.message})` : ''}` });
      }
      done++;
    }),
  );
  clearInterval(progress);
  closeSync(fd);
  await client.close().catch(() => undefined);
  send({ type: 'done', done });
  process.disconnect?.();
}

main().catch((err: Error) => {
  send({ type: 'error', message: err.stack ?? err.message });
  process.exitCode = 1;
  process.disconnect?.();
});
