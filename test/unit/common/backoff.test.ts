import { describe, expect, it } from "vitest";
import { backoffDelay } from "../../../src/common/backoff.ts";

describe("backoffDelay", () => {
  it("grows exponentially, is capped, and jitter only shortens", () => {
    expect(backoffDelay(1, { initialMs: 100, jitter: 0 })).toBe(100);
    expect(backoffDelay(4, { initialMs: 100, jitter: 0 })).toBe(800);
    expect(backoffDelay(30, { initialMs: 100, maxMs: 5000, jitter: 0 })).toBe(5000);
    expect(backoffDelay(1, { initialMs: 100, jitter: 0.5 }, () => 1)).toBe(50);
  });
});
