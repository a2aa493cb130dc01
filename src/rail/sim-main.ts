// The simulated rail as its own process, for the race lab, tests and local runs:
//
//   node --import tsx src/rail/sim-main.ts [--host 127.0.0.1] [--port 0] [--latency-ms 5]
//     [--failure-rate 0] [--timeout-rate 0] [--hang-ms 60000] [--state-file PATH]
//
// Prints exactly one line to stdout once it listens, `allot-rail listening on http://HOST:PORT`,
// and exits 0 on SIGTERM or SIGINT. With --state-file, finished outcomes survive a restart.
import { parseArgs } from 'node:util';
import { startSimRail } from './sim-server.ts';

const USAGE =
  'usage: sim-main.ts [--host H] [--port N] [--latency-ms N] [--failure-rate R] [--timeout-rate R] [--hang-ms N] [--state-file PATH]';

function number(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      'latency-ms': { type: 'string' },
      'failure-rate': { type: 'string' },
      'timeout-rate': { type: 'string' },
      'hang-ms': { type: 'string' },
      'state-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const port = number('port', values.port, 0, 65535);
  if (port !== undefined && !Number.isInteger(port)) throw new Error('--port must be an integer');
  const rail = await startSimRail({
    host: values.host,
    port,
    latencyMs: number('latency-ms', values['latency-ms'], 0, 2_147_483_647),
    failureRate: number('failure-rate', values['failure-rate'], 0, 1),
    timeoutRate: number('timeout-rate', values['timeout-rate'], 0, 1),
    hangMs: number('hang-ms', values['hang-ms'], 0, 2_147_483_647),
    stateFile: values['state-file'],
  });
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(signal === 'SIGINT' ? 130 : 143); // a second signal: no more waiting
    stopping = true;
    rail.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`allot-rail listening on ${rail.url}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`allot-rail: ${(err as Error)?.message ?? String(err)}\n${USAGE}\n`);
  process.exit(2);
});
