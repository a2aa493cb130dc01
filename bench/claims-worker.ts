// A bench:claims worker process: its own service (own pool) on the bench's database, driving
// one hot campaign with `concurrency` callers for `seconds`: a new user per request, plus a
// share of repeats (the same user and key again: a replay). Reports counts, latency, the ids
// of the claims it was answered 201 for (the parent checks each is in the database) and its RSS.
import { openWorkerService } from './workers.ts';

interface Job {
  url: string;
  campaignId: string;
  strategy: string;
  worker: number;
  seconds: number;
  concurrency: number;
  repeatShare: number;
  pool: number;
  /** Redis for redis-atomic */
  locksUrl: string | null;
  lockPrefix: string;
  /** redis-atomic in `fast` mode */
  fast?: boolean;
}

const send = (msg: unknown) => new Promise<void>((resolve) => process.send!(msg, () => resolve()));

process.once('message', async (job: Job) => {
  const service = await openWorkerService(job);
  // Warm the path (connections, JIT, the campaign cache) on the bench's campaign.
  // (An optimistic strategy may give up under this burst: a 503 that issued nothing.)
  await Promise.all(Array.from({ length: 20 }, (_, i) => service.claim(job.campaignId, `warm-${job.worker}-${i}`, `warm-${job.worker}-${i}`).catch(() => undefined)));
  await send({ type: 'ready' });
  process.once('message', async () => {
    const lat: number[] = [];
    const acked: string[] = [];
    const counts = { issued: 0, replayed: 0, refused: 0, errors: 0 };
    let seq = 0;
    const issuedKeys: Array<{ user: string; key: string }> = [];
    const end = performance.now() + job.seconds * 1000;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: job.concurrency }, async () => {
        while (performance.now() < end) {
          const repeat = issuedKeys.length > 0 && ((seq * 7919) % 100) / 100 < job.repeatShare;
          const n = seq++;
          const r = repeat ? issuedKeys[(n * 31) % issuedKeys.length]! : { user: `b${job.worker}-${n}`, key: `k${job.worker}-${n}` };
          const t = performance.now();
          try {
            const out = await service.claim(job.campaignId, r.user, r.key);
            if (out.status === 201 && out.replayed) counts.replayed++;
            else if (out.status === 201) {
              counts.issued++;
              acked.push((out.body as { claim: { id: string } }).claim.id);
              if (issuedKeys.length < 10_000) issuedKeys.push(r);
            } else counts.refused++;
          } catch {
            counts.errors++;
          }
          lat.push(performance.now() - t);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    // `fast` mode: the 201s are out; their SQL writes may still be queued. The parent counts lost
    // acks once they are written (bounded).
    let drainMs: number | null = null;
    if (job.fast) {
      const t0 = performance.now();
      while ((service.redisAtomicFast()?.pending ?? 0) > 0 && performance.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 10));
      drainMs = Math.round(performance.now() - t0);
    }
    lat.sort((a, b) => a - b);
    const q = (p: number) => +(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0).toFixed(1);
    await send({ type: 'done', seconds, counts, p50: q(0.5), p99: q(0.99), acked, rssMb: Math.round(process.memoryUsage().rss / 1e6), drainMs });
    await service.close();
    process.exit(0);
  });
});
