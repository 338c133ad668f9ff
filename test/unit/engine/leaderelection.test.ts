import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { LeaderElector, type LeaseRecord, type LeaseStore } from "../../../src/engine/leaderelection.ts";
import { ManualClock } from "./faketimers.ts";

/** One Lease with optimistic concurrency, and injectable failures. */
class MemoryLease implements LeaseStore {
  record?: LeaseRecord;
  private rv = 0;
  failNext = 0;
  private check(): void {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Ms2mError("ServiceUnavailable", "apiserver unavailable");
    }
  }
  async get() {
    this.check();
    return this.record ? { ...this.record } : undefined;
  }
  async create(r: LeaseRecord) {
    this.check();
    if (this.record) throw new Ms2mError("AlreadyExists", "exists");
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return { ...this.record };
  }
  async update(r: LeaseRecord) {
    this.check();
    if (!this.record || r.resourceVersion !== this.record.resourceVersion)
      throw new Ms2mError("Conflict", "modified");
    this.record = { ...r, resourceVersion: String(++this.rv) };
    return { ...this.record };
  }
}

const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe("LeaderElector (property)", () => {
  it("never has two leaders at once, whatever the interleaving and API failures", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            who: fc.integer({ min: 0, max: 2 }),
            advance: fc.integer({ min: 0, max: 6000 }),
            fail: fc.integer({ min: 0, max: 3 }),
            stop: fc.boolean(),
          }),
          { minLength: 1, maxLength: 60 },
        ),
        async (steps) => {
          const clock = new ManualClock();
          const store = new MemoryLease();
          const electors = [0, 1, 2].map((i) => new LeaderElector({ identity: `r${i}`, store, clock }));
          const stopped = new Set<number>();
          for (const s of steps) {
            store.failNext = s.fail % 2;
            if (s.stop && s.who === 0 && !stopped.has(0)) {
              stopped.add(0);
              await electors[0]!.stop();
            } else if (!stopped.has(s.who)) {
              await electors[s.who]!.tryAcquireOrRenew().then(
                (held) => {
                  // Mirror tick(): leading flag follows successful acquisition.
                  if (held) (electors[s.who] as unknown as { leading: boolean }).leading = true;
                },
                () => undefined,
              );
            }
            clock.advance(s.advance);
            const leaders = electors.filter((e, i) => !stopped.has(i) && e.isLeader());
            expect(leaders.length).toBeLessThanOrEqual(1);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a candidate takes over only after the lease expired on its own clock; release hands over at once", async () => {
    const clock = new ManualClock();
    const store = new MemoryLease();
    const a = new LeaderElector({ identity: "a", store, clock });
    const b = new LeaderElector({ identity: "b", store, clock });
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock.advance(14_999);
    expect(await b.tryAcquireOrRenew()).toBe(false);
    clock.advance(15_000);
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(store.record?.leaseTransitions).toBe(1);
    // Release: b leads, stops, a acquires without waiting 15 s.
    (b as unknown as { leading: boolean }).leading = true;
    await b.stop();
    expect(store.record?.holderIdentity).toBe("");
    clock.advance(1001);
    expect(await a.tryAcquireOrRenew()).toBe(true);
  });

  it("start(): leads, renews every retry period, steps down when renewals fail past the deadline", async () => {
    const clock = new ManualClock();
    const store = new MemoryLease();
    let started = 0;
    let stoppedLeading = 0;
    const e = new LeaderElector({
      identity: "x",
      store,
      clock,
      onStartedLeading: () => started++,
      onStoppedLeading: () => stoppedLeading++,
    });
    e.start();
    await settle();
    expect(started).toBe(1);
    expect(e.isLeader()).toBe(true);
    for (let i = 0; i < 3; i++) {
      clock.advance(2000);
      await settle();
    }
    expect(e.isLeader()).toBe(true);
    store.failNext = 1000;
    for (let i = 0; i < 6; i++) {
      clock.advance(2000);
      await settle();
    }
    expect(e.isLeader()).toBe(false);
    expect(stoppedLeading).toBe(1);
    await e.stop();
  });
});
