// A red-packet-withdrawal lab worker: a separate OS process (so an in-process mutex fails as it
// does with a second deployed server). For each job the driver sends, it opens its own
// connections for one withdrawal design on the lab's namespace, says "ready", waits for "go",
// fires its share of the requests at their scheduled instants, records every one (invoke
// before, completion after) synchronously to the job's JSONL history, closes its connections
// and says "done"; then it waits for the next job, or "exit". (The driver reuses its worker
// processes from one design to the next: starting a TypeScript process costs seconds here,
// a design's run one.)
//
// The designs: the field report's three seed stages on the `participating` table (naive status
// flag; an in-process mutex around read + update; the guarded update), and allot's withdrawal
// (service.payouts.withdraw). The seeds "pay" by inserting a `payments` row: the side effect
// the checker counts.
import { closeSync, openSync, writeSync } from 'node:fs';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { connectSql } from '../adapters/sql/connect.ts';
import { AllotError } from '../core/errors.ts';
import type { AllotService } from '../service/service.ts';

export type PayoutDesign = 'naive' | 'mutex' | 'guarded' | 'allot';

export interface PayoutOp {
  /** unique in a run */
  op: number;
  /** the Idempotency-Key (allot); the seeds have none and send the openid alone */
  key: string;
  /** ms after "go" */
  at: number;
}

export interface PayoutJob {
  worker: number;
  historyFile: string;
  design: PayoutDesign;
  /** the lab namespace's URL */
  databaseUrl: string;
  /** the openid (seeds) or the user id (allot) every request is for */
  userId: string;
  asset: string;
  /** the red packet, in minor units (a decimal string: IPC carries no bigint) */
  amount: string;
  /** ms of business logic between the seeds' read and their update */
  thinkMs: number;
  poolSize: number;
  ops: PayoutOp[];
  /** allot: a user funded for the warm-up withdrawals made before "ready" */
  warmupUserId?: string;
}

export type PayoutWorkerMessage = { type: 'ready' } | { type: 'progress'; done: number } | { type: 'done'; done: number } | { type: 'error'; message: string };

/** invoke: sent; ok: a 201 naming a payment (or withdrawal); fail: a definite refusal or an
 * error that paid nothing; unknown: the outcome could not be learned. */
export interface PayoutEvent {
  type: 'invoke' | 'ok' | 'fail' | 'unknown';
  op: number;
  worker: number;
  /** ms since "go" (one clock for every worker) */
  t: number;
  userId: string;
  key: string;
  status?: number;
  /** ok: the payment id (seeds) or the withdrawal id (allot) */
  paymentId?: string;
  /** fail / unknown: the error code */
  code?: string;
  replayed?: boolean;
  error?: string;
}

interface Answer {
  status: number;
  body: unknown;
  replayed: boolean;
}

type Client = { withdraw(op: PayoutOp): Promise<Answer>; close(): Promise<void> };

function send(msg: PayoutWorkerMessage): void {
  process.send?.(msg);
}

// Every message from the driver, in order, for whoever asks next (none is lost between jobs).
const inbox: Array<Record<string, unknown>> = [];
let waiter: (() => void) | null = null;
process.on('message', (m: Record<string, unknown>) => {
  inbox.push(m);
  waiter?.();
});

async function next(...types: string[]): Promise<Record<string, unknown>> {
  for (;;) {
    const i = inbox.findIndex((m) => types.includes(String(m?.type)));
    if (i >= 0) return inbox.splice(i, 1)[0]!;
    await new Promise<void>((r) => (waiter = r));
    waiter = null;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One holder at a time, in arrival order: the seed's `sync.Mutex`, good for one process only. */
class LocalMutex {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

function refusal(code: string): Answer {
  return { status: 409, body: { error: { code } }, replayed: false };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function affected(db: Kysely<any>, q: RawBuilder<unknown>): Promise<number> {
  return Number((await q.execute(db)).numAffectedRows ?? 0n);
}

/** The seed's three stages: every statement on its own (autocommit), as the seed ran them. */
async function seedClient(job: PayoutJob): Promise<Client> {
  const conn = await connectSql({ url: job.databaseUrl, poolSize: job.poolSize, timeoutMs: 20_000 });
  const db = conn.db;
  const openid = job.userId;
  const mutex = new LocalMutex();

  const read = async (): Promise<boolean> =>
    (await sql`SELECT openid, redpack FROM participating WHERE openid = ${openid} AND hit = 1 AND status = 0`.execute(db)).rows.length > 0;

  /** Read, business logic, mark "withdrawing": null when this request goes on to pay, else its refusal. */
  const readAndMark = async (): Promise<Answer | null> => {
    if (!(await read())) return refusal('NOT_WITHDRAWABLE');
    await sleep(job.thinkMs);
    if (job.design === 'guarded') {
      // Stage 3: the database arbitrates; pay only when this update took the row.
      const took = await affected(db, sql`UPDATE participating SET status = 2 WHERE openid = ${openid} AND status = 0 AND hit = 1`);
      return took === 1 ? null : refusal('ALREADY_WITHDRAWN');
    }
    // Stages 1 and 2: the update carries no status guard.
    await sql`UPDATE participating SET status = 2 WHERE openid = ${openid}`.execute(db);
    return null;
  };

  // Warm-up: open the pool's connections and run the statements once (on no row), so a
  // fresh process's first connect does not decide the race.
  for (let round = 0; round < 2; round++) {
    await Promise.all(
      Array.from({ length: job.poolSize }, () => sql`SELECT openid, redpack FROM participating WHERE openid = ${'@warmup'} AND hit = 1 AND status = 0`.execute(db)),
    );
  }
  await sql`UPDATE participating SET status = 2 WHERE openid = ${'@warmup'} AND status = 0 AND hit = 1`.execute(db);

  return {
    async withdraw(op) {
      const refused = job.design === 'mutex' ? await mutex.run(readAndMark) : await readAndMark();
      if (refused) return refused;
      // "Pay": the side effect that counts.
      const id = `pay-${op.op}-${openid}`;
      await sql`INSERT INTO payments (id, openid, amount, op_id, worker, created_at) VALUES (${id}, ${openid}, ${job.amount}, ${op.op}, ${job.worker}, ${Date.now()})`.execute(db);
      await sql`UPDATE participating SET status = 1, order_id = ${id} WHERE openid = ${openid}`.execute(db);
      return { status: 201, body: { payment: { id, openid, amount: Number(job.amount) } }, replayed: false };
    },
    close: () => db.destroy(),
  };
}

async function allotClient(job: PayoutJob): Promise<Client> {
  const { AllotService } = await import('../service/service.ts');
  const service: AllotService = await AllotService.open({
    config: { databaseUrl: job.databaseUrl, dbPoolSize: job.poolSize, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
    migrate: false,
    // No transfer orders here: no sweep.
    payouts: { sweepIntervalMs: 0 },
  });
  const amount = BigInt(job.amount);
  if (job.warmupUserId) {
    for (let round = 0; round < 3; round++) {
      await Promise.all(Array.from({ length: 4 }, (_, i) => service.payouts.withdraw(job.warmupUserId!, job.asset, 1n, `warmup-${job.worker}-${round}-${i}`).catch(() => undefined)));
    }
  }
  return {
    withdraw: (op) => service.payouts.withdraw(job.userId, job.asset, amount, op.key),
    close: () => service.close(),
  };
}

/** The completion event of an answer. */
export function classifyPayout(a: Answer): Pick<PayoutEvent, 'type' | 'status' | 'paymentId' | 'code' | 'replayed'> {
  const body = a.body as { payment?: { id?: string }; withdrawal?: { id?: string }; error?: { code?: string; outcome?: string } } | null;
  const id = body?.payment?.id ?? body?.withdrawal?.id;
  if (a.status === 201 && id) return { type: 'ok', status: a.status, paymentId: id, replayed: a.replayed };
  const code = body?.error?.code ?? `HTTP_${a.status}`;
  if (a.status >= 500 && body?.error?.outcome !== 'nothing-issued') return { type: 'unknown', status: a.status, code, replayed: a.replayed };
  return { type: 'fail', status: a.status, code, replayed: a.replayed };
}

async function runJob(job: PayoutJob): Promise<void> {
  const fd = openSync(job.historyFile, 'a');
  let open = true;
  const closeHistory = () => {
    if (open) closeSync(fd);
    open = false;
  };
  try {
    let t0 = 0;
    const record = (e: Omit<PayoutEvent, 'worker' | 't'>) => {
      writeSync(fd, `${JSON.stringify({ ...e, worker: job.worker, t: Date.now() - t0 })}\n`);
    };
    const client = job.design === 'allot' ? await allotClient(job) : await seedClient(job);
    send({ type: 'ready' });
    t0 = Number((await next('go')).t0);
    let done = 0;
    const progress = setInterval(() => send({ type: 'progress', done }), 100);
    await Promise.all(
      job.ops.map(async (op) => {
        const wait = t0 + op.at - Date.now();
        if (wait > 0) await sleep(wait);
        const base = { op: op.op, userId: job.userId, key: op.key };
        record({ ...base, type: 'invoke' });
        try {
          record({ ...base, ...classifyPayout(await client.withdraw(op)) });
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
    closeHistory();
    await client.close().catch(() => undefined);
    send({ type: 'done', done });
  } finally {
    closeHistory();
  }
}

let leaving = false;
// The driver is gone (killed, or interrupted): so is this worker, open connections or not.
process.on('disconnect', () => {
  if (!leaving) process.exit(1);
});

function leave(): void {
  leaving = true;
  process.disconnect?.();
}

async function main(): Promise<void> {
  for (;;) {
    const m = await next('job', 'exit');
    if (m.type === 'exit') break;
    await runJob(m.job as PayoutJob);
  }
  leave();
}

main().catch((err: Error) => {
  send({ type: 'error', message: err.stack ?? err.message });
  process.exitCode = 1;
  leave();
});
