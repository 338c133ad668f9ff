import { describe, expect, it } from "vitest";
import { parseQuantity } from "../../../src/kube/quantity.ts";

describe("parseQuantity", () => {
  it.each([
    ["250m", 0.25],
    ["1.5", 1.5],
    ["2", 2],
    ["64Mi", 64 * 2 ** 20],
    ["1Gi", 2 ** 30],
    ["1G", 1e9],
    ["500k", 5e5],
    ["2e3", 2000],
    ["100n", 1e-7],
  ])("%s = %d", (q, v) => {
    expect(parseQuantity(q)).toBeCloseTo(v, 9);
  });

  it("is NaN for what does not parse, 0 for nothing", () => {
    expect(parseQuantity("lots")).toBeNaN();
    expect(parseQuantity("1Qi")).toBeNaN();
    expect(parseQuantity(undefined)).toBe(0);
  });
});
