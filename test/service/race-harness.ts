// Shared by the multi-process race tests: an in-place shuffle and waiting for one IPC message
// of a given type from a worker (failing if the worker exits first).
import type { ChildProcess } from 'node:child_process';

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
