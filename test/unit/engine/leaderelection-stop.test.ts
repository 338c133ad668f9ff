import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { LeaderElector, type LeaseRecord, type LeaseStore } from "../../../src/engine/leaderelection.ts";
import { realTimerClock } from "../../../src/engine/timers.ts";
import { sleep } from "../../../tooling/exec.ts";

/** A Lease with optimistic concurrency whose writes take `delayMs`. */
class SlowLease implements LeaseStore {
  record?: LeaseRecord;
  private rv = 0;
  delayMs = 0;
  private wait = () => sleep(this.delayMs);
  async get() {
    return this.record ? { ...this.record } : undefined;
  }
  async create(r: LeaseRecord) {
    await this.wait();
    if (this.record) throw new Ms2mError("AlreadyExists", "exists");
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return { ...this.record };
  }
  async update(r: LeaseRecord) {
    await this.wait();
    if (!this.record || r.resourceVersion !== this.record.resourceVersion)
      throw new Ms2mError("Conflict", "modified");
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return { ...this.record };
  }
}

const timing = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 100 };

describe("LeaderElector.stop with a request in flight", () => {
  it("releases the lease even when a renewal was on its way", async () => {
    const store = new SlowLease();
    const e = new LeaderElector({ identity: "a", store, clock: realTimerClock, ...timing });
    e.start();
    await sleep(50);
    expect(e.isLeader()).toBe(true);
    store.delayMs = 80;
    await sleep(120); // the next renewal is now in flight
    await e.stop();
    await sleep(200);
    expect(store.record?.holderIdentity).toBe("");
  });

  it("releases a lease acquired by the attempt in flight when stop was called", async () => {
    const store = new SlowLease();
    store.delayMs = 100;
    const e = new LeaderElector({ identity: "b", store, clock: realTimerClock, ...timing });
    e.start();
    await sleep(20); // the create is in flight
    await e.stop();
    expect(store.record?.holderIdentity).toBe("");
  });
});
