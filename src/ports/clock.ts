// Time and identity sources, injected so the core and strategies stay deterministic in tests.

export interface Clock {
  /** Wall-clock time in epoch milliseconds. */
  now(): number;
}

export interface IdSource {
  /** A new unique, roughly time-ordered id with the given prefix, e.g. "clm_01J…". */
  next(prefix: string): string;
}
