// A source of randomness, injected so strategies (retry jitter) and draws are reproducible in tests.

export interface RandomSource {
  /** A number in [0, 1). */
  next(): number;
}
