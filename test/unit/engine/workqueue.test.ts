import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defaultControllerRateLimiter } from "../../../src/engine/ratelimiter.ts";
import { WorkQueue } from "../../../src/engine/workqueue.ts";
import { ManualClock } from "./faketimers.ts";

const keys = ["a", "b", "c", "d"];
const op = fc.oneof(
  fc.record({ t: fc.constant("add" as const), k: fc.constantFrom(...keys) }),
  fc.record({
    t: fc.constant("addAfter" as const),
    k: fc.constantFrom(...keys),
    ms: fc.integer({ min: 0, max: 500 }),
  }),
  fc.record({ t: fc.constant("addRateLimited" as const), k: fc.constantFrom(...keys) }),
  fc.record({ t: fc.constant("get" as const) }),
  fc.record({ t: fc.constant("done" as const), i: fc.nat() }),
  fc.record({ t: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 300 }) }),
);

describe("WorkQueue (property)", () => {
  it("never hands out a key being processed, dedups, and loses no add", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const clock = new ManualClock();
        const q = new WorkQueue({ rateLimiter: defaultControllerRateLimiter({ maxMs: 200 }), clock });
        const inFlight: string[] = [];
        // A key added (now or by a timer) after its last get must be handed out again later.
        const owed = new Set<string>();
        const origAdd = q.add.bind(q);
        q.add = (k: string) => {
          owed.add(k);
          origAdd(k);
        };
        const take = () => {
          const k = q.tryGet();
          if (k === undefined) return;
          expect(inFlight).not.toContain(k); // never concurrently
          inFlight.push(k);
          owed.delete(k);
        };
        for (const o of ops) {
          if (o.t === "add") q.add(o.k);
          else if (o.t === "addAfter") q.addAfter(o.k, o.ms);
          else if (o.t === "addRateLimited") q.addRateLimited(o.k);
          else if (o.t === "get") take();
          else if (o.t === "done") {
            const k = inFlight.splice(o.i % Math.max(1, inFlight.length), 1)[0];
            if (k !== undefined) q.done(k);
          } else clock.advance(o.ms);
          expect(q.length).toBeLessThanOrEqual(keys.length); // de-duplicated
        }
        // Drain: finish everything, fire all timers, process until empty.
        for (const k of inFlight.splice(0)) q.done(k);
        clock.advance(10_000);
        for (let i = 0; i < 100; i++) {
          const k = q.tryGet();
          if (k === undefined) break;
          owed.delete(k);
          q.done(k);
        }
        expect([...owed]).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  it("keeps the earliest of several delayed adds", () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ rateLimiter: defaultControllerRateLimiter(), clock });
    q.addAfter("a", 1000);
    q.addAfter("a", 100);
    q.addAfter("a", 5000);
    clock.advance(99);
    expect(q.tryGet()).toBeUndefined();
    clock.advance(1);
    expect(q.tryGet()).toBe("a");
  });

  it("re-queues a key added while processing, once, at done()", () => {
    const q = new WorkQueue({ rateLimiter: defaultControllerRateLimiter(), clock: new ManualClock() });
    q.add("a");
    expect(q.tryGet()).toBe("a");
    q.add("a");
    q.add("a");
    expect(q.tryGet()).toBeUndefined();
    q.done("a");
    expect(q.tryGet()).toBe("a");
    expect(q.tryGet()).toBeUndefined();
  });

  it("shutdown drains: get() returns queued keys, then undefined; waits for work in flight", async () => {
    const q = new WorkQueue({ rateLimiter: defaultControllerRateLimiter(), clock: new ManualClock() });
    q.add("a");
    q.add("b");
    const first = await q.get();
    const drained = q.shutDownWithDrain();
    q.add("c"); // refused
    expect(await q.get()).toBe("b");
    q.done("b");
    let finished = false;
    void drained.then(() => (finished = true));
    await Promise.resolve();
    expect(finished).toBe(false);
    q.done(first!);
    await drained;
    expect(await q.get()).toBeUndefined();
  });
});

describe("WorkQueue admission (what brought a key back)", () => {
  it("tells an event's add from a timer's, with the time it was queued", () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ rateLimiter: defaultControllerRateLimiter(), clock });
    q.addAfter("a", 100);
    clock.advance(100);
    expect(q.tryGet()).toBe("a");
    expect(q.admission("a")).toEqual({ queuedAt: 1_000_100, byTimer: true });
    q.done("a");
    expect(q.admission("a")).toBeUndefined();

    // An event while the key is processed: queued at the event, not when the reconcile ended.
    q.add("a");
    expect(q.tryGet()).toBe("a");
    clock.advance(5);
    q.add("a");
    clock.advance(20);
    q.done("a");
    expect(q.tryGet()).toBe("a");
    expect(q.admission("a")).toEqual({ queuedAt: 1_000_105, byTimer: false });
    q.done("a");

    // A timer that fires when an event already queued the key does not make it a timer's.
    q.addAfter("b", 10);
    q.add("b");
    clock.advance(10);
    expect(q.tryGet()).toBe("b");
    expect(q.admission("b")?.byTimer).toBe(false);
  });
});
