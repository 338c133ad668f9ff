import { describe, expect, it } from "vitest";
import { Progress } from "../../../src/cli/progress.ts";
import { at, completed, failed, timings } from "./fixtures.ts";
import { recordingIo } from "./io.ts";
import type { StatefulMigration } from "../../../src/api/v1alpha1/statefulmigration.ts";

const running = (phase: string, lengths: [string, number][]): StatefulMigration =>
  ({
    ...completed,
    status: { phase, phaseTimings: timings(lengths, true) },
  }) as never;

describe("Progress, not on a terminal (pipes, CI logs)", () => {
  it("one line per phase as it starts, timed from the first phase, then how it ended", () => {
    const io = recordingIo();
    const p = new Progress(io, Date.parse(at(0)));
    p.update({ ...completed, status: undefined } as never);
    p.update(running("Pending", [["Pending", 50]]));
    p.update(running("Pending", [["Pending", 60]]));
    p.update(
      running("Checkpointing", [
        ["Pending", 50],
        ["Checkpointing", 300],
      ]),
    );
    p.update(completed);
    p.update(completed);
    expect(io.stdout).toBe(
      [
        "[   0.0 s] Pending",
        "[   0.1 s] Checkpointing",
        "[   0.3 s] Transferring",
        "[   0.6 s] Restoring",
        "[   0.9 s] Replaying",
        "[   1.3 s] Finalizing",
        "[   2.1 s] Completed",
        "",
      ].join("\n"),
    );
  });

  it("a failure ends with Failed", () => {
    const io = recordingIo();
    new Progress(io, Date.parse(at(0))).update(failed);
    expect(io.stdout.split("\n").at(-2)).toBe("[   1.4 s] Failed");
  });
});

describe("Progress on a terminal", () => {
  it("redraws one line per phase in place: done, running with its clock, to come", () => {
    const io = recordingIo({ tty: true, now: () => Date.parse(at(1_000)) });
    const p = new Progress(io, Date.parse(at(0)));
    p.update(
      running("Checkpointing", [
        ["Pending", 50],
        ["Checkpointing", 0],
      ]),
    );
    const first = io.stdout;
    expect(first.startsWith("\x1b[2K")).toBe(true);
    expect(first.split("\n").map((l) => l.replace("\x1b[2K", ""))).toEqual([
      "  ✓ Pending         0.050 s",
      expect.stringMatching(/^ {2}[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] Checkpointing {3}0\.850 s$/),
      "  · Transferring  ",
      "  · Restoring     ",
      "  · Replaying     ",
      "  · Finalizing    ",
      "",
    ]);
    p.update(failed);
    const second = io.stdout.slice(first.length);
    // Back up over the six lines drawn before.
    expect(second.startsWith("\x1b[6A")).toBe(true);
    expect(second.split("\x1b[2K")).toContainEqual(expect.stringMatching(/^ {2}✗ Transferring +1\.000 s\n$/));
  });
});
