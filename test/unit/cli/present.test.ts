import { describe, expect, it } from "vitest";
import {
  bytes,
  details,
  listTable,
  route,
  summary,
  timingMillis,
  timingsTable,
  totalMillis,
} from "../../../src/cli/present.ts";
import { at, completed, failed, timings } from "./fixtures.ts";

const plain = { color: false };
const now = Date.parse("2026-01-01T00:01:00Z");

describe("listTable", () => {
  it("the columns of kubectl get smig, with NAMESPACE first for -A", () => {
    expect(listTable([completed, failed], now, false)).toBe(
      [
        "NAME                 PHASE       STRATEGY    MODE     SOURCE         TARGET   DURATION   AGE",
        "consumer-to-node-b   Completed   ShadowPod   Direct   consumer-abc   node-b   2.130s     60s",
        "consumer-to-node-c   Failed      ShadowPod   Direct   consumer-abc   node-c              60s",
        "",
      ].join("\n"),
    );
    expect(listTable([completed], now, true).split("\n")[1]).toMatch(
      /^shop {8}consumer-to-node-b {3}Completed/,
    );
  });

  it("a migration the controller has not seen yet", () => {
    const fresh = { ...completed, status: undefined, spec: { ...completed.spec, targetNode: undefined } };
    expect(listTable([fresh as never], now, false).split("\n")[1]).toMatch(
      /^consumer-to-node-b {29}consumer-abc {23}60s$/,
    );
  });
});

describe("timings", () => {
  it("a phase's length: durationMillis, else end - start, else until now while it runs", () => {
    expect(timingMillis({ phase: "Pending", startTime: at(0), durationMillis: 7 }, now)).toBe(7);
    expect(timingMillis({ phase: "Pending", startTime: at(0), endTime: at(250) }, now)).toBe(250);
    expect(timingMillis({ phase: "Pending", startTime: at(59_000) }, now)).toBe(1000);
  });

  it("the total: startTime to completionTime, else to now, else the phases' sum", () => {
    expect(totalMillis(completed, now)).toBe(2130);
    expect(
      totalMillis({ ...completed, status: { ...completed.status!, completionTime: undefined } }, now),
    ).toBe(59_900);
    expect(
      totalMillis(
        {
          ...completed,
          status: {
            phaseTimings: timings([
              ["Pending", 10],
              ["Checkpointing", 20],
            ]),
          },
        } as never,
        now,
      ),
    ).toBe(30);
  });

  it("the table: each phase with a bar, the total and status.duration", () => {
    expect(timingsTable(plain, completed, now)).toBe(
      [
        "  PHASE              DURATION",
        "  Pending           0.050 s   ██",
        "  Checkpointing     0.300 s   ███████████",
        "  Transferring      0.280 s   ███████████",
        "  Restoring         0.300 s   ███████████",
        "  Replaying         0.400 s   ███████████████",
        "  Finalizing        0.800 s   ██████████████████████████████",
        "  total             2.130 s   (status.duration 2.130s)",
        "",
      ].join("\n"),
    );
    expect(timingsTable(plain, { ...completed, status: {} } as never, now)).toBe("  (no phase timings)\n");
  });

  it("with the controller's timeline: its own share of each phase", () => {
    const withOwn = structuredClone(completed);
    withOwn.status!.phaseTimings!.forEach((t, i) => {
      t.breakdown = { controllerMillis: 10 * (i + 1), externalMillis: 0, apiCalls: 1 };
    });
    const lines = timingsTable(plain, withOwn, now).split("\n");
    expect(lines[0]).toMatch(/^ {2}PHASE +DURATION +CONTROLLER$/);
    expect(lines[1]).toMatch(/^ {2}Pending +0\.050 s +10 ms +█/);
    expect(lines[7]).toMatch(/^ {2}total +2\.130 s +210 ms +\(status\.duration 2\.130s\)$/);
  });
});

describe("bytes", () => {
  it.each([
    [512, "512 B"],
    [1536, "1.5 KiB"],
    [64_277_299, "61.3 MiB"],
  ])("%d → %s", (n, text) => expect(bytes(n)).toBe(text));
});

describe("summary and details", () => {
  it("route: node/pod -> node/pod, ? for what is not known yet", () => {
    expect(route(completed)).toBe("node-a/consumer-abc -> node-b/consumer-abc-ms2m-1");
    expect(route({ ...completed, status: undefined } as never)).toBe("?/consumer-abc -> node-b/?");
  });

  it("a completed migration: phase, strategy, route, replay, timings", () => {
    const text = summary(plain, completed, now);
    expect(text).toMatch(
      /^shop\/consumer-to-node-b: Completed \(ShadowPod, Direct\)\n {2}node-a\/consumer-abc -> node-b\/consumer-abc-ms2m-1\n {2}replay: 12 messages replayed\n\n {2}PHASE/,
    );
  });

  it("a failed one: where, why, and whether it was rolled back", () => {
    const text = summary(plain, failed, now);
    expect(text).toContain("shop/consumer-to-node-c: Failed (ShadowPod, Direct)\n");
    expect(text).toContain("  failed in Transferring: TransferFailed: agent on node-c unreachable\n");
    expect(text).toContain("  rolled back: yes (SourceKept)\n");
  });

  it("colours the phase on a terminal", () => {
    expect(summary({ color: true }, completed, now)).toContain("\x1b[32mCompleted\x1b[0m");
    expect(summary({ color: true }, failed, now)).toContain("\x1b[31mFailed\x1b[0m");
  });

  it("details add the conditions and the containers' checkpoints", () => {
    const text = details(plain, completed, now);
    expect(text.startsWith(summary(plain, completed, now))).toBe(true);
    expect(text).toContain(
      [
        "  CONDITION   STATUS   REASON      AGE   MESSAGE",
        "  Ready       True     Completed   57s   the target serves",
        "",
        "  CONTAINER   CHECKPOINT            SIZE      VIA     IMAGE",
        "  consumer    sha256:0123456789ab   1.5 KiB   Agent",
        "",
      ].join("\n"),
    );
  });
});
