// Leader election on a coordination.k8s.io Lease, as client-go does it: a candidate takes the
// lease only after it has seen the same record unchanged for a whole lease duration (measured
// on its own clock, so clock skew between replicas does not matter); the leader renews every
// retry period and steps down when it could not renew within the renew deadline, which is
// shorter than the lease duration. On shutdown the leader releases the lease.
import { describeError } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import type { TimerClock } from "./timers.ts";

export interface LeaseRecord {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
  resourceVersion?: string;
}

/** Storage of one Lease; create/update fail (reject) on AlreadyExists/Conflict. */
export interface LeaseStore {
  get(): Promise<LeaseRecord | undefined>;
  create(record: LeaseRecord): Promise<LeaseRecord>;
  update(record: LeaseRecord): Promise<LeaseRecord>;
}

export interface ElectorOptions {
  identity: string;
  store: LeaseStore;
  clock: TimerClock;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log?: Logger;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
}

const micro = (ms: number) => new Date(ms).toISOString().replace("Z", "000Z");

export class LeaderElector {
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  private readonly opts: ElectorOptions;
  private observed?: { record: LeaseRecord; at: number };
  private lastRenew = -Infinity;
  private leading = false;
  private stopped = false;
  private cancelTimer?: () => void;
  private inflight?: Promise<void>;

  constructor(opts: ElectorOptions) {
    this.opts = opts;
    this.identity = opts.identity;
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (this.renewDeadlineMs >= this.leaseDurationMs)
      throw new Error("renew deadline must be shorter than the lease duration");
  }

  /** Leading now: the last successful renewal is younger than the renew deadline. */
  isLeader(): boolean {
    return this.leading && this.opts.clock.now() - this.lastRenew < this.renewDeadlineMs;
  }

  start(): void {
    this.stopped = false;
    this.inflight = this.tick();
  }

  /** One acquire-or-renew attempt; returns whether this candidate holds the lease. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { store, clock } = this.opts;
    const now = clock.now();
    const current = await store.get();
    if (!current) {
      await store.create({
        holderIdentity: this.identity,
        leaseDurationSeconds: this.leaseDurationMs / 1000,
        acquireTime: micro(now),
        renewTime: micro(now),
        leaseTransitions: 0,
      });
      this.lastRenew = now;
      return true;
    }
    if (!this.observed || !sameRecord(this.observed.record, current))
      this.observed = { record: current, at: now };
    const holder = current.holderIdentity ?? "";
    const mine = holder === this.identity;
    const durationMs = (current.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    if (!mine && holder !== "" && this.observed.at + durationMs > now) return false;
    const updated = await store.update({
      ...current,
      holderIdentity: this.identity,
      leaseDurationSeconds: this.leaseDurationMs / 1000,
      renewTime: micro(now),
      acquireTime: mine ? current.acquireTime : micro(now),
      leaseTransitions: (current.leaseTransitions ?? 0) + (mine ? 0 : 1),
    });
    this.observed = { record: updated, at: now };
    this.lastRenew = now;
    return true;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    let held = false;
    try {
      held = await this.tryAcquireOrRenew();
    } catch (err) {
      this.opts.log?.debug({ err: describeError(err) }, "lease acquire/renew failed");
    }
    if (this.stopped) return;
    if (held && !this.leading) {
      this.leading = true;
      this.opts.log?.info({ identity: this.identity }, "became leader");
      this.opts.onStartedLeading?.();
    } else if (this.leading && !this.isLeader()) {
      this.leading = false;
      this.opts.log?.warn({ identity: this.identity }, "lost leadership");
      this.opts.onStoppedLeading?.();
    }
    const jitter = this.leading ? 0 : Math.floor(Math.random() * this.retryPeriodMs * 0.2);
    this.cancelTimer = this.opts.clock.setTimeout(
      () => (this.inflight = this.tick()),
      this.retryPeriodMs + jitter,
    );
  }

  /** Stops campaigning; a leader releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    // An acquire or renew still in flight could land after the release and take the lease back
    // (or acquire it just now): wait for it, up to the renew deadline.
    const inflight = this.inflight?.then(() => true);
    const settled = inflight
      ? await new Promise<boolean>((resolve) => {
          const cancel = this.opts.clock.setTimeout(() => resolve(false), this.renewDeadlineMs);
          void inflight.then((v) => (cancel(), resolve(v)));
        })
      : true;
    const justAcquired = settled && this.opts.clock.now() - this.lastRenew < this.renewDeadlineMs;
    if (!this.leading && !justAcquired) return;
    this.leading = false;
    try {
      const current = await this.opts.store.get();
      if (current?.holderIdentity === this.identity) {
        await this.opts.store.update({
          ...current,
          holderIdentity: "",
          leaseDurationSeconds: 1,
          renewTime: micro(this.opts.clock.now()),
        });
      }
    } catch (err) {
      this.opts.log?.warn({ err: describeError(err) }, "could not release the lease");
    }
  }
}

function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.renewTime === b.renewTime &&
    a.resourceVersion === b.resourceVersion
  );
}
