import { describe, expect, it } from "vitest";
import { UsageError } from "../../../src/cli/command.ts";
import { isTerminal, parseDuration } from "../../../src/cli/wait.ts";
import { completed, failed } from "./fixtures.ts";

describe("parseDuration", () => {
  it.each([
    ["90", 90_000],
    ["250ms", 250],
    ["90s", 90_000],
    ["1.5s", 1_500],
    ["10m", 600_000],
    ["1h30m", 5_400_000],
    ["1h0m10s", 3_610_000],
  ])("%s → %d ms", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "soon", "10 m", "10x", "m", "-1s", "1h 30m", "1.5"])("%j is a usage error", (text) => {
    expect(() => parseDuration(text)).toThrow(UsageError);
    expect(() => parseDuration(text)).toThrow(/not a duration/);
  });
});

describe("isTerminal", () => {
  it("Completed and Failed end a migration; anything else, or nothing, does not", () => {
    expect(isTerminal(completed)).toBe(true);
    expect(isTerminal(failed)).toBe(true);
    expect(isTerminal({ ...completed, status: { phase: "Replaying" } } as never)).toBe(false);
    expect(isTerminal({ ...completed, status: undefined } as never)).toBe(false);
    expect(isTerminal(undefined)).toBe(false);
  });
});
