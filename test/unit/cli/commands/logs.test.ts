import { describe, expect, it } from "vitest";
import { controllerLines } from "../../../../src/cli/commands/logs.ts";

const line = (o: object) => JSON.stringify({ level: 30, time: 1767225600000, pid: 1, hostname: "h", ...o });

describe("controllerLines: the controller's log lines about one migration", () => {
  const log = [
    "not json",
    "{broken",
    line({ migration: "shop/m", uid: "u-1", msg: "phase change", from: "Pending", to: "Checkpointing" }),
    line({ migration: "shop/m", uid: "u-0", msg: "an earlier migration of the same name" }),
    line({ migration: "shop/other", uid: "u-2", msg: "another migration" }),
    line({ migration: "shop/m", level: 50, msg: "no uid on this line", err: { message: "boom" } }),
    line({ msg: "not about a migration" }),
    "",
  ].join("\n");

  it("picks lines by migration and uid, keeps their own fields, names the level", () => {
    expect(controllerLines(log, "ms2m-controller-1", "shop/m", "u-1")).toEqual([
      {
        time: "2026-01-01T00:00:00.000Z",
        source: "controller",
        level: "info",
        origin: "ms2m-controller-1",
        message: "phase change",
        fields: { from: "Pending", to: "Checkpointing" },
      },
      {
        time: "2026-01-01T00:00:00.000Z",
        source: "controller",
        level: "error",
        origin: "ms2m-controller-1",
        message: "no uid on this line",
        fields: { err: { message: "boom" } },
      },
    ]);
  });

  it("without a uid (the migration is gone), every line of that name", () => {
    expect(controllerLines(log, "p", "shop/m", undefined).map((l) => l.message)).toEqual([
      "phase change",
      "an earlier migration of the same name",
      "no uid on this line",
    ]);
  });
});
