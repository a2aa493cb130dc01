// Shared by the multi-process race tests: an in-place shuffle and waiting for one IPC message
// of a given type from a worker (failing if the worker exits first).
import { fork, type ChildProcess } from 'node:child_process';

export function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

export function once<T extends { type: string }>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: T) => {
      if (m.type === type) {
        child.off('message', onMsg);
        resolve(m);
      }
    };
    child.on('message', onMsg);
    child.once('exit', (code) => reject(new Error(`worker exited with ${code} before "${type}"`)));
  });
}

/** `count` race-worker processes (race-worker.ts, lottery-race-worker.ts), each opening its own
 * service (own pool, own lock client) once; they serve every race of a dialect. */
export async function startWorkers(worker: string, count: number, url: string, lockPrefix: string): Promise<ChildProcess[]> {
  const children = Array.from({ length: count }, () => fork(worker, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const ready = children.map((c) => once<{ type: string }>(c, 'ready'));
  const open = { type: 'open', url, lockPrefix, ...(process.env.REDIS_URL ? { locksUrl: process.env.REDIS_URL } : {}) };
  for (const c of children) c.send(open);
  await Promise.all(ready);
  return children;
}

/** Asks each worker to close its service and exit; kills one that has not exited after 5 s. */
export async function stopWorkers(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      c.send({ type: 'close' });
      const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }),
  );
}
