import { describe, expect, it } from "vitest";
import { age, bar, paint, seconds, table, visibleLength } from "../../../src/cli/output.ts";

describe("table", () => {
  it("aligns columns as kubectl get does: three spaces, the last column unpadded", () => {
    expect(
      table(
        ["NAME", "PHASE", "AGE"],
        [
          ["a", "Completed", "5s"],
          ["longer-name", "", "2m"],
        ],
      ),
    ).toBe(
      [
        "NAME          PHASE       AGE",
        "a             Completed   5s",
        "longer-name               2m",
        "",
      ].join("\n"),
    );
  });

  it("measures cells without their colour codes", () => {
    const red = paint({ color: true }, "red", "Failed");
    expect(red).toBe("\x1b[31mFailed\x1b[0m");
    expect(visibleLength(red)).toBe(6);
    expect(table(["PHASE", "X"], [[red, "1"]])).toBe(`PHASE    X\n${red}   1\n`);
  });
});

describe("paint", () => {
  it("colours only when asked", () => {
    expect(paint({ color: false }, "green", "ok")).toBe("ok");
    expect(paint({ color: true }, "bold", "ok")).toBe("\x1b[1mok\x1b[0m");
  });
});

describe("seconds", () => {
  it.each([
    [47, "0.047 s"],
    [2130, "2.130 s"],
    [59_999, "59.999 s"],
    [75_400, "75.4 s"],
  ])("%d ms → %s", (ms, text) => expect(seconds(ms)).toBe(text));
});

describe("age", () => {
  const now = Date.parse("2026-01-01T12:00:00Z");
  it.each([
    ["2026-01-01T11:59:18Z", "42s"],
    ["2026-01-01T11:58:01Z", "119s"],
    ["2026-01-01T11:55:00Z", "5m"],
    ["2026-01-01T09:00:00Z", "3h"],
    ["2025-12-28T12:00:00Z", "4d"],
    ["2026-01-01T12:00:05Z", "0s"],
  ])("%s → %s", (from, text) => expect(age(from, now)).toBe(text));
  it("nothing for no time", () => expect(age(undefined, now)).toBe(""));
});

describe("bar", () => {
  it("scales to the largest value, at least one cell", () => {
    expect(bar(10, 10, 5)).toBe("█████");
    expect(bar(5, 10, 4)).toBe("██");
    expect(bar(0.001, 10, 4)).toBe("█");
    expect(bar(1, 0)).toBe("");
  });
});
