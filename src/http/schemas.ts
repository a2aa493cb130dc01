// Route schemas: one source for validation, serialization, OpenAPI and TypeScript types.
import { Type, type Static } from '@sinclair/typebox';
import { ID_PATTERN, MAX_STOCK } from '../core/campaign.ts';
import { ERRORS } from '../core/errors.ts';
import { IDEMPOTENCY_KEY_PATTERN } from '../core/idempotency.ts';

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
