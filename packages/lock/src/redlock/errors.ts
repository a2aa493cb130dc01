// QuorumError: a Redlock operation could not reach a majority of its nodes for a reason other
// than contention. It names every node's cause, never a bare "unable to achieve a quorum".
import { LockBackendError } from '../errors.ts';

export interface NodeCause {
  /** the node's address ("host:port") or the name the caller gave it */
  node: string;
  /** what the node answered: an error message, 'no reply within N ms', or 'locked by another owner' */
  reason: string;
  /** the node's error, when it failed */
  error?: unknown;
}

export class QuorumError extends LockBackendError {
  readonly causes: readonly NodeCause[];
  readonly nodes: number;
  readonly quorum: number;
  readonly succeeded: number;

  constructor(key: string, operation: string, summary: { nodes: number; quorum: number; succeeded: number }, causes: NodeCause[]) {
    const detail = causes.map((c) => `${c.node}: ${c.reason}`).join('; ');
    const errors = causes.filter((c) => c.error !== undefined).map((c) => c.error);
    super(key, operation, new AggregateError(errors, detail));
    // LockBackendError types its name as a literal; the instance still says what it is.
    Object.defineProperty(this, 'name', { value: 'QuorumError', enumerable: true, configurable: true, writable: false });
    this.message = `lock "${key}": Redlock quorum not reached during ${operation} (${summary.succeeded} of ${summary.nodes} nodes succeeded, ${summary.quorum} needed): ${detail}`;
    this.causes = Object.freeze(causes.slice());
    this.nodes = summary.nodes;
    this.quorum = summary.quorum;
    this.succeeded = summary.succeeded;
  }
}
