// The `allot` command's exit codes (README "CLI" and docs/operations.md list them), and the one
// function that turns an error into its code and its line on stderr.
import { CommanderError } from 'commander';
import { isAllotError } from '../core/errors.ts';
import { ConfigError } from '../service/config.ts';

export const EXIT = Object.freeze({
  /** done */
  OK: 0,
  /** a failure not listed below: a refusal (SOLD_OUT, FUNDING_EXISTS, …) or a bug */
  FAILURE: 1,
  /** usage: an unknown command or option, a missing or invalid argument, invalid configuration */
  USAGE: 2,
  /** the campaign, claim, prize, asset or transfer order named does not exist */
  NOT_FOUND: 3,
  /** an invariant failed: `audit`, `ledger audit` found a violation, or `claim proof` does not verify */
  INVARIANT: 4,
  /** `serve` cannot listen: the port is in use (or not allowed, or HOST is not an address here) */
  CANNOT_LISTEN: 5,
  /** a backend is unavailable: the database (or its data dir is held by another process), Redis (sysexits EX_UNAVAILABLE) */
  UNAVAILABLE: 69,
});

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** `serve` could not listen on its port; nothing was created. */
export class ListenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ListenError';
  }
}

/** A check the command ran found a violation (the report is already printed). */
export class InvariantViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantViolation';
  }
}

/** The exit code of an error a command threw. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  if (err instanceof ConfigError) return EXIT.USAGE;
  if (err instanceof ListenError) return EXIT.CANNOT_LISTEN;
  if (err instanceof InvariantViolation) return EXIT.INVARIANT;
  if (isAllotError(err)) {
    // The API's statuses say it already: 400 the input, 404 not found, 503 a backend.
    if (err.status === 400) return EXIT.USAGE;
    if (err.status === 404) return EXIT.NOT_FOUND;
    if (err.status === 503) return EXIT.UNAVAILABLE;
    return EXIT.FAILURE;
  }
  return EXIT.FAILURE;
}

/** The line (or lines, for a configuration) an error prints on stderr; '' when it printed
 * itself (commander's usage errors and --help). */
export function errorText(err: unknown): string {
  if (err instanceof CommanderError) return '';
  if (err instanceof ConfigError || err instanceof ListenError || err instanceof InvariantViolation) return `allot: ${err.message}`;
  if (isAllotError(err)) return `allot: ${err.code}: ${err.message}`;
  return `allot: error: ${(err as Error)?.message ?? String(err)}`;
}
