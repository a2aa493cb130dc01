// Runs the simulated rail (sim-main.ts) as a child process and waits until it listens: for tests
// and the race lab, where the rail must be a separate process that can be stopped or killed.
import { spawn, type ChildProcess } from 'node:child_process';
import { childModule } from '../adapters/system/child-module.ts';
import type { SimExecutionJson, SimRailConfig } from './sim-core.ts';

// sim-main.ts under tsx, or sim-main.js from dist/.
const MAIN = childModule(import.meta.url, './sim-main');
const READY = /^allot-rail listening on (http:\/\/\S+)$/;
const STDERR_KEPT = 8 * 1024;

export interface SpawnSimRailOptions {
  host?: string;
  /** 0 (the default) picks a free port */
  port?: number;
  latencyMs?: number;
  failureRate?: number;
  timeoutRate?: number;
  hangMs?: number;
  stateFile?: string;
  /** how long to wait for the ready line (default 15000) */
  readyTimeoutMs?: number;
}

export interface SpawnedSimRail {
  url: string;
  pid: number;
  child: ChildProcess;
  /** SIGTERM, then SIGKILL after 3 s; resolves once the process is gone. Idempotent. */
  stop(): Promise<void>;
  /** What the rail holds, by key (GET /v1/sim/executions): its payments and the requests it got. */
  executions(): Promise<Map<string, SimExecutionJson>>;
  /** Changes its behaviour at run time (POST /v1/sim/config); orders already received keep theirs. */
  configure(patch: Partial<SimRailConfig>): Promise<void>;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

export async function spawnSimRail(opts: SpawnSimRailOptions = {}): Promise<SpawnedSimRail> {
  const args = [...MAIN.execArgv, MAIN.path, '--port', String(opts.port ?? 0)];
  const flags: Array<[string, string | number | undefined]> = [
    ['--host', opts.host],
    ['--latency-ms', opts.latencyMs],
    ['--failure-rate', opts.failureRate],
    ['--timeout-rate', opts.timeoutRate],
    ['--hang-ms', opts.hangMs],
    ['--state-file', opts.stateFile],
  ];
  for (const [flag, value] of flags) if (value !== undefined) args.push(flag, String(value));

  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT);
  });

  const stop = async (): Promise<void> => {
    if (exited(child)) return;
    child.kill('SIGTERM');
    if (await waitExit(child, 3_000)) return;
    child.kill('SIGKILL');
    await waitExit(child, 10_000);
  };

  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let stdout = '';
      const cleanup = () => {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        child.off('error', onError);
      };
      const fail = (why: string) => {
        cleanup();
        reject(new Error(`the simulated rail ${why}; its stderr:\n${stderr.trim() || '(empty)'}`));
      };
      const onData = (chunk: string) => {
        stdout += chunk;
        const nl = stdout.indexOf('\n');
        if (nl < 0) return;
        const match = READY.exec(stdout.slice(0, nl));
        if (!match) return fail(`printed ${JSON.stringify(stdout.slice(0, nl))} instead of its ready line`);
        cleanup();
        resolve(match[1]!);
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        // stderr may still be draining: give it a moment
        setTimeout(() => fail(`exited (${signal ?? `code ${code}`}) before it was ready`), 50);
      const onError = (err: Error) => fail(`could not be started (${err.message})`);
      const timer = setTimeout(() => fail(`was not ready within ${readyTimeoutMs} ms`), readyTimeoutMs);
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', onData);
      child.once('exit', onExit);
      child.once('error', onError);
    });
    // keep the pipe drained after the ready line
    child.stdout!.resume();
    const executions = async (): Promise<Map<string, SimExecutionJson>> => {
      const res = await fetch(`${url}/v1/sim/executions`);
      if (!res.ok) throw new Error(`the simulated rail answered ${res.status} to GET /v1/sim/executions`);
      return new Map(((await res.json()) as { executions: SimExecutionJson[] }).executions.map((e) => [e.key, e]));
    };
    const configure = async (patch: Partial<SimRailConfig>): Promise<void> => {
      const res = await fetch(`${url}/v1/sim/config`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(patch) });
      if (!res.ok) throw new Error(`the simulated rail refused the config ${JSON.stringify(patch)}: ${res.status} ${await res.text()}`);
    };
    return { url, pid: child.pid!, child, stop, executions, configure };
  } catch (err) {
    await stop();
    throw err;
  }
}
