// Route schemas: one source for validation, serialization, OpenAPI and TypeScript types.
// A schema shared by several routes carries an `$id`: it is registered once (SHARED_SCHEMAS,
// added by buildApp), referenced with ref(), and appears under that name in the OpenAPI
// document's components.schemas. Response schemas also serialize: an object schema without
// `additionalProperties: true` drops the properties it does not list, so a view's schema lists
// every property its view function returns, in the same order.
import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { ID_PATTERN, MAX_STOCK } from '../core/campaign.ts';
import { ERRORS, type ErrorCode } from '../core/errors.ts';
import { IDEMPOTENCY_KEY_PATTERN } from '../core/idempotency.ts';
import { AMOUNT_STRING_PATTERN, ASSET_PATTERN, DESTINATION_PATTERN, TRANSFER_STATES } from '../core/payout.ts';

/** A reference to a shared schema (`{"$ref": "<its $id>"}`), typed as the schema itself. */
export function ref<T extends TSchema>(schema: T): TUnsafe<Static<T>> {
  if (schema.$id === undefined) throw new Error('ref(): the schema has no $id');
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id));
}

/** A string from a fixed list: `{"type":"string","enum":[…]}`, which code generators turn into
 * a union of literals (a TypeBox union of literals would be an anyOf of one-value enums). */
function StringEnum<T extends readonly string[]>(values: T, options: { description?: string; $id?: string } = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export const Id = Type.String({ pattern: ID_PATTERN, minLength: 1, maxLength: 128, description: '1-128 chars from [A-Za-z0-9_.:-]' });
const Count = Type.Integer({ minimum: 0, maximum: MAX_STOCK });
// Display text: any characters but control characters (PostgreSQL text cannot even hold NUL).
const Text = Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
const Instant = Type.Union([Type.String({ maxLength: 64, description: 'ISO-8601 instant with a zone' }), Type.Null()]);
const Timestamp = Type.String({ description: 'ISO-8601 instant in UTC, millisecond precision' });
const NextCursor = Type.Union([Type.String(), Type.Null()], { description: 'pass it as ?cursor= for the next page; null on the last page' });

// ---- errors -------------------------------------------------------------------------------

const ALL_CODES = Object.keys(ERRORS) as ErrorCode[];

/** One line per code: what it means and what to do (both from ERRORS, src/core/errors.ts). */
function describeCodes(codes: readonly ErrorCode[], withStatus: boolean): string {
  return codes.map((c) => `- \`${c}\`${withStatus ? ` (${ERRORS[c].status})` : ''}: ${ERRORS[c].message} ${ERRORS[c].hint}`).join('\n');
}

export const ErrorCodeSchema = StringEnum(ALL_CODES, {
  $id: 'ErrorCode',
  description: `Every error code, with its HTTP status:\n\n${describeCodes(ALL_CODES, true)}`,
});

export const Problem = Type.Object({
  path: Type.String({ description: 'the request part, then a JSON pointer into it: body/stock, body/prizes/0/id, querystring/limit' }),
  message: Type.String(),
  field: Type.Optional(Type.String({ description: 'the unknown or missing field, when the path alone does not name it' })),
}, { $id: 'Problem', description: 'One thing wrong with a request (in error.problems of VALIDATION_FAILED)' });

const ERROR_DETAILS = 'Other properties carry details of some codes: problems, field and limitBytes (VALIDATION_FAILED), the id looked for (id, orderId, asset: the *_NOT_FOUND codes), existing and differs (FUNDING_EXISTS, ORDER_EXISTS), state (ORDER_NOT_UNKNOWN), seedCommitment (SEED_NOT_REVEALED), allow (METHOD_NOT_ALLOWED), outcome and backends (UNAVAILABLE), requestId (INTERNAL).';

/** An error body whose code is one of `codes`. The error object keeps every property it is
 * given (additionalProperties), so the details of each code are never stripped. */
function errorBodySchema(codes: readonly ErrorCode[], options: { $id?: string; description?: string } = {}) {
  const problems = Type.Optional(Type.Array(ref(Problem), { description: 'VALIDATION_FAILED: each problem of the request' }));
  return Type.Object({
    error: Type.Object({
      code: codes === ALL_CODES ? ref(ErrorCodeSchema) : StringEnum(codes),
      message: Type.String({ description: 'what went wrong and what to do, for a person' }),
      ...(codes.includes('VALIDATION_FAILED') ? { problems } : {}),
    }, { additionalProperties: true, description: ERROR_DETAILS }),
  }, options);
}

export const ErrorBody = errorBodySchema(ALL_CODES, { $id: 'Error', description: 'Every error: {"error":{"code","message",...details}}' });

// ---- responses and their headers ------------------------------------------------------------

const RESPONSE_HEADERS = {
  requestId: { 'X-Request-Id': { type: 'string', pattern: ID_PATTERN, description: 'The request id in the logs: the X-Request-Id sent (1-128 chars from [A-Za-z0-9_.:-]), or a generated one.' } },
  replayed: { 'Idempotent-Replayed': { type: 'string', enum: ['true'], description: 'Present (true) when this is the stored answer of an earlier request with the same key or id, replayed; nothing was done again.' } },
  retryAfter: { 'Retry-After': { type: 'integer', minimum: 0, description: 'Seconds to wait before retrying.' } },
  wwwAuthenticate: { 'WWW-Authenticate': { type: 'string', description: 'Bearer' } },
} as const;

type HeaderName = keyof typeof RESPONSE_HEADERS;

/** A response in fastify's `content` form, which @fastify/swagger turns into an OpenAPI response
 * with this description and these headers (fastify serializes with the schema, by media type). */
export interface Described<T extends TSchema> {
  description: string;
  headers: Record<string, unknown>;
  content: { 'application/json': { schema: T } };
}

function headersOf(names: readonly HeaderName[]): Record<string, unknown> {
  return Object.assign({}, RESPONSE_HEADERS.requestId, ...names.map((n) => RESPONSE_HEADERS[n]));
}

/** A JSON success response. `replayed`: it may be the replay of an earlier request. */
export function ok<T extends TSchema>(schema: T, description: string, opts: { replayed?: boolean } = {}): Described<T> {
  return { description, headers: headersOf(opts.replayed ? ['replayed'] : []), content: { 'application/json': { schema } } };
}

/** A text/plain success response (the Prometheus exposition format of /metrics). */
export function text(description: string): { description: string; headers: Record<string, unknown>; content: { 'text/plain': { schema: TSchema } } } {
  return { description, headers: headersOf([]), content: { 'text/plain': { schema: Type.String() } } };
}

/** Codes every /v1 operation can answer: bad input, a wrong token, a backend down (or this
 * instance shutting down), a bug. */
const V1_CODES: readonly ErrorCode[] = ['VALIDATION_FAILED', 'UNAUTHORIZED', 'UNAVAILABLE', 'INTERNAL'];

/** Keyed by status, and `default`: the explicit key keeps the type's keys wider than the
 * success statuses when spread into a route's `response` (a spread drops index signatures),
 * so `reply.code(out.status)` takes any status. */
type ErrorResponses = { [status: number]: Described<ReturnType<typeof errorBodySchema>>; default: Described<TUnsafe<Static<typeof ErrorBody>>> };

/** The error responses of an operation, one per status, each listing its codes (statuses and
 * meanings come from ERRORS); plus `default` for anything else (405, ...). `replayed`: the
 * statuses whose answer may be a replay (Idempotent-Replayed). */
export function errors(codes: readonly ErrorCode[], opts: { v1?: boolean; replayed?: readonly number[] } = {}): ErrorResponses {
  const all = [...new Set([...(opts.v1 === false ? [] : V1_CODES), ...codes])];
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of all) byStatus.set(ERRORS[code].status, [...(byStatus.get(ERRORS[code].status) ?? []), code]);
  const out: Record<number, Described<ReturnType<typeof errorBodySchema>>> = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const headers: HeaderName[] = [];
    if (status === 503) headers.push('retryAfter');
    if (status === 401) headers.push('wwwAuthenticate');
    if (opts.replayed?.includes(status)) headers.push('replayed');
    out[status] = {
      description: `${list.length === 1 ? 'Error' : 'One of these errors'} (error.code):\n\n${describeCodes(list, false)}`,
      headers: headersOf(headers),
      content: { 'application/json': { schema: errorBodySchema(list) } },
    };
  }
  const other = 'Any other error (such as 405 METHOD_NOT_ALLOWED); error.code says which (see ErrorCode).';
  return { ...out, default: { description: other, headers: headersOf([]), content: { 'application/json': { schema: ref(ErrorBody) } } } };
}

// ---- request parameters -------------------------------------------------------------------------

export const IdParams = Type.Object({ id: Id }, { additionalProperties: false });
export const ClaimIdParams = Type.Object({ claimId: Id }, { additionalProperties: false });
export const UserIdParams = Type.Object({ userId: Id }, { additionalProperties: false });
export const OrderIdParams = Type.Object({ orderId: Id }, { additionalProperties: false });

// A query string arrives as text and the service never coerces types: integerQuery() (routes/
// paging.ts) turns a digits-only `limit` into a number before validation, anything else stays
// a string and fails the integer schema.
const Limit = Type.Integer({ minimum: 1, maximum: 1000, description: 'page size, 1-1000 (default 100)' });
const Cursor = Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$', description: 'nextCursor of the previous page' });

export const PageQuery = Type.Object({ limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false });
export const ClaimsQuery = Type.Object({ userId: Type.Optional(Id), limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false });

const IDEMPOTENCY_KEY = Type.String({ pattern: IDEMPOTENCY_KEY_PATTERN, description: '1-255 printable ASCII characters' });
export const ClaimHeaders = Type.Object({ 'idempotency-key': Type.Optional(IDEMPOTENCY_KEY) });
// Optional to the schema, so that the service answers its own 400 IDEMPOTENCY_KEY_REQUIRED;
// the document marks it required (idempotencyKeyDoc).
export const WithdrawalHeaders = Type.Object({ 'idempotency-key': Type.Optional(IDEMPOTENCY_KEY) });

/** The Idempotency-Key header as the OpenAPI document shows it (a route's `swaggerTransform`):
 * spelled as in API.md, and required where the service requires it. */
export function idempotencyKeyDoc(description: string, required: boolean): TSchema {
  return Type.Object({ 'Idempotency-Key': required ? { ...IDEMPOTENCY_KEY, description } : Type.Optional({ ...IDEMPOTENCY_KEY, description }) });
}

// ---- campaigns and claims ------------------------------------------------------------------------

export const Prize = Type.Object(
  {
    id: Id,
    name: Text,
    stock: Count,
    weight: Type.Integer({ minimum: 0, maximum: MAX_STOCK }),
  },
  { additionalProperties: false, $id: 'PrizeInput', description: 'A lottery prize: its own stock, and its weight in the draw' },
);

export const CreateCampaignBody = Type.Object(
  {
    id: Type.Optional(Id),
    // No `default` keyword: generated clients would make the field required (openapi-typescript
    // does); the route applies the default.
    kind: Type.Optional(StringEnum(['coupon', 'lottery'] as const, { description: 'coupon (the default) or lottery' })),
    name: Text,
    stock: Type.Optional(Count),
    prizes: Type.Optional(Type.Array(ref(Prize), { maxItems: 100 })),
    missWeight: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_STOCK })),
    fallback: Type.Optional(Type.Union([Id, Type.Null()])),
    perUserLimit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_STOCK })),
    perUserDailyLimit: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: MAX_STOCK }), Type.Null()])),
    startsAt: Type.Optional(Instant),
    endsAt: Type.Optional(Instant),
    strategy: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' })),
  },
  { additionalProperties: false, $id: 'CreateCampaignRequest', description: 'A coupon campaign gives stock; a lottery gives prizes (and optionally missWeight and fallback)' },
);
export type CreateCampaignBody = Static<typeof CreateCampaignBody>;

export const CampaignPrize = Type.Object({
  id: Type.String(),
  name: Type.String(),
  stock: Type.Integer(),
  issued: Type.Integer(),
  remaining: Type.Integer(),
  weight: Type.Integer(),
}, { $id: 'CampaignPrize', description: 'A lottery prize with its stock, issued and remaining' });

export const CampaignView = Type.Object({
  id: Type.String(),
  kind: StringEnum(['coupon', 'lottery'] as const),
  name: Type.String(),
  strategy: Type.String(),
  stock: Type.Integer(),
  issued: Type.Integer(),
  remaining: Type.Integer(),
  perUserLimit: Type.Integer(),
  perUserDailyLimit: Type.Union([Type.Integer(), Type.Null()]),
  startsAt: Type.Union([Type.String(), Type.Null()]),
  endsAt: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  paused: Type.Boolean(),
  prizes: Type.Optional(Type.Array(ref(CampaignPrize), { description: 'lottery: each prize with its stock, issued and remaining' })),
  missWeight: Type.Optional(Type.Integer({ description: 'lottery: weight of drawing nothing' })),
  fallback: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'lottery: the consolation prize' })),
  seedCommitment: Type.Optional(Type.String({ description: 'lottery: SHA-256 (hex) of the secret seed of its draws' })),
}, { $id: 'Campaign' });

export const CampaignPage = Type.Object({ campaigns: Type.Array(ref(CampaignView)), nextCursor: NextCursor }, { $id: 'CampaignPage' });

export const ClaimView = Type.Object({
  id: Type.String(),
  campaignId: Type.String(),
  userId: Type.String(),
  prizeId: Type.Union([Type.String(), Type.Null()], { description: 'lottery: the prize won, null for a miss (and always null for a coupon)' }),
  createdAt: Timestamp,
}, { $id: 'Claim' });

export const ClaimPage = Type.Object({ claims: Type.Array(ref(ClaimView)), nextCursor: NextCursor }, { $id: 'ClaimPage' });

export const ClaimBody = Type.Object({ userId: Id }, { additionalProperties: false, $id: 'ClaimRequest' });

export const AuditView = Type.Object({
  ok: Type.Boolean(),
  checks: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean() }, { additionalProperties: true })),
}, { $id: 'AuditReport', description: 'The invariant checks of a campaign; ok is true when every check is' });

export const AddStockBody = Type.Object(
  {
    prizeId: Type.Optional(Id),
    add: Type.Integer({ minimum: 1, maximum: MAX_STOCK, description: 'units to add (1..2^31-1); the total stays <= 2^31-1' }),
  },
  { additionalProperties: false, $id: 'AddStockRequest' },
);

export const SeedRevealView = Type.Object({
  campaignId: Type.String(),
  seed: Type.String({ description: 'the secret seed (hex); its SHA-256 is seedCommitment' }),
  seedCommitment: Type.String(),
  revealedAt: Timestamp,
}, { $id: 'SeedReveal' });

const Candidate = Type.Object({ prizeId: Type.Union([Type.String(), Type.Null()], { description: 'null: the miss' }), weight: Type.Integer() });

export const DrawProofView = Type.Object({
  campaignId: Type.String(),
  claimId: Type.String(),
  seedCommitment: Type.String(),
  seed: Type.Union([Type.String(), Type.Null()]),
  attempts: Type.Array(
    Type.Object({
      attempt: Type.Integer(),
      candidates: Type.Array(Candidate),
      value: Type.Number({ description: 'HMAC-SHA256(seed, "claimId:attempt"), first 52 bits / 2^52' }),
      hmac: Type.String(),
      picked: Type.Union([Type.String(), Type.Null()]),
      lostRace: Type.Optional(Type.Boolean()),
    }),
  ),
  prizeId: Type.Union([Type.String(), Type.Null()]),
  fallback: Type.Boolean(),
}, { $id: 'DrawProof', description: 'see docs/lottery.md, "Verifiable draws"' });

// ---- payouts ------------------------------------------------------------------------------

/** An amount in a request: a whole number from 1 to 2^53-1, or a decimal string up to
 * "9223372036854775807" (the routes also run parseAmount, which gives the precise message). */
export const AmountIn = Type.Union([
  Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'minor units, 1..2^53-1 as a JSON number' }),
  Type.String({ pattern: AMOUNT_STRING_PATTERN, description: 'minor units as a decimal string, "1".."9223372036854775807" (needed above 2^53-1)' }),
], { $id: 'AmountInput', description: 'an amount in minor units: a JSON number up to 2^53-1, or a decimal string up to 2^63-1' });
/** An amount in a response: a number while exact (<= 2^53-1), a decimal string above. */
export const AmountOut = Type.Union([Type.Integer(), Type.String()], { $id: 'Amount', description: 'minor units: a number up to 2^53-1, a decimal string above' });
export const Asset = Type.String({ pattern: ASSET_PATTERN, description: 'an asset code such as "CNY": 1-32 characters from [A-Z0-9_.-], starting with a letter or digit' });
const Destination = Type.String({ pattern: DESTINATION_PATTERN, description: 'where the rail pays to: 1-256 characters, no control characters' });
const Note = Type.String({ minLength: 1, maxLength: 1000, pattern: '^[^\\u0000-\\u001f\\u007f]+$', description: 'why: 1-1000 characters, no control characters' });
export const TransferState = StringEnum(TRANSFER_STATES, { $id: 'TransferState', description: 'received -> executing -> succeeded | failed | unknown (unknown waits for a person: POST /v1/transfers/{orderId}/resolve)' });

export const FundingBody = Type.Object({ fundingId: Id, userId: Id, asset: Asset, amount: ref(AmountIn) }, { additionalProperties: false, $id: 'FundingRequest' });
export const WithdrawalBody = Type.Object({ userId: Id, asset: Asset, amount: ref(AmountIn) }, { additionalProperties: false, $id: 'WithdrawalRequest' });
export const TransferBody = Type.Object({ orderId: Id, userId: Id, asset: Asset, amount: ref(AmountIn), destination: Destination }, { additionalProperties: false, $id: 'TransferRequest' });
export const ResolveBody = Type.Object({
  outcome: StringEnum(['succeeded', 'failed'] as const, { description: 'what the rail did, as learned by a person: succeeded posts the hold as paid out, failed releases it' }),
  note: Note,
}, { additionalProperties: false, $id: 'ResolveRequest' });

export const TransfersQuery = Type.Object({ state: Type.Optional(ref(TransferState)), limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false });

export const FundingView = Type.Object({ id: Type.String(), userId: Type.String(), asset: Type.String(), amount: ref(AmountOut), createdAt: Timestamp }, { $id: 'Funding' });
export const WithdrawalView = Type.Object({ id: Type.String(), userId: Type.String(), asset: Type.String(), amount: ref(AmountOut), state: StringEnum(['succeeded'] as const), createdAt: Timestamp }, { $id: 'Withdrawal' });
export const TransferView = Type.Object({
  orderId: Type.String(),
  userId: Type.String(),
  asset: Type.String(),
  amount: ref(AmountOut),
  destination: Type.String(),
  state: ref(TransferState),
  attempts: Type.Integer({ description: 'times the order was sent to the rail (0 until it is; 1 in every normal run)' }),
  railRef: Type.Union([Type.String(), Type.Null()], { description: 'the rail\'s reference of a succeeded payment' }),
  reason: Type.Union([Type.String(), Type.Null()], { description: 'why it failed, or why its outcome is unknown' }),
  resolution: Type.Union([Type.Object({ outcome: StringEnum(['succeeded', 'failed'] as const), note: Type.String(), resolvedAt: Timestamp }), Type.Null()], { description: 'an operator\'s decision on an unknown order' }),
  createdAt: Timestamp,
  updatedAt: Timestamp,
}, { $id: 'Transfer' });
export const TransferPage = Type.Object({ transfers: Type.Array(ref(TransferView)), nextCursor: NextCursor }, { $id: 'TransferPage' });
export const BalanceView = Type.Object({ asset: Type.String(), available: ref(AmountOut), held: ref(AmountOut), paidOut: ref(AmountOut) }, { $id: 'Balance' });

export const LedgerAuditView = Type.Object({
  ok: Type.Boolean(),
  checks: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean(), asset: Type.Optional(Type.String()) }, { additionalProperties: true })),
}, { $id: 'LedgerAuditReport', description: 'the ledger\'s invariant checks (amounts in the details are decimal strings)' });

// ---- operations -----------------------------------------------------------------------------------

// These bodies had no schema before; additionalProperties keeps whatever the handler adds.
export const Health = Type.Object({ status: StringEnum(['ok'] as const) }, { additionalProperties: true, $id: 'Health' });
export const Readiness = Type.Object({
  status: StringEnum(['ready', 'degraded'] as const, { description: 'ready: every backend this instance uses answers; degraded: the database answers and the lock backend does not (LOCKS_DOWN=degrade: lock-based strategies run with the database guard only, still exactly-once)' }),
  backends: Type.Object({
    database: StringEnum(['ok'] as const),
    locks: StringEnum(['ok', 'down', 'in-process', 'none'] as const, { description: 'ok: the lock backend (LOCKS_URL, or the advisory locks of the service\'s PostgreSQL) answers; down: it does not (its circuit breaker is open); in-process: embedded PGlite, one process, no shared backend needed; none: no lock backend (MariaDB with no LOCKS_URL): lock-based strategies are refused' }),
  }, { additionalProperties: true }),
  dialect: Type.String({ description: 'the database: postgres, mysql or pglite' }),
}, { additionalProperties: true, $id: 'Readiness' });

/** Every schema with an $id, in an order where each comes after those it references. */
export const SHARED_SCHEMAS: readonly TSchema[] = [
  ErrorCodeSchema, Problem, ErrorBody,
  Prize, CreateCampaignBody, CampaignPrize, CampaignView, CampaignPage, ClaimView, ClaimPage, ClaimBody, AuditView, AddStockBody, SeedRevealView, DrawProofView,
  AmountIn, AmountOut, TransferState, FundingBody, WithdrawalBody, TransferBody, ResolveBody, FundingView, WithdrawalView, TransferView, TransferPage, BalanceView, LedgerAuditView,
  Health, Readiness,
];
