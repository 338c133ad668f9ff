// client-go's default controller rate limiter: the larger of a per-item exponential backoff
// (base * 2^failures, capped) and an overall token bucket.

export interface RateLimiter {
  /** Delay before the item may be processed again. */
  when(item: string, nowMs: number): number;
  forget(item: string): void;
  retries(item: string): number;
}

export class ItemExponentialLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  readonly baseMs: number;
  readonly maxMs: number;

  constructor(baseMs: number, maxMs: number) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  when(item: string): number {
    const n = this.failures.get(item) ?? 0;
    this.failures.set(item, n + 1);
    return Math.min(this.baseMs * 2 ** n, this.maxMs);
  }
  forget(item: string): void {
    this.failures.delete(item);
  }
  retries(item: string): number {
    return this.failures.get(item) ?? 0;
  }
}

/** Token bucket: `qps` tokens per second, at most `burst` saved up; returns the wait for the next one. */
export class BucketLimiter implements RateLimiter {
  readonly qps: number;
  readonly burst: number;
  private tokens: number;
  private last = 0;

  constructor(qps: number, burst: number) {
    this.qps = qps;
    this.burst = burst;
    this.tokens = burst;
  }

  when(_item: string, nowMs: number): number {
    if (this.last === 0) this.last = nowMs;
    this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.last) / 1000) * this.qps);
    this.last = nowMs;
    this.tokens -= 1; // reserve, possibly going into debt like x/time/rate
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.qps) * 1000);
  }
  forget(): void {}
  retries(): number {
    return 0;
  }
}

export class MaxOfLimiter implements RateLimiter {
  readonly limiters: RateLimiter[];
  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }
  when(item: string, nowMs: number): number {
    return Math.max(...this.limiters.map((l) => l.when(item, nowMs)));
  }
  forget(item: string): void {
    for (const l of this.limiters) l.forget(item);
  }
  retries(item: string): number {
    return Math.max(...this.limiters.map((l) => l.retries(item)));
  }
}

export function defaultControllerRateLimiter(
  opts: { baseMs?: number; maxMs?: number; qps?: number; burst?: number } = {},
): RateLimiter {
  return new MaxOfLimiter(
    new ItemExponentialLimiter(opts.baseMs ?? 5, opts.maxMs ?? 60_000),
    new BucketLimiter(opts.qps ?? 10, opts.burst ?? 100),
  );
}
