import { describe, expect, it } from "vitest";
import { selectorMatches, selectorString } from "../../../src/kube/selectors.ts";

describe("selectors", () => {
  it("evaluates matchLabels and matchExpressions like apimachinery", () => {
    const sel = {
      matchLabels: { app: "web" },
      matchExpressions: [{ key: "tier", operator: "NotIn", values: ["db"] }],
    };
    expect(selectorMatches(sel, { app: "web" })).toBe(true);
    expect(selectorMatches(sel, { app: "web", tier: "db" })).toBe(false);
    expect(selectorMatches(undefined, { app: "web" })).toBe(false);
    expect(selectorMatches({}, {})).toBe(true);
    expect(selectorString(sel)).toBe("app=web,tier notin (db)");
  });
});
