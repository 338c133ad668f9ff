import { describe, expect, it } from "vitest";
import {
  addedLine,
  breakdown,
  externalMs,
  percentiles,
  summarize,
  table,
  type ExternalMs,
} from "../../../../bench/latency/breakdown.ts";

const PHASES = {
  Pending: 10,
  Checkpointing: 150,
  Transferring: 120,
  Restoring: 200,
  Replaying: 250,
  Finalizing: 300,
};
const EXT: ExternalMs = { checkpoint: 90, transfer: 70, podStart: 0, replay: 250 };
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe("breakdown", () => {
  it("splits each phase into external and controller time that add up to the total", () => {
    const b = breakdown(PHASES, EXT);
    expect(b.total).toBe(1030);
    expect(b.external).toBe(410);
    expect(b.added).toBe(620);
    expect(b.phases.Checkpointing).toEqual({ total: 150, external: 90, controller: 60 });
    expect(b.phases.Transferring).toEqual({ total: 120, external: 70, controller: 50 });
    expect(b.phases.Replaying).toEqual({ total: 250, external: 250, controller: 0 });
    expect(b.phases.Finalizing).toEqual({ total: 300, external: 0, controller: 300 });
    const parts = Object.values(b.phases);
    expect(sum(parts.map((p) => p.total))).toBe(b.total);
    expect(sum(parts.map((p) => p.external))).toBe(b.external);
    expect(sum(parts.map((p) => p.controller))).toBe(b.added);
    for (const p of parts) expect(p.external + p.controller).toBe(p.total);
  });

  it("keeps external time of a phase the migration did not record, so the parts still add up", () => {
    const { Transferring: _, ...noTransfer } = PHASES;
    const b = breakdown(noTransfer, EXT);
    expect(b.phases.Transferring).toEqual({ total: 0, external: 70, controller: -70 });
    expect(sum(Object.values(b.phases).map((p) => p.controller))).toBe(b.added);
    expect(b.added).toBe(b.total - b.external);
  });

  it("derives the external time from the agents' seconds, the simulated pod start and Replaying", () => {
    const lat = {
      imagePullMs: 700,
      containerStartMs: 300,
      readinessMs: 100,
      restoreMs: 50,
      checkpointMs: 40,
    };
    expect(externalMs({ checkpoint: 0.0904, send: 0.0696 }, lat, PHASES)).toEqual({
      checkpoint: 90,
      transfer: 70,
      podStart: 450,
      replay: 250,
    });
  });
});

describe("percentiles", () => {
  it("interpolates the median and p95 of unsorted values", () => {
    const xs = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20];
    expect(percentiles(xs)).toEqual({ p50: 10.5, p95: 19.05 });
    expect(percentiles([42])).toEqual({ p50: 42, p95: 42 });
    expect(percentiles([1, 100])).toEqual({ p50: 50.5, p95: 95.05 });
  });

  it("summarizes per phase and the whole migration, ending with the added line", () => {
    const runs = [100, 200, 300].map((f) => breakdown({ ...PHASES, Finalizing: f }, EXT));
    const s = summarize(runs);
    expect(s.n).toBe(3);
    const fin = s.rows.find((r) => r.phase === "Finalizing");
    expect(fin?.total).toEqual({ p50: 200, p95: 290 });
    expect(fin?.controller).toEqual({ p50: 200, p95: 290 });
    expect(fin?.external).toEqual({ p50: 0, p95: 0 });
    // added = 1030 − 300 + f − 410 = 320 + f
    expect(s.added).toEqual({ p50: 520, p95: 610 });
    expect(s.rows.at(-1)).toMatchObject({ phase: "migration", controller: s.added });
    expect(addedLine(s)).toBe("controller-added p50 520 ms p95 610 ms");
    expect(table(s).split("\n")).toHaveLength(2 + 6 + 1);
  });
});
