// The one registry of error codes: HTTP status, default message and what to do about it.
// docs/errors.md and the HTTP mapping are checked against this table by a test.

export const ERRORS = Object.freeze({
  VALIDATION_FAILED: { status: 400, message: 'The request is invalid.', hint: 'Fix what the message (and the "problems" list, when present) names and send it again; nothing was changed.' },
  UNAUTHORIZED: { status: 401, message: 'Missing or wrong bearer token.', hint: 'Send "Authorization: Bearer <token>" with the admin token printed at first start (or ALLOT_ADMIN_TOKEN).' },
  CAMPAIGN_NOT_FOUND: { status: 404, message: 'No campaign has this id.', hint: 'Check the id, or list campaigns with GET /v1/campaigns.' },
  PRIZE_NOT_FOUND: { status: 404, message: 'The campaign has no prize with this id.', hint: 'GET /v1/campaigns/:id lists its prizes.' },
  CLAIM_NOT_FOUND: { status: 404, message: 'No claim has this id.', hint: 'Check the id; claims of a user are listed by GET /v1/campaigns/:id/claims?userId=.' },
  NOT_FOUND: { status: 404, message: 'No such route.', hint: 'See /docs for the routes of this API.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'This path does not answer this method.', hint: 'Use one of the methods in the Allow header (also in error.allow); see /docs.' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request did not arrive in time; nothing was done.', hint: 'Send the headers and the body promptly (the limits are ALLOT_HTTP_HEADERS_TIMEOUT_MS and ALLOT_HTTP_REQUEST_TIMEOUT_MS), then send the request again.' },
  CAMPAIGN_EXISTS: { status: 409, message: 'A campaign with this id already exists.', hint: 'Choose another id, or omit it to have one generated.' },
  SOLD_OUT: { status: 409, message: 'No stock is left.', hint: 'Nothing was issued and the user\'s limit was not touched.' },
  USER_LIMIT_REACHED: { status: 409, message: 'The user already holds as many claims as the campaign allows.', hint: 'The limit is perUserLimit in total and perUserDailyLimit per UTC day.' },
  CAMPAIGN_NOT_ACTIVE: { status: 409, message: 'The campaign is not open for claims at this time.', hint: 'Claims are accepted between startsAt (inclusive) and endsAt (exclusive).' },
  SEED_NOT_REVEALED: { status: 409, message: 'The lottery\'s seed is still secret, so its draws cannot be recomputed yet.', hint: 'The seed is revealed when the campaign ends (endsAt) or by POST /v1/campaigns/:id/reveal; its SHA-256 (seedCommitment) was published at creation.' },
  IDEMPOTENCY_KEY_REQUIRED: { status: 400, message: 'This request needs an Idempotency-Key header.', hint: 'Send "Idempotency-Key: <1-255 printable ASCII characters>", a new one per withdrawal and the same one on every retry of it.' },
  ASSET_NOT_FOUND: { status: 404, message: 'No account has ever held this asset.', hint: 'An asset exists once it has been funded (POST /v1/fundings); check its spelling (asset codes are case-sensitive).' },
  ORDER_NOT_FOUND: { status: 404, message: 'No transfer order has this id.', hint: 'Check the id, or list orders with GET /v1/transfers?state=….' },
  INSUFFICIENT_FUNDS: { status: 409, message: 'The available balance is smaller than the amount.', hint: 'Nothing was debited. GET /v1/accounts/:userId/balances shows what is available (held funds of open transfer orders are not).' },
  FUNDING_EXISTS: { status: 409, message: 'This fundingId was already used with a different body.', hint: 'A fundingId is unique forever: the existing funding is in error.existing. Use a new id for a new funding.' },
  ORDER_EXISTS: { status: 409, message: 'This orderId was already used with different fields; nothing was executed.', hint: 'An orderId is unique forever: the existing order is in error.existing and the differing fields in error.differs. A new payment needs a new orderId.' },
  ORDER_NOT_UNKNOWN: { status: 409, message: 'Only an order whose outcome is unknown can be resolved.', hint: 'The order\'s state is in error.state; succeeded and failed orders are final, and received or executing ones are still being decided by the rail.' },
  IDEMPOTENCY_IN_PROGRESS: { status: 409, message: 'A request with this Idempotency-Key is still being processed.', hint: 'Retry after a short wait; the first request\'s outcome will then be replayed.' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'This Idempotency-Key was already used with a different request.', hint: 'Use a new key for a new request; a key stays bound to its first payload for at least 24 h.' },
  UNSAFE_STRATEGY: { status: 400, message: 'This strategy can oversell or issue twice (it reads, then writes, with no atomic guard, or guards with a lock of one process only); it is refused on this server.', hint: 'naive and local-mutex exist to show the failures in the race lab (allot lab); choose conditional, pessimistic, optimistic or redis-lock, or start the server with --allow-unsafe-strategies (ALLOT_ALLOW_UNSAFE_STRATEGIES=1) for a demo.' },
  UNAVAILABLE: { status: 503, message: 'A backend is unavailable; nothing was issued for this request.', hint: 'Retry after the Retry-After delay, with the same Idempotency-Key to be safe.' },
  INTERNAL: { status: 500, message: 'Internal error.', hint: 'This is a bug: please report it with the request id.' },
} as const);

export type ErrorCode = keyof typeof ERRORS;

/** A failure with a stable code from the registry; `details` travel into the error body. */
export class AllotError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].message, options);
    this.name = 'AllotError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }
}

export function isAllotError(err: unknown, code?: ErrorCode): err is AllotError {
  return err instanceof AllotError && (code === undefined || err.code === code);
}

/** One item of VALIDATION_FAILED's `problems`: where (`body/stock`, `body/prizes/0/id`,
 * `querystring/limit`: the request part, then a JSON pointer into it) and what is wrong; `field`
 * names the unknown or missing field when the path alone does not. */
export interface Problem {
  path: string;
  message: string;
  field?: string;
}

/** VALIDATION_FAILED listing its problems; the message joins theirs unless one is given. */
export function validationFailed(problems: Problem[], message?: string, details?: Record<string, unknown>): AllotError {
  return new AllotError('VALIDATION_FAILED', message ?? problems.map((p) => p.message).join('; '), { ...details, problems });
}

/** The JSON error body of API.md: {"error":{"code","message",...details}}. */
export function errorBody(code: ErrorCode, message?: string, details?: Record<string, unknown>): { error: Record<string, unknown> } {
  return { error: { ...(details ?? {}), code, message: message ?? ERRORS[code].message } };
}

/** The store rolled a transaction back for a reason a retry can cure (deadlock, serialization). */
export class TransientConflictError extends Error {
  constructor(cause: unknown) {
    super('transaction conflict (deadlock or serialization failure); retry it', { cause });
    this.name = 'TransientConflictError';
  }
}
