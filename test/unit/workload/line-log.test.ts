import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";
import { LineLog } from "../../../workload/line-log.ts";

describe("LineLog", () => {
  it("appends, switches files while lines keep coming, and flushes every file on close", async () => {
    const dir = tempDir("linelog");
    onTestFinished(() => removeTempDir(dir));
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
