// Dead peers: every call to another agent, the kubelet or a registry is bounded by progress,
// not only by a total deadline. "No bytes for N seconds" (in either direction) means the peer is
// dead or stalled; the call is aborted with a reason, retriable, so the caller can try again
// (against a restarted peer) or give up and roll back. Agents send `102 Processing` every
// HEARTBEAT_MS while they work on a request, so a peer that is busy (loading, pushing) is never
// mistaken for a dead one.
import { Ms2mError } from "../common/errors.ts";

/** Default "no bytes for this long = dead" for agent and registry calls. */
export const DEFAULT_PROGRESS_TIMEOUT_MS = 15_000;
/** How often an agent sends `102 Processing` while it works on a request. */
export const HEARTBEAT_MS = 2_000;
/** TCP connect (and TLS handshake) bound. */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Aborts `controller` when `touch()` has not been called for `timeoutMs`. `reason` builds the
 * error the aborted call fails with.
 */
export class ProgressWatchdog {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private last = Date.now();
  private readonly timer: NodeJS.Timeout;
  private readonly timeoutMs: number;

  constructor(timeoutMs: number, reason: (seconds: number) => Ms2mError, parent?: AbortSignal) {
    this.timeoutMs = timeoutMs;
    this.signal = parent ? AbortSignal.any([parent, this.controller.signal]) : this.controller.signal;
    const tick = Math.max(50, Math.min(1000, Math.floor(timeoutMs / 4)));
    this.timer = setInterval(() => {
      if (Date.now() - this.last >= this.timeoutMs) {
        this.controller.abort(reason(Math.round(this.timeoutMs / 100) / 10));
        this.stop();
      }
    }, tick);
    this.timer.unref();
  }

  touch(): void {
    this.last = Date.now();
  }

  /** The error the watchdog aborted with, if it fired. */
  get fired(): Ms2mError | undefined {
    const r: unknown = this.controller.signal.reason;
    return this.controller.signal.aborted && r instanceof Ms2mError ? r : undefined;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** The Ms2mError for a peer that sent and accepted nothing for `seconds`. */
export function stalled(peer: string, seconds: number): Ms2mError {
  return new Ms2mError("ServiceUnavailable", `${peer} stopped responding: no progress for ${seconds} s`, {
    retriable: true,
  });
}
