// The executor port of transfer orders: the external side effect (a bank, a chain, a wallet
// provider). allot calls `execute` at most once per order with a rail key derived from the
// order id, which the rail uses as its own idempotency key; after a crash it asks `lookup`
// instead of sending blindly. docs/payouts.md ("The rail protocol") documents the HTTP form.

/** What a rail says it did under a key. `failed` is definite: nothing was (or ever will be) paid. */
export type RailOutcome =
  | { status: 'succeeded'; railRef: string }
  | { status: 'failed'; reason: string };

/** What a lookup can learn: an outcome, `pending` (received, not finished), or `not_found`
 * (the rail never received this key, so it was never executed). */
export type RailLookup = RailOutcome | { status: 'pending' } | { status: 'not_found' };

export interface RailOrder {
  /** the rail's idempotency key, derived from the order id: a repeat never executes twice */
  key: string;
  orderId: string;
  userId: string;
  asset: string;
  /** minor units, 64-bit */
  amount: bigint;
  destination: string;
}

/** The outcome could not be learned: a timeout, a connection lost after the request was sent,
 * an answer that cannot be parsed. The order must stop and wait for a person (`unknown`). */
export class RailUnknownError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RailUnknownError';
  }
}

export interface PaymentRail {
  /** a short name for the banner and logs: "simulated (in-process)", "http://…" */
  readonly name: string;
  /** Executes the order once per key (a repeat answers the first outcome). Throws
   * RailUnknownError when the outcome cannot be learned; `signal` aborts the wait (the outcome
   * is then unknown too). */
  execute(order: RailOrder, signal?: AbortSignal): Promise<RailOutcome>;
  /** What the rail did under this key. Throws when the rail cannot be asked (unreachable). */
  lookup(key: string, signal?: AbortSignal): Promise<RailLookup>;
  close(): Promise<void>;
}

/** The rail key of an order: the order id itself under a fixed prefix, the same for every
 * attempt, so a late first request and a recovery's request are one execution at the rail. */
export function railKey(orderId: string): string {
  return `allot:${orderId}`;
}
