// A work queue with client-go semantics: a key waiting in the queue is not added twice; a key
// being processed is never handed out again until done() (an add meanwhile is kept and
// re-queued at done()); delayed adds keep the earliest time; rate-limited adds back off per
// key; shutDown() stops new adds and lets get() drain what is queued.
import type { WorkqueueMetrics } from "./metrics.ts";
import type { RateLimiter } from "./ratelimiter.ts";
import { realTimerClock, type TimerClock } from "./timers.ts";

export interface Admission {
  /** clock.now() when the key entered the queue. */
  queuedAt: number;
  /** A delayed add put it there (nothing changed in the world). */
  byTimer: boolean;
}

export interface WorkQueueOptions {
  name?: string;
  rateLimiter: RateLimiter;
  clock?: TimerClock;
  metrics?: WorkqueueMetrics;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly waiting = new Map<string, { at: number; cancel: () => void }>();
  private readonly addedAt = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();
  /** Keys a delayed add (a timer, not an event) put in the queue. */
  private readonly byTimer = new Set<string>();
  /** Of each key being processed: when it was queued and whether a timer queued it. */
  private readonly admissions = new Map<string, Admission>();
  private readonly getters: ((key: string | undefined) => void)[] = [];
  private readonly drainWaiters: (() => void)[] = [];
  private shuttingDown = false;
  readonly name: string;
  readonly rateLimiter: RateLimiter;
  readonly clock: TimerClock;
  readonly metrics: WorkqueueMetrics | undefined;

  constructor(opts: WorkQueueOptions) {
    this.name = opts.name ?? "statefulmigration";
    this.rateLimiter = opts.rateLimiter;
    this.clock = opts.clock ?? realTimerClock;
    this.metrics = opts.metrics;
  }

  get length(): number {
    return this.queue.length;
  }
  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }
  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }
  hasWaiting(key: string): boolean {
    return this.waiting.has(key);
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.metrics?.adds.inc({ name: this.name });
    this.dirty.add(key);
    this.addedAt.set(key, this.clock.now());
    if (this.processing.has(key)) return; // re-queued by done()
    this.push(key);
  }

  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = this.clock.now() + delayMs;
    const existing = this.waiting.get(key);
    if (existing && existing.at <= at) return; // an earlier wake-up is already set
    existing?.cancel();
    const cancel = this.clock.setTimeout(() => {
      this.waiting.delete(key);
      if (!this.dirty.has(key)) this.byTimer.add(key);
      this.add(key);
    }, delayMs);
    this.waiting.set(key, { at, cancel });
  }

  /** After the rate limiter's backoff for `key`, at most `capMs` (a busy peer asked to be asked again). */
  addRateLimited(key: string, capMs = Infinity): void {
    this.metrics?.retries.inc({ name: this.name });
    this.addAfter(key, Math.min(this.rateLimiter.when(key, this.clock.now()), capMs));
  }

  forget(key: string): void {
    this.rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.rateLimiter.retries(key);
  }

  /** Next key to process, or undefined once shut down and empty. */
  get(): Promise<string | undefined> {
    const key = this.pop();
    if (key !== undefined || this.shuttingDown) return Promise.resolve(key);
    return new Promise((resolve) => this.getters.push(resolve));
  }

  /**
   * When the key being processed was queued and whether a timer (addAfter, a requeue or a
   * backoff) rather than an event queued it: lets a reconciler tell waiting on the world from
   * waiting on itself.
   */
  admission(key: string): Admission | undefined {
    return this.admissions.get(key);
  }

  /** Non-blocking get (tests, draining). */
  tryGet(): string | undefined {
    return this.pop();
  }

  done(key: string): void {
    this.processing.delete(key);
    const started = this.startedAt.get(key);
    if (started !== undefined)
      this.metrics?.workDuration.observe({ name: this.name }, (this.clock.now() - started) / 1000);
    this.startedAt.delete(key);
    this.admissions.delete(key);
    if (this.dirty.has(key)) this.push(key);
    if (this.processing.size === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  /** Stops accepting adds and delayed adds; waiting getters get undefined once the queue is empty. */
  shutDown(): void {
    this.shuttingDown = true;
    for (const w of this.waiting.values()) w.cancel();
    this.waiting.clear();
    if (this.queue.length === 0) for (const g of this.getters.splice(0)) g(undefined);
  }

  /** shutDown, then resolves when no key is being processed. */
  async shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return;
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  private push(key: string): void {
    const getter = this.getters.shift();
    if (!this.addedAt.has(key)) this.addedAt.set(key, this.clock.now());
    if (getter) {
      this.queue.push(key);
      getter(this.pop());
      return;
    }
    this.queue.push(key);
    this.metrics?.depth.set({ name: this.name }, this.queue.length);
  }

  private pop(): string | undefined {
    const key = this.queue.shift();
    if (key === undefined) return undefined;
    this.metrics?.depth.set({ name: this.name }, this.queue.length);
    const added = this.addedAt.get(key);
    if (added !== undefined)
      this.metrics?.queueDuration.observe({ name: this.name }, (this.clock.now() - added) / 1000);
    this.addedAt.delete(key);
    this.admissions.set(key, { queuedAt: added ?? this.clock.now(), byTimer: this.byTimer.has(key) });
    this.byTimer.delete(key);
    this.processing.add(key);
    this.dirty.delete(key);
    this.startedAt.set(key, this.clock.now());
    if (this.shuttingDown && this.queue.length === 0) for (const g of this.getters.splice(0)) g(undefined);
    return key;
  }
}
