import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DedupWindow } from "../../../src/sdk/dedup.ts";

describe("DedupWindow", () => {
  it("remembers keys, forgets the oldest beyond capacity, and round-trips through a snapshot", () => {
    const w = new DedupWindow(3, ["a", "b"]);
    w.add("c");
    w.add("a"); // already present: does not refresh or duplicate
    expect(w.snapshot()).toEqual(["a", "b", "c"]);
    w.add("d");
    expect(w.has("a")).toBe(false);
    expect(new DedupWindow(3, w.snapshot()).snapshot()).toEqual(["b", "c", "d"]);
  });

  it("never holds more than capacity and always holds the latest keys (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.string({ maxLength: 3 }), { maxLength: 100 }),
        (cap, keys) => {
          const w = new DedupWindow(cap);
          for (const k of keys) w.add(k);
          expect(w.size).toBeLessThanOrEqual(cap);
          if (keys.length) expect(w.has(keys[keys.length - 1]!)).toBe(true);
        },
      ),
    );
  });

  it("rejects a non-positive capacity", () => {
    expect(() => new DedupWindow(0)).toThrow(RangeError);
  });
});
