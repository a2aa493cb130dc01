import { AllotService } from '../../src/service/service.ts';
const url = process.env.DATABASE_URL_PG!;
const mk = () => AllotService.open({ config: { databaseUrl: url, dbPoolSize: 8, dbTimeoutMs: 10000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: process.env.REDIS_URL, lockPrefix: 'probe:' }, payouts: { sweepIntervalMs: 0 } });
const a = await mk(); const b = await mk();
const ids: string[] = [];
for (let c = 0; c < 5; c++) { const id = `probe-${Date.now()}-${c}`; await a.createCampaign({ id, kind: 'coupon', name: 'p', stock: 20, strategy: 'redis-atomic' }); ids.push(id); }
const t0 = performance.now();
const outs = await Promise.all(Array.from({ length: 1000 }, (_, i) => (i % 2 ? a : b).claim(ids[i % 5]!, `u-${i}`, `k-${i}`).then((o) => o.status, (e) => String(e.code))));
const hist = new Map<unknown, number>(); for (const o of outs) hist.set(o, (hist.get(o) ?? 0) + 1);
console.log([...hist], Math.round(performance.now() - t0), 'ms', JSON.stringify((globalThis as any).__raCodes));
await a.close(); await b.close();
