// The `allot` command: thin commands over service/. An error prints as one line on stderr and
// exits with the code of its class (exit-codes.ts: usage, not found, invariant, unavailable…).
// `serve` and `lab` load their modules (the HTTP app, the race lab) only when they run.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { TRANSFER_STATES } from '../core/payout.ts';
import { strategyNames } from '../strategies/index.ts';
import {
  auditCommand, balancesCommand, campaignCreate, campaignGet, campaignList, campaignPause, campaignReveal, campaignStock, claimProof, fundCommand, keysPurge,
  ledgerAudit, migrateCommand, transferGet, transferList, transferResolve, transferSend, withdrawCommand,
} from './commands.ts';
import { errorText, exitCodeFor } from './exit-codes.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

function dbOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--database-url <url>', 'system of record (postgres://, mysql://, mariadb://, pglite://DIR or a directory path, memory://)').env('DATABASE_URL'))
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
  .action(async (o) => (await import('./serve.ts')).serve(o, pkg.version));

dbOptions(program.command('migrate').description('bring the database schema up to date (safe to run from several instances at once)'))
  .action((o) => migrateCommand(o));

dbOptions(program.command('audit').description('check the invariants of one campaign; exits 4 if any fails').argument('<campaignId>'))
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
  .addOption(new Option('--kind <kind>', 'coupon or lottery').choices(['coupon', 'lottery']).default('coupon'))
  .option('--stock <n>', 'coupon: units to hand out (required for a coupon)')
  .option('--prize <ID:NAME:STOCK:WEIGHT>', 'lottery: a prize, e.g. p1:Phone:3:1 (repeatable)', collect)
  .option('--miss-weight <n>', 'lottery: weight of drawing nothing (default 0)')
  .option('--fallback <prizeId>', 'lottery: the consolation prize, given when no weighted prize can be had')
  .option('--id <id>', 'campaign id (generated when absent)')
  .option('--per-user-limit <n>', 'claims per user over the campaign (default 1)')
  .option('--per-user-daily-limit <n>', 'claims per user per UTC day')
  .option('--starts-at <iso>', 'claims accepted from (ISO-8601)')
  .option('--ends-at <iso>', 'claims accepted until (ISO-8601, exclusive)')
  .addOption(new Option('--strategy <name>', 'claim strategy (default ALLOT_DEFAULT_STRATEGY; naive and local-mutex need ALLOT_ALLOW_UNSAFE_STRATEGIES=1)').choices(strategyNames()))
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
dbOptions(claim.command('proof').description('print the proof of a lottery draw and whether it verifies (exits 4 if not)').argument('<claimId>'))
  .action((id, o) => claimProof(id, o));

// Payouts. A command that opens the service also runs the payout sweep while it is open (it
// sends what the outbox holds and asks the rail about orders left executing).
const amountHelp = 'minor units: a whole number from 1 to 9223372036854775807';
dbOptions(program.command('fund').description('credit a user (once per funding id, forever; the same funding again changes nothing)'))
  .requiredOption('--funding-id <id>', 'the funding\'s id, unique forever')
  .requiredOption('--user <userId>', 'the user to credit')
  .requiredOption('--asset <asset>', 'asset code, e.g. CNY')
  .requiredOption('--amount <n>', amountHelp)
  .action((o) => fundCommand(o));
dbOptions(program.command('withdraw').description('debit a user at most once per key (scoped per user), never below zero'))
  .requiredOption('--user <userId>', 'the user to debit')
  .requiredOption('--asset <asset>', 'asset code, e.g. CNY')
  .requiredOption('--amount <n>', amountHelp)
  .requiredOption('--key <key>', 'idempotency key: the same on every retry of this withdrawal, a new one for a new withdrawal')
  .action((o) => withdrawCommand(o));
dbOptions(program.command('balances').description('a user\'s balances per asset: available, held (open transfer orders), paid out').argument('<userId>'))
  .option('--json', 'print JSON')
  .action((id, o) => balancesCommand(id, o));

const transfers = program.command('transfers').description('transfer orders: send, get, list, resolve an unknown one');
dbOptions(transfers.command('send').description('receive a transfer order (hold the funds) and send it to the payment rail once; prints where it stands'))
  .requiredOption('--order-id <id>', 'the order\'s id, unique forever (the same order again is never executed twice)')
  .requiredOption('--user <userId>', 'the user who pays')
  .requiredOption('--asset <asset>', 'asset code, e.g. CNY')
  .requiredOption('--amount <n>', amountHelp)
  .requiredOption('--destination <text>', 'where the rail pays to (1-256 characters)')
  .action((o) => transferSend(o));
dbOptions(transfers.command('get').description('show one transfer order').argument('<orderId>')).action((id, o) => transferGet(id, o));
dbOptions(transfers.command('list').description('list transfer orders by id (--state unknown: those waiting for a person)'))
  .addOption(new Option('--state <state>', 'only orders in this state').choices(TRANSFER_STATES))
  .option('--limit <n>', 'page size (1-1000)', '100')
  .option('--cursor <cursor>', 'the cursor printed after the previous page')
  .option('--json', 'print JSON')
  .action((o) => transferList(o));
dbOptions(transfers.command('resolve').description('decide an unknown order after checking with the rail: succeeded posts its hold as paid out, failed releases it').argument('<orderId>'))
  .addOption(new Option('--outcome <outcome>', 'what the rail did').choices(['succeeded', 'failed']).makeOptionMandatory())
  .requiredOption('--note <text>', 'why (1-1000 characters), kept with the order')
  .action((id, o) => transferResolve(id, o));

const ledger = program.command('ledger').description('the payout ledger');
dbOptions(ledger.command('audit').description('check the ledger\'s invariants (double entry, conservation, holds = open orders); exits 4 if any fails'))
  .option('--json', 'print JSON')
  .action((o) => ledgerAudit(o));

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
  .action(async (o) => (await import('./lab.ts')).labCommand(o));

program.addHelpText('after', `
Exit codes: 0 done, 1 failure (a refusal such as SOLD_OUT, or a bug), 2 usage or configuration,
3 not found, 4 an invariant failed (audit, ledger audit, claim proof), 5 serve cannot listen
(port in use), 69 a backend is unavailable (database, Redis).`);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const text = errorText(err);
  if (text !== '') process.stderr.write(`${text}\n`);
  process.exitCode = exitCodeFor(err);
}
