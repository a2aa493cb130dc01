// One operation sent to every Redlock node in parallel, each bounded by a short per-node timeout;
// settles as soon as the caller's rule decides the outcome (the stragglers finish in the background).
import { LockBackendError } from '../errors.ts';
import type { NodeCause } from './errors.ts';

export type NodeOutcome<T> =
  | { state: 'ok'; value: T }
  | { state: 'error'; error: unknown }
  /** no reply yet: the outcome was decided without it, or the per-node timeout passed */
  | { state: 'pending'; late: Promise<T> };

export interface QuorumRound<T> {
  outcomes: NodeOutcome<T>[];
  /** true when the per-node timeout fired before the rule decided */
  timedOut: boolean;
}

/**
 * Runs op on every node. `decided` sees the outcomes so far after each reply; the round settles
 * when it returns true, when every node replied, or at timeoutMs (pending nodes stay 'pending').
 */
export function quorumRound<T>(count: number, op: (i: number) => Promise<T>, decided: (outcomes: readonly NodeOutcome<T>[]) => boolean, timeoutMs: number): Promise<QuorumRound<T>> {
  return new Promise((resolve) => {
    const outcomes: NodeOutcome<T>[] = [];
    let left = count;
    let done = false;
    const finish = (timedOut: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ outcomes: outcomes.slice(), timedOut });
    };
    // On expiry, let one I/O phase run first: timers run before the poll phase, so after a busy
    // event loop a reply already waiting in the socket would otherwise count as a timeout.
    const timer = setTimeout(() => setImmediate(() => finish(true)), timeoutMs);
    for (let i = 0; i < count; i++) {
      let late: Promise<T>;
      try {
        late = op(i);
      } catch (error) {
        late = Promise.reject(error);
      }
      outcomes.push({ state: 'pending', late });
      late.then(
        (value) => settle(i, { state: 'ok', value }),
        (error: unknown) => settle(i, { state: 'error', error }),
      );
    }
    function settle(i: number, o: NodeOutcome<T>) {
      if (done) return;
      outcomes[i] = o;
      left--;
      if (left === 0 || decided(outcomes)) finish(false);
    }
    if (count === 0) finish(false);
  });
}

/** The message of a node's error, looking through the library's own wrapper. */
export function reasonOf(error: unknown): string {
  const inner = error instanceof LockBackendError && error.cause !== undefined ? error.cause : error;
  return inner instanceof Error ? inner.message || inner.name : String(inner);
}

export function causeOf<T>(node: string, o: NodeOutcome<T>, timeoutMs: number, describeOk: (value: T) => string): NodeCause {
  if (o.state === 'ok') return { node, reason: describeOk(o.value) };
  if (o.state === 'error') return { node, reason: reasonOf(o.error), error: o.error };
  return { node, reason: `no reply within ${timeoutMs} ms`, error: new Error(`no reply within ${timeoutMs} ms`) };
}
