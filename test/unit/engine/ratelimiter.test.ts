import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BucketLimiter, ItemExponentialLimiter } from "../../../src/engine/ratelimiter.ts";

describe("rate limiters (property)", () => {
  it("per-item backoff doubles up to the cap and resets on forget", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 40 }),
        (base, capMul, n) => {
          const cap = base * capMul;
          const l = new ItemExponentialLimiter(base, cap);
          let prev = 0;
          for (let i = 0; i < n; i++) {
            const d = l.when("k");
            expect(d).toBe(Math.min(base * 2 ** i, cap));
            expect(d).toBeGreaterThanOrEqual(prev);
            prev = d;
          }
          expect(l.when("other")).toBe(base);
          l.forget("k");
          expect(l.when("k")).toBe(base);
        },
      ),
    );
  });

  it("the bucket admits at most burst + qps*t items without delay", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 200 }),
        (qps, burst, gaps) => {
          const b = new BucketLimiter(qps, burst);
          let t = 1000;
          let free = 0;
          const start = t;
          for (const g of gaps) {
            t += g;
            if (b.when("x", t) === 0) free++;
          }
          expect(free).toBeLessThanOrEqual(burst + Math.floor(((t - start) / 1000) * qps) + 1);
        },
      ),
    );
  });
});
