// The kubelet's time in a checkpoint archive name (archiveTimestamp) and the cleanup Job's choice
// of the archives in a time window (archivesInWindow, src/agent/jobs/cleanup.ts): a node-proxy
// checkpoint whose answer was lost is found only by name and time, so nothing of another
// pod/container or outside the window may match. The window's request schema bounds it.
import { describe, expect, it } from "vitest";
import { archivesInWindow } from "../../../src/agent/jobs/cleanup.ts";
import { archiveTimestamp } from "../../../src/checkpoint/kubelet-archives.ts";
import { cleanupRequestSchema } from "../../../src/transfer/job.ts";

const ids = { namespace: "shop", pod: "web-0", container: "app" };
const named = (time: string, c = "app", pod = "web-0", ns = "shop") =>
  `checkpoint-${pod}_${ns}-${c}-${time}.tar`;

describe("archiveTimestamp", () => {
  it.each([
    ["2025-01-02T03:04:05Z", "2025-01-02T03:04:05.000Z"],
    ["2025-01-02T04:04:05+01:00", "2025-01-02T03:04:05.000Z"], // Go's RFC3339 in a local zone
    ["2025-01-01T22:34:05-04:30", "2025-01-02T03:04:05.000Z"],
    ["2025-01-02T08:49:05+0545", "2025-01-02T03:04:05.000Z"], // the pattern allows ±hhmm too
    ["2025-01-02T03:04:05.25Z", "2025-01-02T03:04:05.250Z"],
    ["2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z"],
  ])("reads %s", (time, utc) => {
    expect(new Date(archiveTimestamp(named(time), ids)!).toISOString()).toBe(utc);
  });

  it.each([
    ["another container", named("2025-01-02T03:04:05Z", "side")],
    ["a container whose name extends ours", named("2025-01-02T03:04:05Z", "app-2")],
    ["another pod", named("2025-01-02T03:04:05Z", "app", "web-1")],
    ["another namespace", named("2025-01-02T03:04:05Z", "app", "web-0", "shop2")],
    ["a compressed archive", `${named("2025-01-02T03:04:05Z")}.gz`],
    ["a time without seconds", named("2025-01-02T03:04Z")],
    ["a time of colons only", named("2025-01-02T::::Z")],
    ["month 13", named("2025-13-02T03:04:05Z")],
    ["31 February", named("2025-02-31T03:04:05Z")],
    ["29 February of a common year", named("2025-02-29T03:04:05Z")],
    ["hour 24", named("2025-01-02T24:04:05Z")],
    ["second 60", named("2025-01-02T03:04:60Z")],
    ["an offset of 24 h", named("2025-01-02T03:04:05+24:00")],
    ["a year before 1970", named("0099-01-02T03:04:05Z")],
  ])("refuses %s", (_, name) => {
    expect(archiveTimestamp(name, ids)).toBeUndefined();
  });
});

describe("archivesInWindow", () => {
  const window = { container: "app", from: "2025-01-02T03:00:00Z", to: "2025-01-02T03:02:00Z" };
  it("keeps only archives of exactly this namespace/pod/container stamped within [from, to], sorted", () => {
    const names = [
      named("2025-01-02T03:02:00Z"), // the end, inclusive
      named("2025-01-02T03:01:00Z"),
      named("2025-01-02T03:00:00Z"), // the start, inclusive
      named("2025-01-02T04:01:30+01:00"), // 03:01:30 UTC
      named("2025-01-02T02:59:59Z"), // a second early
      named("2025-01-02T03:02:01Z"), // a second late
      named("2025-01-02T04:01:00Z"), // 03:01 local, 04:01 UTC
      named("2025-01-02T03:01:00Z", "side"),
      named("2025-01-02T03:01:00Z", "app", "web-1"),
      named("2025-01-02T03:01:00Z", "app", "web-0", "other"),
      `${named("2025-01-02T03:01:00Z")}.partial`,
      "checkpoint-web-0_shop-app-latest.tar",
      "notes.txt",
    ];
    expect(archivesInWindow(names, { namespace: "shop", pod: "web-0" }, window)).toEqual([
      named("2025-01-02T03:00:00Z"),
      named("2025-01-02T03:01:00Z"),
      named("2025-01-02T03:02:00Z"),
      named("2025-01-02T04:01:30+01:00"),
    ]);
  });

  it("finds nothing in an empty folder or one of other checkpoints", () => {
    expect(archivesInWindow([], { namespace: "shop", pod: "web-0" }, window)).toEqual([]);
    expect(
      archivesInWindow(
        [named("2025-01-02T03:01:00Z")],
        { namespace: "shop", pod: "web-0" },
        {
          ...window,
          container: "db",
        },
      ),
    ).toEqual([]);
  });
});

describe("cleanupRequestSchema archiveWindows", () => {
  const base = { migration: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", namespace: "shop", pod: "web-0" };
  const w = {
    container: "app",
    from: "2025-01-02T03:00:00.000Z",
    to: "2025-01-02T03:02:00.000Z",
    settleUntil: "2025-01-02T03:04:00.000Z",
  };
  const parse = (archiveWindows: unknown) => cleanupRequestSchema.safeParse({ ...base, archiveWindows });

  it("accepts a window and defaults to none", () => {
    expect(parse([w]).data?.archiveWindows).toEqual([w]);
    expect(parse([{ ...w, to: w.from, settleUntil: w.from }]).success).toBe(true);
    expect(cleanupRequestSchema.parse(base).archiveWindows).toEqual([]);
  });

  it.each([
    ["from after to", { from: "2025-01-02T03:03:00Z" }],
    ["a window of more than 6 h", { to: "2025-01-02T09:00:01Z", settleUntil: "2025-01-02T09:00:01Z" }],
    ["settleUntil before to", { settleUntil: "2025-01-02T03:01:00Z" }],
    ["settleUntil more than 15 min after to", { settleUntil: "2025-01-02T03:17:01Z" }],
    ["a time that is not RFC 3339", { from: "yesterday" }],
    ["a date without time", { from: "2025-01-02" }],
    ["a bad container", { container: "../app" }],
    ["an unknown field", { path: "/etc" }],
  ])("rejects %s", (_, patch) => {
    expect(parse([{ ...w, ...patch }]).success).toBe(false);
  });

  it("rejects more than 16 windows", () => {
    expect(parse(Array.from({ length: 16 }, () => w)).success).toBe(true);
    expect(parse(Array.from({ length: 17 }, () => w)).success).toBe(false);
  });
});
