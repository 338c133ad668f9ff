// What the engine knows of a reconciler (controller-runtime's reconcile.Reconciler): a request
// names one object by key, the result says when to look again, and two errors say how a failed
// reconcile is retried. Nothing here is specific to any resource.
import { describeError } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";

/** One object to reconcile, by namespace and name (levels, not events). */
export interface Request {
  namespace: string;
  name: string;
}

export const requestKey = (r: Request): string => `${r.namespace}/${r.name}`;

export function parseRequestKey(key: string): Request {
  const i = key.indexOf("/");
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export interface Result {
  /** Reconcile again after this long even without an event (a deadline or a poll). */
  requeueAfterMs?: number;
}

/** Per reconcile: a logger carrying the request's key and a reconcile id, as controller-runtime does. */
export interface ReconcileScope {
  log: Logger;
  reconcileId: string;
  /** When the request was queued (ms since epoch) and whether a timer rather than an event did it. */
  admission?: { queuedAt: number; byTimer: boolean };
}

export interface Reconciler {
  reconcile(req: Request, scope: ReconcileScope): Promise<Result>;
}

/**
 * Retry with the work queue's backoff, but no later than `deadlineMs` from now. `backoffCapMs`: the
 * other side is busy and asked to be asked again (429): the backoff grows no longer than that.
 * Backing off up to a minute there starves the request: while it waits, others take every slot
 * that frees up.
 */
export class RetryAfter extends Error {
  readonly deadlineMs: number;
  readonly backoffCapMs: number | undefined;

  constructor(cause: unknown, deadlineMs: number, opts: { backoffCapMs?: number } = {}) {
    super(describeError(cause), { cause });
    this.name = "RetryAfter";
    this.deadlineMs = deadlineMs;
    this.backoffCapMs = opts.backoffCapMs;
  }
}

/** Retrying cannot help: logged and not requeued (a later event brings the object back). */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TerminalError";
  }
}
