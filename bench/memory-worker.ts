// A bench:memory worker process (run with --expose-gc): its own service on the bench's
// database, `concurrency` callers claiming on one campaign until this worker has had `claims`
// answers, each from a new user with its own Idempotency-Key. The worker keeps counts and a
// fixed-size latency histogram, nothing per claim, so that what grows is the service's. At
// every checkpoint (and once more after the run, when the write-behind is empty and the
// service idle) it collects garbage and samples its memory.
import { openWorkerService } from './workers.ts';

interface Job {
  url: string;
  campaignId: string;
  worker: number;
  claims: number;
  checkpoints: number;
  concurrency: number;
  pool: number;
  locksUrl: string | null;
  lockPrefix: string;
  fast: boolean;
}

export interface Sample {
  /** answers so far (this worker) */
  answers: number;
  rssMb: number;
  /** heap used right after a full collection */
  heapMb: number;
  externalMb: number;
  /** `fast` mode: claims answered and not yet written to SQL */
  pending: number;
}

const MB = 1024 * 1024;
const send = (msg: unknown) => new Promise<void>((resolve) => process.send!(msg, () => resolve()));
const gc = (globalThis as { gc?: () => void }).gc;

function sample(answers: number, pending: number): Sample {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { answers, rssMb: +(m.rss / MB).toFixed(1), heapMb: +(m.heapUsed / MB).toFixed(1), externalMb: +(m.external / MB).toFixed(1), pending };
}

/** Latency histogram: 0.1 ms buckets up to 100 ms, then 10 ms buckets up to 60 s. */
const fine = new Uint32Array(1_000);
const coarse = new Uint32Array(6_000);
function record(ms: number): void {
  if (ms < 100) fine[Math.floor(ms * 10)]! += 1;
  else coarse[Math.min(coarse.length - 1, Math.floor(ms / 10))]! += 1;
}
function quantile(q: number, total: number): number {
  let seen = 0;
  const want = Math.ceil(q * total);
  for (let i = 0; i < fine.length; i++) if ((seen += fine[i]!) >= want) return (i + 1) / 10;
  for (let i = 0; i < coarse.length; i++) if ((seen += coarse[i]!) >= want) return (i + 1) * 10;
  return Number.POSITIVE_INFINITY;
}

process.once('message', async (job: Job) => {
  if (!gc) throw new Error('bench:memory workers run with --expose-gc');
  const service = await openWorkerService(job);
  await Promise.all(Array.from({ length: 20 }, (_, i) => service.claim(job.campaignId, `warm-${job.worker}-${i}`, `warm-${job.worker}-${i}`).catch(() => undefined)));
  const pendingNow = () => service.redisAtomicFast()?.pending ?? 0;
  const samples: Sample[] = [sample(0, 0)];
  await send({ type: 'ready' });
  process.once('message', async () => {
    const counts = { issued: 0, refused: 0, errors: 0 };
    let seq = 0;
    let answers = 0;
    const every = Math.max(1, Math.floor(job.claims / job.checkpoints));
    let next = every;
    let inflight = 0;
    let pausing: { promise: Promise<void>; resume(): void } | null = null;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: job.concurrency }, async () => {
        for (;;) {
          if (pausing) await pausing.promise;
          if (seq >= job.claims) return;
          const n = seq++;
          const t = performance.now();
          inflight++;
          try {
            const out = await service.claim(job.campaignId, `m${job.worker}-${n}`, `k${job.worker}-${n}`);
            if (out.status === 201) counts.issued++;
            else counts.refused++;
          } catch {
            counts.errors++;
          }
          inflight--;
          record(performance.now() - t);
          answers++;
          if (answers >= next && !pausing) {
            // A checkpoint: no new claims; once those in flight are answered, a sample.
            next += every;
            let resume!: () => void;
            const promise = new Promise<void>((r) => (resume = r));
            pausing = { promise, resume };
          }
          if (pausing && inflight === 0) {
            const s = sample(answers, pendingNow());
            samples.push(s);
            process.stderr.write(`[bench:memory] worker ${job.worker}: ${answers} answers, RSS ${s.rssMb} MB, heap after GC ${s.heapMb} MB${job.fast ? `, write-behind ${s.pending}` : ''}\n`);
            const p = pausing;
            pausing = null;
            p.resume();
          }
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    // `fast` mode: wait for the write-behind to reach SQL before the last sample and the count.
    let drainMs: number | null = null;
    if (job.fast) {
      const t0 = performance.now();
      while ((service.redisAtomicFast()?.pending ?? 0) > 0 && performance.now() - t0 < 300_000) await new Promise((r) => setTimeout(r, 10));
      drainMs = Math.round(performance.now() - t0);
    }
    // Idle for a moment (timers, pools settle), then the final sample.
    await new Promise((r) => setTimeout(r, 1_000));
    const settled = sample(answers, pendingNow());
    const total = counts.issued + counts.refused + counts.errors;
    await send({ type: 'done', seconds, counts, p50: quantile(0.5, total), p99: quantile(0.99, total), samples, settled, drainMs });
    await service.close();
    process.exit(0);
  });
});
