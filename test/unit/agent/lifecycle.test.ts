// Whose checkpoint an image is: the annotations the agents write and read, the pull's check, and
// the records' age the sweeps measure from.
import { describe, expect, it } from "vitest";
import {
  CHECKPOINT_NAME_ANNOTATION,
  MIGRATION_UID_ANNOTATION,
  WORKLOAD_UID_ANNOTATION,
  describeCheckpointImage,
  originAnnotations,
  originOf,
} from "../../../src/checkpoint/image.ts";
import { parseCheckpointManifest } from "../../../src/checkpoint/registry.ts";
import { checkPulledOrigin } from "../../../src/agent/handlers/pull.ts";
import { CheckpointRecords } from "../../../src/agent/records.ts";
import { workloadRefSchema } from "../../../src/transfer/types.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";

const M = "6f1c2a9e-1d2b-4c3d-8e4f-000000000001";
const W = "0a0b0c0d-0000-4000-8000-00000000aaaa";
const archive = { digest: `sha256:${"b".repeat(64)}`, size: 4096 };

describe("image origin annotations", () => {
  it("go on the manifest and the config's labels, deterministically, and are read back", () => {
    const a = describeCheckpointImage(archive, "app", undefined, { migrationUid: M, workloadUid: W });
    const b = describeCheckpointImage(archive, "app", undefined, { migrationUid: M, workloadUid: W });
    expect(a.manifest.bytes.equals(b.manifest.bytes)).toBe(true);
    const manifest = JSON.parse(a.manifest.bytes.toString()) as { annotations: Record<string, string> };
    expect(manifest.annotations).toEqual({
      [CHECKPOINT_NAME_ANNOTATION]: "app",
      [MIGRATION_UID_ANNOTATION]: M,
      [WORKLOAD_UID_ANNOTATION]: W,
    });
    const config = JSON.parse(a.config.bytes.toString()) as { config: { Labels: Record<string, string> } };
    expect(config.config.Labels[WORKLOAD_UID_ANNOTATION]).toBe(W);
    expect(parseCheckpointManifest(manifest).origin).toEqual({ migrationUid: M, workloadUid: W });
    // Without an origin the image is what it always was.
    const plain = JSON.parse(describeCheckpointImage(archive, "app").manifest.bytes.toString()) as {
      annotations: Record<string, string>;
    };
    expect(plain.annotations).toEqual({ [CHECKPOINT_NAME_ANNOTATION]: "app" });
  });

  it("only UID-shaped values are written or believed", () => {
    expect(originAnnotations({ migrationUid: "my.migration", workloadUid: W })).toEqual({
      [WORKLOAD_UID_ANNOTATION]: W,
    });
    expect(originOf({ [MIGRATION_UID_ANNOTATION]: "../x", [WORKLOAD_UID_ANNOTATION]: 5 })).toEqual({});
    expect(() => workloadRefSchema.parse({ kind: "StatefulSet", name: "web", uid: "Not A UID" })).toThrow();
  });
});

describe("checkPulledOrigin", () => {
  const pull = {
    migration: M,
    source: "registry.test/ckpt:t",
    image: "localhost/ckpt:t",
    workload: { kind: "StatefulSet", name: "web", uid: W },
  };
  it("passes the same migration and incarnation, and images without annotations", () => {
    expect(() => checkPulledOrigin(pull, { migrationUid: M, workloadUid: W })).not.toThrow();
    expect(() => checkPulledOrigin(pull, {})).not.toThrow();
  });
  it("refuses another incarnation and another migration, for good (403, not retried)", () => {
    expect(() => checkPulledOrigin(pull, { migrationUid: M, workloadUid: "other-uid" })).toThrow(
      expect.objectContaining({ reason: "Forbidden", retriable: false }),
    );
    expect(() => checkPulledOrigin(pull, { migrationUid: "m-other", workloadUid: W })).toThrow(
      "belongs to migration m-other",
    );
  });
  it("a pull that names no workload is not checked (tools, older controllers)", () => {
    const { workload: _w, ...bare } = pull;
    expect(() => checkPulledOrigin(bare, { migrationUid: "m-other", workloadUid: "x" })).not.toThrow();
  });
});

describe("CheckpointRecords.newest", () => {
  it("is the newest record or loaded image; expired() compares it with the TTL", async () => {
    const dir = tempDir("records");
    try {
      const records = new CheckpointRecords(dir, dir);
      await records.init();
      const t0 = Date.parse("2026-12-01T00:00:00Z");
      await records.put({
        migration: M,
        namespace: "default",
        pod: "web-0",
        container: "app",
        state: "Done",
        createdAt: new Date(t0).toISOString(),
        updatedAt: new Date(t0 + 1000).toISOString(),
        workload: { kind: "StatefulSet", name: "web", uid: W },
      });
      await records.putLoaded({
        migration: M,
        container: "side",
        image: "localhost/x:y",
        via: "receive",
        createdAt: new Date(t0 + 5000).toISOString(),
        workloadUid: W,
      });
      expect(await records.newest(M)).toBe(t0 + 5000);
      expect(await records.expired(10_000, t0 + 14_999)).toEqual([]);
      expect(await records.expired(10_000, t0 + 15_000)).toEqual([M]);
      expect((await records.get(M, "app"))?.workload?.uid).toBe(W);
    } finally {
      await removeTempDir(dir);
    }
  });
});
