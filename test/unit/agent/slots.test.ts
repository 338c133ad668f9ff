import { describe, expect, it } from "vitest";
import { Slots } from "../../../src/agent/slots.ts";

describe("Slots", () => {
  it("refuses a transfer above the limit with 429, and reports every change", () => {
    const seen: number[] = [];
    let limit = 1;
    const slots = new Slots(
      () => limit,
      (n) => seen.push(n),
    );
    const a = slots.acquire();
    expect(() => slots.acquire()).toThrow(expect.objectContaining({ code: 429 }));
    limit = 2; // read per acquire
    const b = slots.acquire();
    slots.release(a);
    slots.release(a); // idempotent
    slots.release(b);
    expect(seen).toEqual([1, 2, 1, 0]);
    expect(slots.size).toBe(0);
  });

  it("idle() resolves when the last slot is released, or at its timeout", async () => {
    const slots = new Slots(() => 4);
    await slots.idle(60_000); // nothing taken: at once
    const a = slots.acquire();
    const idle = slots.idle(60_000);
    slots.release(a);
    await idle;
    slots.acquire();
    const started = Date.now();
    await slots.idle(20);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(slots.size).toBe(1);
  });
});
