// Route schemas: one source for validation, serialization, OpenAPI and TypeScript types.
import { Type, type Static } from '@sinclair/typebox';
import { ID_PATTERN, MAX_STOCK } from '../core/campaign.ts';
import { ERRORS } from '../core/errors.ts';
import { IDEMPOTENCY_KEY_PATTERN } from '../core/idempotency.ts';
import { AMOUNT_STRING_PATTERN, ASSET_PATTERN, DESTINATION_PATTERN, TRANSFER_STATES } from '../core/payout.ts';

export const Id = Type.String({ pattern: ID_PATTERN, minLength: 1, maxLength: 128, description: '1-128 chars from [A-Za-z0-9_.:-]' });
const Count = Type.Integer({ minimum: 0, maximum: MAX_STOCK });
// Display text: any characters but control characters (PostgreSQL text cannot even hold NUL).
const Text = Type.String({ minLength: 1, maxLength: 200, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });
const Instant = Type.Union([Type.String({ maxLength: 64, description: 'ISO-8601 instant with a zone' }), Type.Null()]);

export const Prize = Type.Object(
  {
    id: Id,
    name: Text,
    stock: Count,
    weight: Type.Integer({ minimum: 0, maximum: MAX_STOCK }),
  },
  { additionalProperties: false },
);

export const CreateCampaignBody = Type.Object(
  {
    id: Type.Optional(Id),
    kind: Type.Optional(Type.Union([Type.Literal('coupon'), Type.Literal('lottery')], { default: 'coupon' })),
    name: Text,
    stock: Type.Optional(Count),
    prizes: Type.Optional(Type.Array(Prize, { maxItems: 100 })),
    missWeight: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_STOCK })),
    fallback: Type.Optional(Type.Union([Id, Type.Null()])),
    perUserLimit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_STOCK })),
    perUserDailyLimit: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: MAX_STOCK }), Type.Null()])),
    startsAt: Type.Optional(Instant),
    endsAt: Type.Optional(Instant),
    strategy: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' })),
  },
  { additionalProperties: false },
);
export type CreateCampaignBody = Static<typeof CreateCampaignBody>;

export const CampaignView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  name: Type.String(),
  strategy: Type.String(),
  stock: Type.Integer(),
  issued: Type.Integer(),
  remaining: Type.Integer(),
  perUserLimit: Type.Integer(),
  perUserDailyLimit: Type.Union([Type.Integer(), Type.Null()]),
  startsAt: Type.Union([Type.String(), Type.Null()]),
  endsAt: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  paused: Type.Boolean(),
  prizes: Type.Optional(Type.Array(Type.Object({ id: Type.String(), name: Type.String(), stock: Type.Integer(), issued: Type.Integer(), remaining: Type.Integer(), weight: Type.Integer() }), { description: 'lottery: each prize with its stock, issued and remaining' })),
  missWeight: Type.Optional(Type.Integer({ description: 'lottery: weight of drawing nothing' })),
  fallback: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'lottery: the consolation prize' })),
  seedCommitment: Type.Optional(Type.String({ description: 'lottery: SHA-256 (hex) of the secret seed of its draws' })),
});

export const ClaimView = Type.Object({
  id: Type.String(),
  campaignId: Type.String(),
  userId: Type.String(),
  prizeId: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
});

export const ErrorBody = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.Union(Object.keys(ERRORS).map((c) => Type.Literal(c))),
        message: Type.String(),
      },
      { additionalProperties: true },
    ),
  },
  { description: 'Every error: {"error":{"code","message",...details}}' },
);

export const ClaimBody = Type.Object({ userId: Id }, { additionalProperties: false });

export const ClaimHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ pattern: IDEMPOTENCY_KEY_PATTERN, description: '1-255 printable ASCII characters' })),
});

export const IdParams = Type.Object({ id: Id }, { additionalProperties: false });
export const ClaimIdParams = Type.Object({ claimId: Id }, { additionalProperties: false });

const Limit = Type.String({ pattern: '^[0-9]{1,4}$', description: 'page size, 1-1000 (default 100)' });
const Cursor = Type.String({ pattern: '^[A-Za-z0-9_-]{1,200}$', description: 'nextCursor of the previous page' });

export const PageQuery = Type.Object({ limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false });
export const ClaimsQuery = Type.Object({ userId: Type.Optional(Id), limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false });

export const AuditView = Type.Object({
  ok: Type.Boolean(),
  checks: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean() }, { additionalProperties: true })),
});

export const errorResponses = {
  '4xx': ErrorBody,
  '5xx': ErrorBody,
};

export const AddStockBody = Type.Object(
  {
    prizeId: Type.Optional(Id),
    add: Type.Integer({ minimum: 1, maximum: MAX_STOCK, description: 'units to add (1..2^31-1); the total stays <= 2^31-1' }),
  },
  { additionalProperties: false },
);

export const SeedRevealView = Type.Object({
  campaignId: Type.String(),
  seed: Type.String({ description: 'the secret seed (hex); its SHA-256 is seedCommitment' }),
  seedCommitment: Type.String(),
  revealedAt: Type.String(),
});

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
}, { description: 'see docs/lottery.md, "Verifiable draws"' });

// ---- payouts ------------------------------------------------------------------------------

/** An amount in a request: a whole number from 1 to 2^53-1, or a decimal string up to
 * "9223372036854775807" (the routes also run parseAmount, which gives the precise message). */
export const AmountIn = Type.Union([
  Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'minor units, 1..2^53-1 as a JSON number' }),
  Type.String({ pattern: AMOUNT_STRING_PATTERN, description: 'minor units as a decimal string, "1".."9223372036854775807" (needed above 2^53-1)' }),
], { description: 'an amount in minor units: a JSON number up to 2^53-1, or a decimal string up to 2^63-1' });
/** An amount in a response: a number while exact (<= 2^53-1), a decimal string above. */
const AmountOut = Type.Union([Type.Integer(), Type.String()], { description: 'minor units: a number up to 2^53-1, a decimal string above' });
export const Asset = Type.String({ pattern: ASSET_PATTERN, description: 'an asset code such as "CNY": 1-32 characters from [A-Z0-9_.-], starting with a letter or digit' });
const Destination = Type.String({ pattern: DESTINATION_PATTERN, description: 'where the rail pays to: 1-256 characters, no control characters' });
const Note = Type.String({ minLength: 1, maxLength: 1000, pattern: '^[^\\u0000-\\u001f\\u007f]+$', description: 'why: 1-1000 characters, no control characters' });
export const TransferState = Type.Union(TRANSFER_STATES.map((s) => Type.Literal(s)));

export const FundingBody = Type.Object({ fundingId: Id, userId: Id, asset: Asset, amount: AmountIn }, { additionalProperties: false });
export const WithdrawalBody = Type.Object({ userId: Id, asset: Asset, amount: AmountIn }, { additionalProperties: false });
export const TransferBody = Type.Object({ orderId: Id, userId: Id, asset: Asset, amount: AmountIn, destination: Destination }, { additionalProperties: false });
export const ResolveBody = Type.Object({
  outcome: Type.Union([Type.Literal('succeeded'), Type.Literal('failed')], { description: 'what the rail did, as learned by a person: succeeded posts the hold as paid out, failed releases it' }),
  note: Note,
}, { additionalProperties: false });

export const WithdrawalHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ pattern: IDEMPOTENCY_KEY_PATTERN, description: 'required: 1-255 printable ASCII characters, scoped per user (400 IDEMPOTENCY_KEY_REQUIRED without)' })),
});

export const UserIdParams = Type.Object({ userId: Id }, { additionalProperties: false });
export const OrderIdParams = Type.Object({ orderId: Id }, { additionalProperties: false });
export const TransfersQuery = Type.Object({ state: Type.Optional(TransferState), limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) }, { additionalProperties: false });

export const FundingView = Type.Object({ id: Type.String(), userId: Type.String(), asset: Type.String(), amount: AmountOut, createdAt: Type.String() });
export const WithdrawalView = Type.Object({ id: Type.String(), userId: Type.String(), asset: Type.String(), amount: AmountOut, state: Type.String(), createdAt: Type.String() });
export const TransferView = Type.Object({
  orderId: Type.String(),
  userId: Type.String(),
  asset: Type.String(),
  amount: AmountOut,
  destination: Type.String(),
  state: TransferState,
  attempts: Type.Integer({ description: 'times the order was sent to the rail (0 until it is; 1 in every normal run)' }),
  railRef: Type.Union([Type.String(), Type.Null()], { description: 'the rail\'s reference of a succeeded payment' }),
  reason: Type.Union([Type.String(), Type.Null()], { description: 'why it failed, or why its outcome is unknown' }),
  resolution: Type.Union([Type.Object({ outcome: Type.String(), note: Type.String(), resolvedAt: Type.String() }), Type.Null()], { description: 'an operator\'s decision on an unknown order' }),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export const BalanceView = Type.Object({ asset: Type.String(), available: AmountOut, held: AmountOut, paidOut: AmountOut });

export const LedgerAuditView = Type.Object({
  ok: Type.Boolean(),
  checks: Type.Array(Type.Object({ name: Type.String(), ok: Type.Boolean(), asset: Type.Optional(Type.String()) }, { additionalProperties: true })),
}, { description: 'the ledger\'s invariant checks (amounts in the details are decimal strings)' });
