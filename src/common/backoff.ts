// Exponential backoff with jitter for reconnects (shared by the SDK and the controller's pool).

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** Fraction of the delay randomised away, so many clients do not reconnect in lockstep. */
  jitter?: number;
}

export function backoffDelay(attempt: number, options: BackoffOptions = {}, random = Math.random): number {
  const { initialMs = 100, maxMs = 10_000, factor = 2, jitter = 0.2 } = options;
  const raw = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt - 1));
  return Math.round(raw * (1 - jitter * random()));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
