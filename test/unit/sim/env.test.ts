import { describe, expect, it } from "vitest";
import { expand } from "../../../sim/env.ts";

describe("environment and Downward API", () => {
  it("expands $(VAR) from earlier variables, keeps unknown ones, and unescapes $$", () => {
    expect(expand("$(A)-$(B)-$$(A)", { A: "x" })).toBe("x-$(B)-$(A)");
  });
});
