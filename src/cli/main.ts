// The `allot` command: thin commands over service/. Errors print as one line and exit non-zero.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { isAllotError } from '../core/errors.ts';
import { ConfigError } from '../service/config.ts';
import { auditCommand, campaignCreate, campaignGet, campaignList, campaignPause, campaignReveal, campaignStock, claimProof, keysPurge, migrateCommand } from './commands.ts';
import { labCommand } from './lab.ts';
import { serve } from './serve.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

function dbOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--database-url <url>', 'system of record (postgres://, mysql://, pglite://DIR, memory://)').env('DATABASE_URL'))
    .addOption(new Option('--data-dir <dir>', 'data dir for embedded PGlite and the admin token').env('ALLOT_DATA_DIR'));
}

const program = new Command()
  .name('allot')
  .description('Hand out limited things exactly once: coupons, prizes, payouts.')
  .version(pkg.version)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

dbOptions(program.command('serve').description('run the HTTP service (the default of `npm start`)'))
  .addOption(new Option('-p, --port <port>', 'HTTP port').env('PORT'))
  .addOption(new Option('--host <host>', 'interface to listen on').env('HOST'))
  .option('--allow-unsafe-strategies', 'allow the race lab\'s demo strategies (naive, local-mutex), which can oversell')
  .action((o) => serve(o, pkg.version));

dbOptions(program.command('migrate').description('bring the database schema up to date (safe to run from several instances at once)'))
  .action((o) => migrateCommand(o));

dbOptions(program.command('audit').description('check the invariants of one campaign; exits 1 if any fails').argument('<campaignId>'))
  .option('--json', 'print JSON')
  .action((id, o) => auditCommand(id, o));

const keys = program.command('keys').description('idempotency keys');
dbOptions(keys.command('purge').description('delete idempotency keys older than an age (at least 24h, the API\'s retention promise)'))
  .option('--older-than <age>', 'age such as 36h, 7d or 90m', '7d')
  .action((o) => keysPurge(o));

const collect = (v: string, prev: string[] = []) => [...prev, v];

const campaign = program.command('campaign').description('create, get, list and administer campaigns');
dbOptions(campaign.command('create').description('create a coupon campaign, or a lottery with --kind lottery and --prize'))
  .requiredOption('--name <name>', 'display name')
  .option('--kind <kind>', 'coupon or lottery', 'coupon')
  .option('--stock <n>', 'coupon: units to hand out (required for a coupon)')
  .option('--prize <ID:NAME:STOCK:WEIGHT>', 'lottery: a prize, e.g. p1:Phone:3:1 (repeatable)', collect)
  .option('--miss-weight <n>', 'lottery: weight of drawing nothing (default 0)')
  .option('--fallback <prizeId>', 'lottery: the consolation prize, given when no weighted prize can be had')
  .option('--id <id>', 'campaign id (generated when absent)')
  .option('--per-user-limit <n>', 'claims per user over the campaign (default 1)')
  .option('--per-user-daily-limit <n>', 'claims per user per UTC day')
  .option('--starts-at <iso>', 'claims accepted from (ISO-8601)')
  .option('--ends-at <iso>', 'claims accepted until (ISO-8601, exclusive)')
  .option('--strategy <name>', 'claim strategy')
  .action((o) => campaignCreate(o));
dbOptions(campaign.command('get').description('show one campaign with issued and remaining').argument('<id>')).action((id, o) => campaignGet(id, o));
dbOptions(campaign.command('list').description('list campaigns'))
  .option('--limit <n>', 'page size (1-1000)', '100')
  .option('--cursor <cursor>', 'nextCursor of the previous page')
  .action((o) => campaignList(o));
dbOptions(campaign.command('stock').description('add stock to a coupon campaign, or to one prize of a lottery (--prize)').argument('<id>'))
  .requiredOption('--add <n>', 'units to add (1..2147483647)')
  .option('--prize <prizeId>', 'lottery: the prize to add to')
  .action((id, o) => campaignStock(id, o));
dbOptions(campaign.command('pause').description('pause claims (they get CAMPAIGN_NOT_ACTIVE); idempotent').argument('<id>')).action((id, o) => campaignPause(id, true, o));
dbOptions(campaign.command('resume').description('resume claims after a pause; idempotent').argument('<id>')).action((id, o) => campaignPause(id, false, o));
dbOptions(campaign.command('reveal').description('reveal a lottery\'s secret seed, so its draws can be verified').argument('<id>')).action((id, o) => campaignReveal(id, o));

const claim = program.command('claim').description('claims');
dbOptions(claim.command('proof').description('print the proof of a lottery draw and whether it verifies (exits 1 if not)').argument('<claimId>'))
  .action((id, o) => claimProof(id, o));

program
  .command('lab')
  .description('race lab: run a scenario from the field reports against each strategy with real worker processes, check the invariants')
  .option('--list', 'list the scenarios and fault kinds')
  .option('--scenario <name>', 'scenario to run (see --list)')
  .option('--backend <name>', 'pglite, postgres or mysql (repeatable or comma-separated; default: the scenario\'s)', collect)
  .option('--strategies <list>', 'only these strategies, comma-separated')
  .option('--workers <n>', 'worker processes per run (default 4)')
  .option('--database-url <url>', 'a server to run on (repeatable; default: DATABASE_URL / DATABASE_URL_PG / DATABASE_URL_MYSQL, else a throwaway server)', collect)
  .option('--redis-url <url>', 'Redis for redis-lock (default REDIS_URL, else a throwaway server)')
  .option('--target <url>', 'drive running allot instances over HTTP instead (repeatable; loopback only)', collect)
  .option('--token <token>', 'admin token of the --target instances (default ALLOT_ADMIN_TOKEN)')
  .option('--fault <spec>', 'inject a fault: KIND[:ARG][@WHEN] (repeatable; see --list)', collect)
  .option('--backstop', 'keep the production CHECK (issued <= stock) on the lab schema')
  .option('--json <file>', 'write one JSON object per strategy x backend')
  .option('--html <file>', 'write a self-contained HTML report with charts')
  .option('--out-dir <dir>', 'where histories go (default: a new temp dir)')
  .action((o) => labCommand(o));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (err instanceof ConfigError) {
    process.stderr.write(`allot: ${err.message}\n`);
    process.exitCode = 2;
  } else if (isAllotError(err)) {
    process.stderr.write(`allot: ${err.code}: ${err.message}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`allot: error: ${(err as Error)?.message ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
