// One process, one service, 256 callers on one hot campaign for 6 s: claims/s and this
// process's CPU per claim (user + system), for quick side-by-side checks of the claim path
// (the figures in docs/strategies.md "One process, 256 callers"). Needs a PostgreSQL or MariaDB:
//
//   DATABASE_URL=postgres://… node --import tsx bench/claims-one-process.ts [strategy]
//   (scripts/services.sh up prints such URLs; add --cpu-prof to profile)
import { AllotService } from '../src/service/service.ts';

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write('set DATABASE_URL (postgres://… or mysql://…); `bash scripts/services.sh up` starts both\n');
  process.exit(2);
}
const strategy = process.argv[2] ?? 'group-commit';
const service = await AllotService.open({ config: { databaseUrl: url, dbPoolSize: 8, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, ...(process.env.REDIS_URL ? { locksUrl: process.env.REDIS_URL } : {}) }, migrate: true, payouts: { sweepIntervalMs: 0 } });
try {
  const campaignId = `one-${Date.now()}`;
  await service.createCampaign({ id: campaignId, kind: 'coupon', name: 'bench', stock: 100_000_000, strategy, perUserLimit: 1 });
  let seq = 0;
  let issued = 0;
  const end = performance.now() + 6000;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 256 }, async () => {
    while (performance.now() < end) {
      const n = seq++;
      if ((await service.claim(campaignId, `u${n}`, `k${n}`)).status === 201) issued++;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(`${strategy}: ${Math.round(issued / seconds)} claims/s, ${((cpu.user + cpu.system) / issued).toFixed(0)} µs CPU per claim (this process)\n`);
} finally {
  await service.close();
}
