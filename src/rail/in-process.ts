// The simulated rail inside the allot process (no HTTP): what `npm start` uses on the embedded
// default. Same behaviour as the HTTP simulator, including a hung answer that the caller's timeout
// turns into RailUnknownError while the outcome still happened.
import { RailUnknownError, type PaymentRail, type RailLookup, type RailOrder, type RailOutcome } from '../ports/payment-rail.ts';
import { SimRailCore, SimRailError, type SimRailCoreOptions } from './sim-core.ts';

export interface InProcessSimRailOptions extends SimRailCoreOptions {
  /** how long execute waits for the answer before RailUnknownError (default 10000) */
  timeoutMs?: number;
}

export class InProcessSimRail implements PaymentRail {
  readonly name = 'simulated (in-process)';
  readonly core: SimRailCore;
  private readonly timeoutMs: number;

  constructor(opts: InProcessSimRailOptions = {}) {
    const { timeoutMs = 10_000, ...coreOpts } = opts;
    this.core = new SimRailCore(coreOpts);
    this.timeoutMs = timeoutMs;
  }

  async execute(order: RailOrder, signal?: AbortSignal): Promise<RailOutcome> {
    if (signal?.aborted) throw new RailUnknownError(`the wait for the rail was aborted (${String(signal.reason)}); the outcome is unknown`);
    // Sent before any wait, as over HTTP: a timeout or an abort from here on leaves the order decided.
    const answer = this.core.execute(order);
    answer.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    let hangTimer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RailUnknownError(`the rail did not answer within ${this.timeoutMs} ms; the outcome is unknown`)), this.timeoutMs);
      onAbort = () => reject(new RailUnknownError(`the wait for the rail was aborted (${String(signal?.reason)}); the outcome is unknown`));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    stopped.catch(() => {});
    try {
      const { outcome, hangMs } = await Promise.race([answer, stopped]);
      if (hangMs > 0) await Promise.race([new Promise((resolve) => (hangTimer = setTimeout(resolve, hangMs))), stopped]);
      return outcome;
    } catch (err) {
      if (err instanceof SimRailError && err.code === 'RAIL_CLOSED') throw new RailUnknownError(`${err.message}; the outcome is unknown`, { cause: err });
      throw err;
    } finally {
      clearTimeout(timer);
      clearTimeout(hangTimer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  async lookup(key: string, signal?: AbortSignal): Promise<RailLookup> {
    signal?.throwIfAborted();
    return this.core.lookup(key);
  }

  async close(): Promise<void> {
    this.core.close();
  }
}
