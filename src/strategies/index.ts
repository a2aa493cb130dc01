// The catalogue of claim strategies by name. Later strategies only add a file and a line here.
import type { ClaimStrategy } from '../ports/claim-strategy.ts';
import { conditional } from './conditional.ts';
import { pessimistic } from './pessimistic.ts';

const STRATEGIES: ReadonlyMap<string, ClaimStrategy> = new Map([
  [conditional.name, conditional],
  [pessimistic.name, pessimistic],
]);

export const DEFAULT_STRATEGY = conditional.name;

export function strategyNames(): string[] {
  return [...STRATEGIES.keys()];
}

export function getStrategy(name: string): ClaimStrategy | undefined {
  return STRATEGIES.get(name);
}
