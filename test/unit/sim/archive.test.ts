import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { createReadStream } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { createWriteStream } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as tar from "tar-stream";
import {
  readCheckpointArchive,
  STATE_FILE,
  writeCheckpointArchive,
  type CheckpointParts,
} from "../../../sim/archive.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ms2m-sim-archive-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const parts = (): CheckpointParts => ({
  config: {
    id: "abc",
    name: "k8s_c_p_ns_uid_0",
    rootfsImage: "docker.io/x/y:1",
    rootfsImageRef: "sha256:00",
    rootfsImageName: "docker.io/x/y:1",
    runtime: "ms2m-sim",
    createdTime: "2026-01-01T00:00:00Z",
    checkpointedTime: "2026-01-01T00:00:01Z",
    restoredTime: "0001-01-01T00:00:00Z",
    restored: false,
  },
  spec: {
    ociVersion: "1.0.2",
    process: { args: ["node", "app.ts"], env: ["A=1"], cwd: "/" },
    hostname: "p",
    mounts: [{ destination: "/etc/podinfo", type: "bind", source: "/n/podinfo", options: ["rbind", "rw"] }],
    annotations: { "io.kubernetes.pod.name": "p" },
  },
  state: Buffer.from([0, 1, 2, 255]),
  log: "dumped\n",
  stats: { freezingTimeUs: 1, frozenTimeUs: 2, memdumpTimeUs: 3, pagesWritten: 1 },
});

async function entries(path: string): Promise<Map<string, { mode?: number | undefined }>> {
  const out = new Map<string, { mode?: number | undefined }>();
  const extract = tar.extract();
  const reading = (async () => {
    for await (const e of extract) {
      out.set(e.header.name, e.header);
      e.resume();
    }
  })();
  await Promise.all([pipeline(createReadStream(path), extract), reading]);
  return out;
}

describe("CRI-O checkpoint archive", () => {
  it("writes the checkpointctl file names, mode 0600, and reads back what restore needs", async () => {
    const path = join(dir, "a.tar");
    await writeCheckpointArchive(path, parts());
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const names = await entries(path);
    for (const n of [
      STATE_FILE,
      "config.dump",
      "spec.dump",
      "bind.mounts",
      "rootfs-diff.tar",
      "deleted.files",
      "stats-dump",
      "dump.log",
    ]) {
      expect(names.get(n)?.mode, n).toBe(0o600);
    }
    const back = await readCheckpointArchive(path);
    expect(back.state).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(back.spec.mounts[0]?.destination).toBe("/etc/podinfo");
    expect(back.config.rootfsImageName).toBe("docker.io/x/y:1");
  });

  it("replaces an archive of the same name atomically, leaving no partial file", async () => {
    const path = join(dir, "b.tar");
    await writeCheckpointArchive(path, parts());
    await writeCheckpointArchive(path, parts()); // same name again: replaced atomically
    expect((await entries(path)).has(STATE_FILE)).toBe(true);
    expect((await readdir(dir)).filter((f) => f.startsWith("b.tar"))).toEqual(["b.tar"]);
  });

  it("reads a gzip-compressed copy (a layer copied out of containers-storage)", async () => {
    const plain = join(dir, "c.tar");
    const gz = join(dir, "c.tar.gz");
    await writeCheckpointArchive(plain, parts());
    await pipeline(createReadStream(plain), createGzip(), createWriteStream(gz));
    expect((await readCheckpointArchive(gz)).state).toEqual(Buffer.from([0, 1, 2, 255]));
  });

  it("fails clearly when a required part is missing", async () => {
    const path = join(dir, "d.tar");
    const pack = tar.pack();
    pack.entry({ name: "config.dump" }, "{}");
    pack.finalize();
    await pipeline(pack, createWriteStream(path));
    await expect(readCheckpointArchive(path)).rejects.toThrow(/spec.dump/);
  });
});
