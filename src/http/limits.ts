// The HTTP server's own limits (docs/operations.md, "HTTP limits"): how long a client may take to
// send its headers and its whole request, how long an idle keep-alive connection stays open, how
// many connections are held at once, and what a client that breaks them is answered.
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { errorBody, type ErrorCode } from '../core/errors.ts';

export interface HttpLimits {
  /** The request line and headers must arrive within this long of the connection (or of the
   * request's first byte on a kept-alive connection); else 408 and the connection is closed. */
  headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this long; else 408 and closed. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long without a request. */
  keepAliveTimeoutMs: number;
  /** Connections held at once; one more is closed as soon as it is accepted. */
  maxConnections: number;
  /** How often the headers and request timeouts are checked: they fire up to this much late. */
  checkIntervalMs: number;
}

/** Defaults (the service's settings in src/service/config.ts repeat them; a test keeps them equal).
 * Keep-alive is Node's own 5 s: behind a load balancer that reuses connections, raise it above
 * the balancer's idle timeout (docs/operations.md). */
export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 10_000,
  checkIntervalMs: 1_000,
});

/** Fills in the defaults and checks what Node would otherwise reject or silently ignore. */
export function resolveHttpLimits(given: Partial<HttpLimits> | undefined): HttpLimits {
  const limits = { ...DEFAULT_HTTP_LIMITS, ...given };
  for (const [name, v] of Object.entries(limits)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`HTTP limit ${name} must be a whole number of at least 1, got ${v}`);
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new RangeError(`HTTP headers timeout (${limits.headersTimeoutMs} ms) must not exceed the request timeout (${limits.requestTimeoutMs} ms): the request includes its headers`);
  }
  return limits;
}

/** How much of an over-limit body is read (and thrown away) so the client can read its 400:
 * 4 MiB, or 4 times the body limit when that is larger. Past it the connection is cut. */
export function bodyDrainLimit(bodyLimitBytes: number): number {
  return Math.max(4 * 1024 * 1024, 4 * bodyLimitBytes);
}

function rawAnswer(status: number, code: ErrorCode, message: string): string {
  const body = JSON.stringify(errorBody(code, message));
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** Fastify's clientErrorHandler (fastify calls it with the app as `this`): a request Node refuses
 * before fastify sees it (a timeout, headers too large, a malformed request line) gets the API's
 * error shape, then the connection closes. */
export function clientErrorHandler(limits: HttpLimits): (this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket) => void {
  return function onClientError(err, socket) {
    const log = (): FastifyBaseLogger => this.log;
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let answer: string;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      answer = rawAnswer(408, 'REQUEST_TIMEOUT', `The request did not arrive in time (headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms); nothing was done. Send it again, promptly.`);
      log().debug({ err, remoteAddress: socket.remoteAddress }, 'client too slow: connection closed');
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      answer = rawAnswer(400, 'VALIDATION_FAILED', 'the request headers are too large (16 KiB at most); send fewer or shorter headers');
      log().debug({ err }, 'request headers too large');
    } else {
      answer = rawAnswer(400, 'VALIDATION_FAILED', `malformed HTTP request (${err.code ?? 'parse error'}); nothing was done`);
      log().debug({ err }, 'malformed HTTP request');
    }
    if (socket.writable) socket.write(answer);
    socket.destroy();
  };
}

/** Reads and discards the rest of a request body. 'drained' when it ended within `capBytes`,
 * 'over-cap' when more came (reading stops there), 'closed' when the client went away. */
export function drainBody(body: Readable, capBytes: number): Promise<'drained' | 'over-cap' | 'closed'> {
  if (body.readableEnded) return Promise.resolve('drained');
  if (body.destroyed) return Promise.resolve('closed');
  return new Promise((resolve) => {
    let seen = 0;
    const finish = (result: 'drained' | 'over-cap' | 'closed'): void => {
      body.off('data', onData).off('end', onEnd).off('close', onClose).off('error', onClose);
      resolve(result);
    };
    const onData = (chunk: Buffer | string): void => {
      seen += chunk.length;
      if (seen > capBytes) {
        body.pause();
        finish('over-cap');
      }
    };
    const onEnd = (): void => finish('drained');
    const onClose = (): void => finish('closed');
    body.on('data', onData).once('end', onEnd).once('close', onClose).once('error', onClose);
    body.resume();
  });
}

/** Applies the connection cap and logs refused connections (at most one line per 10 s). */
export function capConnections(server: Server, maxConnections: number, log: () => FastifyBaseLogger): void {
  server.maxConnections = maxConnections;
  let refused = 0;
  let lastReport = 0;
  server.on('drop', () => {
    refused += 1;
    const now = Date.now();
    if (now - lastReport >= 10_000) {
      log().warn({ refused, maxConnections }, `connection cap reached: ${refused} connection(s) refused (raise ALLOT_HTTP_MAX_CONNECTIONS, or add instances)`);
      refused = 0;
      lastReport = now;
    }
  });
}
