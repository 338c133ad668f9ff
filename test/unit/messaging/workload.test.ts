import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { account, parseProducerLog } from "../../../workload/accounting.ts";
import { LineLog } from "../../../workload/line-log.ts";
import { AppState, fromRanges, toRanges } from "../../../workload/state.ts";

describe("workload state and accounting", () => {
  it("reports lost and twice-applied sequence numbers exactly (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 400 }),
        (published, appliedSeqs) => {
          const state = new AppState();
          for (const s of appliedSeqs) state.apply(s);
          const pub = Array.from({ length: published }, (_, i) => i + 1);
          const report = account(pub, AppState.from(state.toJSON()).toJSON());
          const applied = new Set(appliedSeqs);
          expect(report.lost).toEqual(pub.filter((s) => !applied.has(s)));
          expect(report.appliedTwice.length).toBe(appliedSeqs.length - applied.size);
          expect(report.checksumOk).toBe(true);
          expect(report.ok).toBe(report.lost.length === 0 && report.appliedTwice.length === 0);
        },
      ),
    );
  });

  it("detects a state whose checksum does not match what it claims", () => {
    const state = new AppState();
    state.apply(1);
    expect(account([1], { ...state.toJSON(), checksum: 7 }).checksumOk).toBe(false);
  });

  it("compresses applied sequence numbers into ranges", () => {
    expect(toRanges([5, 1, 2, 3, 7, 2])).toEqual([
      [1, 3],
      [5, 5],
      [7, 7],
    ]);
    expect(fromRanges([[1, 3]])).toEqual([1, 2, 3]);
    expect(parseProducerLog("1\n2\n\n3\n")).toEqual([1, 2, 3]);
  });
});

describe("LineLog", () => {
  it("appends, switches files while lines keep coming, and flushes every file on close", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ms2m-linelog-"));
    const errors: string[] = [];
    const log = new LineLog((err) => errors.push(err.message)).open(join(dir, "a.applied"));
    log.write("1 1\n");
    log.open(join(dir, "a.applied")); // same file: a no-op, nothing reordered
    log.write("2 2\n");
    log.open(join(dir, "b.applied"));
    log.write("3 3\n");
    await log.close();
    log.write("4 4\n"); // closed: dropped, no throw
    expect(readFileSync(join(dir, "a.applied"), "utf8")).toBe("1 1\n2 2\n");
    expect(readFileSync(join(dir, "b.applied"), "utf8")).toBe("3 3\n");
    expect(errors).toEqual([]);
  });

  it("reports a file it cannot write instead of throwing", async () => {
    const errors: string[] = [];
    const log = new LineLog((_err, path) => errors.push(path)).open("/nonexistent-dir/x.applied");
    log.write("1 1\n");
    await log.close();
    expect(errors).toEqual(["/nonexistent-dir/x.applied"]);
  });
});
