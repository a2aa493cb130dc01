// Payouts: fundings, balances, withdrawals (Idempotency-Key required), transfer orders (the
// order id is their idempotency key, forever), an operator's resolution of an unknown order,
// and the ledger audit. Thin over service.payouts; amounts go in through parseAmount (bigint)
// and come out as numbers up to 2^53-1, decimal strings above.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ID_REGEX } from '../../core/campaign.ts';
import { AllotError, isAllotError } from '../../core/errors.ts';
import { amountJson, parseAmount, transferView, type TransferView as TransferViewT, type WithdrawalView as WithdrawalViewT } from '../../core/payout.ts';
import type { AllotService } from '../../service/service.ts';
import {
  BalanceView, FundingBody, FundingView, LedgerAuditView, OrderIdParams, ResolveBody, TransferBody, TransferPage, TransferView, TransfersQuery,
  UserIdParams, WithdrawalBody, WithdrawalHeaders, WithdrawalView, errors, idempotencyKeyDoc, ok, ref,
} from '../schemas.ts';
import { integerQuery, pageLimit } from './paging.ts';

const TAGS = ['payouts'];
const KEY_DOC = idempotencyKeyDoc('Required (400 IDEMPOTENCY_KEY_REQUIRED without): a new key per withdrawal, the same key on every retry of it. Scoped per user, kept at least 24 h.', true);
const Transfer = Type.Object({ transfer: ref(TransferView) });

/** The amount of a body, as parseAmount judges it: its messages are more precise than the
 * schema's ("send it as a decimal string" for a number past 2^53-1, which JSON.parse has
 * already rounded), so it runs before the schema. A missing amount is the schema's to report. */
async function amountFirst(req: FastifyRequest): Promise<void> {
  const body = req.body as unknown;
  if (body === null || typeof body !== 'object' || Array.isArray(body) || !Object.hasOwn(body, 'amount')) return;
  amountOf((body as { amount: unknown }).amount);
}

function amountOf(value: unknown): bigint {
  try {
    return parseAmount(value, 'amount');
  } catch (err) {
    if (!isAllotError(err, 'VALIDATION_FAILED')) throw err;
    throw new AllotError('VALIDATION_FAILED', err.message, { field: 'amount', problems: [{ path: 'body/amount', message: err.message }] });
  }
}

function replayed(reply: FastifyReply, yes: boolean): void {
  if (yes) reply.header('idempotent-replayed', 'true');
}

/** The last order id of a page, as the opaque cursor the service returned. */
function decodeCursor(cursor: string | undefined): string | null {
  if (cursor === undefined) return null;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!ID_REGEX.test(id)) throw new AllotError('VALIDATION_FAILED', 'querystring/cursor: not a cursor this server returned', { field: 'cursor' });
  return id;
}

/** Audit details as JSON: a bigint (should one ever appear) becomes its decimal text. */
function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') return amountJson(value);
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  return value;
}

export const payoutRoutes: FastifyPluginAsync<{ service: AllotService }> = async (app, { service }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const payouts = service.payouts;

  r.post('/fundings', {
    schema: {
      operationId: 'createFunding', tags: TAGS, summary: 'Credit a user (admin): once per fundingId, forever',
      description: 'The same fundingId with the same body replays (200, Idempotent-Replayed: true); with a different body, 409 FUNDING_EXISTS with the existing funding in error.existing.',
      body: ref(FundingBody),
      response: {
        201: ok(Type.Object({ funding: ref(FundingView) }), 'The funding, credited'),
        200: ok(Type.Object({ funding: ref(FundingView) }), 'The same funding again: the existing one, nothing credited', { replayed: true }),
        ...errors(['FUNDING_EXISTS']),
      },
    },
    preValidation: amountFirst,
  }, async (req, reply) => {
    const { fundingId, userId, asset } = req.body;
    const out = await payouts.fund({ fundingId, userId, asset, amount: amountOf(req.body.amount) });
    replayed(reply, out.replayed);
    req.log.info({ fundingId, userId, asset, status: out.status }, 'funding');
    return reply.code(out.status).send(out.body);
  });

  r.get('/accounts/:userId/balances', {
    schema: {
      operationId: 'getBalances', tags: TAGS, summary: 'A user\'s balances per asset: available, held (open transfer orders), paid out',
      params: UserIdParams,
      response: { 200: ok(Type.Object({ balances: Type.Array(ref(BalanceView)) }), 'One balance per asset the user has held (none: an empty list)'), ...errors([]) },
    },
  }, async (req) => ({ balances: await payouts.balanceViews(req.params.userId) }));

  r.post('/withdrawals', {
    schema: {
      operationId: 'createWithdrawal', tags: TAGS, summary: 'Debit a user at most once per Idempotency-Key (required; scoped per user)',
      description: 'Never below zero: 409 INSUFFICIENT_FUNDS when the available balance is short. A repeat with the same key and body replays the first answer (Idempotent-Replayed: true); the same key with another body is 422 IDEMPOTENCY_KEY_REUSED.',
      headers: WithdrawalHeaders, body: ref(WithdrawalBody),
      response: {
        201: ok(Type.Object({ withdrawal: ref(WithdrawalView) }), 'The withdrawal, debited (or its replay)', { replayed: true }),
        ...errors(['IDEMPOTENCY_KEY_REQUIRED', 'ASSET_NOT_FOUND', 'INSUFFICIENT_FUNDS', 'IDEMPOTENCY_IN_PROGRESS', 'IDEMPOTENCY_KEY_REUSED'], { replayed: [404, 409] }),
      },
    },
    config: { swaggerTransform: ({ schema, url }) => ({ schema: { ...schema, headers: KEY_DOC }, url }) },
    preValidation: amountFirst,
  }, async (req, reply) => {
    const { userId, asset } = req.body;
    const out = await payouts.withdraw(userId, asset, amountOf(req.body.amount), req.headers['idempotency-key'] ?? null);
    replayed(reply, out.replayed);
    req.log.info({ userId, asset, status: out.status, replayed: out.replayed }, 'withdrawal');
    // A withdrawal or an error body, or the stored JSON of either when replayed.
    return reply.code(out.status).send(out.body as { withdrawal: WithdrawalViewT });
  });

  r.post('/transfers', {
    schema: {
      operationId: 'createTransfer', tags: TAGS, summary: 'Receive a transfer order: hold the funds, send it to the payment rail once',
      description: 'orderId is unique forever: the same order again answers the existing one (200, Idempotent-Replayed: true) and never executes twice; any field different is 409 ORDER_EXISTS with error.existing and error.differs. States: received -> executing -> succeeded | failed | unknown.',
      body: ref(TransferBody),
      response: {
        202: ok(Transfer, 'The order, received: its funds are held and it goes to the rail'),
        200: ok(Transfer, 'The same order again: the existing one, never executed twice', { replayed: true }),
        ...errors(['ASSET_NOT_FOUND', 'INSUFFICIENT_FUNDS', 'ORDER_EXISTS']),
      },
    },
    preValidation: amountFirst,
  }, async (req, reply) => {
    const { orderId, userId, asset, destination } = req.body;
    const out = await payouts.transfer({ orderId, userId, asset, amount: amountOf(req.body.amount), destination });
    replayed(reply, out.replayed);
    req.log.info({ orderId, userId, asset, status: out.status }, 'transfer order');
    return reply.code(out.status).send(out.body);
  });

  r.get('/transfers/:orderId', {
    schema: {
      operationId: 'getTransfer', tags: TAGS, summary: 'Get a transfer order with its state, attempts and the rail\'s reference',
      params: OrderIdParams,
      response: { 200: ok(Transfer, 'The order'), ...errors(['ORDER_NOT_FOUND']) },
    },
  }, async (req) => ({ transfer: transferView(await payouts.getTransfer(req.params.orderId)) }));

  r.get('/transfers', {
    schema: {
      operationId: 'listTransfers', tags: TAGS, summary: 'List transfer orders by id, optionally in one state (?state=unknown: those waiting for a person)',
      querystring: TransfersQuery,
      response: { 200: ok(ref(TransferPage), 'A page of orders, by orderId'), ...errors([]) },
    },
    preValidation: integerQuery,
  }, async (req) => {
    const page = await payouts.listTransfers(req.query.state ?? null, pageLimit(req.query.limit), decodeCursor(req.query.cursor));
    return { transfers: page.items.map(transferView), nextCursor: page.nextCursor };
  });

  r.post('/transfers/:orderId/resolve', {
    schema: {
      operationId: 'resolveTransfer', tags: TAGS, summary: 'Resolve an unknown order (admin): succeeded posts its hold as paid out, failed releases it',
      description: 'Only from unknown (409 ORDER_NOT_UNKNOWN otherwise); the ledger entry is applied once, and the same resolution again replays (Idempotent-Replayed: true).',
      params: OrderIdParams, body: ref(ResolveBody),
      response: { 200: ok(Transfer, 'The order, resolved (or the replay of the same resolution)', { replayed: true }), ...errors(['ORDER_NOT_FOUND', 'ORDER_NOT_UNKNOWN']) },
    },
  }, async (req, reply) => {
    const out = await payouts.resolve(req.params.orderId, req.body.outcome, req.body.note);
    replayed(reply, out.replayed);
    req.log.info({ orderId: req.params.orderId, outcome: req.body.outcome, replayed: out.replayed }, 'transfer resolved');
    return { transfer: transferView(out.transfer) as TransferViewT };
  });

  r.get('/ledger/audit', {
    schema: {
      operationId: 'auditLedger', tags: TAGS, summary: 'Run the ledger\'s invariant checks (double entry, conservation, no negative balance, holds = open orders)',
      response: { 200: ok(ref(LedgerAuditView), 'The checks and whether all passed'), ...errors([]) },
    },
  }, async () => {
    const report = await payouts.audit();
    return { ok: report.ok, checks: report.checks.map((c) => jsonSafe(c) as { name: string; ok: boolean }) };
  });
};
