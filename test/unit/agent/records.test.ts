import { existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CheckpointRecords, type CheckpointRecord } from "../../../src/agent/records.ts";

let root: string;
let records: CheckpointRecords;
const checkpoints = () => join(root, "checkpoints");

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), "ms2m-records-"));
  records = new CheckpointRecords(join(root, "work"), checkpoints());
  await records.init();
  writeFileSync(join(root, "keep"), "");
  await import("node:fs/promises").then((fs) => fs.mkdir(checkpoints()));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const rec = (over: Partial<CheckpointRecord> = {}): CheckpointRecord => ({
  migration: "0b6f-uid",
  namespace: "default",
  pod: "web-0",
  container: "app",
  state: "Done",
  archive: "checkpoint-web-0_default-app-2025-01-01T00:00:00Z.tar",
  digest: `sha256:${"a".repeat(64)}`,
  size: 10,
  createdAt: new Date().toISOString(),
  ...over,
});

describe("CheckpointRecords", () => {
  it("writes records atomically, 0600 in 0700 folders, and reads them back", async () => {
    await records.put(rec());
    await records.put(rec({ size: 11 }));
    expect(await records.get("0b6f-uid", "app")).toMatchObject({ size: 11 });
    const dir = join(root, "work", "records", "0b6f-uid");
    expect(readdirSync(dir)).toEqual(["app.json"]); // no temp files left
    expect(statSync(join(dir, "app.json")).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(await records.get("0b6f-uid", "other")).toBeUndefined();
    expect(await records.get("nope", "app")).toBeUndefined();
  });

  it("refuses names that are not DNS names (no path tricks)", async () => {
    for (const [m, c] of [
      ["..", "app"],
      ["a/b", "app"],
      ["ok", "../x"],
      ["a..b", "app"],
      ["Upper", "app"],
    ] as const) {
      await expect(records.get(m, c)).rejects.toMatchObject({ reason: "BadRequest" });
    }
    await expect(records.put(rec({ container: "x/y" }))).rejects.toMatchObject({ reason: "BadRequest" });
  });

  it("an unreadable record is treated as absent", async () => {
    await records.put(rec());
    writeFileSync(join(root, "work", "records", "0b6f-uid", "app.json"), "{torn");
    expect(await records.get("0b6f-uid", "app")).toBeUndefined();
  });

  it("release removes the records and the archives they name, only inside the checkpoints folder; idempotent", async () => {
    const archive = rec().archive!;
    writeFileSync(join(checkpoints(), archive), "x");
    await records.put(rec());
    await records.put(rec({ container: "side", archive: "../keep" }));
    expect((await records.claimedArchives()).has(archive)).toBe(true);
    const out = await records.release("0b6f-uid");
    expect(out.records).toHaveLength(2);
    expect(out.archives).toBe(1);
    expect(existsSync(join(checkpoints(), archive))).toBe(false);
    expect(existsSync(join(root, "keep"))).toBe(true);
    expect(await records.list("0b6f-uid")).toEqual([]);
    expect((await records.release("0b6f-uid")).records).toEqual([]);
  });

  it("expired: migrations whose newest record is older than the TTL", async () => {
    const now = Date.now();
    const old = new Date(now - 7200_000).toISOString();
    await records.put(rec({ migration: "old", createdAt: old }));
    await records.put(rec({ migration: "mixed", createdAt: old }));
    await records.put(
      rec({ migration: "mixed", container: "b", createdAt: old, updatedAt: new Date(now).toISOString() }),
    );
    await records.put(rec({ migration: "new" }));
    expect((await records.expired(3600_000, now)).sort()).toEqual(["old"]);
    expect((await records.expired(3600_000, now + 7200_000)).sort()).toEqual(["mixed", "new", "old"]);
  });
});
