// A CRI-O-shaped checkpoint archive of a chosen size, for the node simulator, tests and the
// benchmark: the files checkpointctl expects, laid out as layout.ts requires (config.dump and
// spec.dump as CRI-O reads them, CRIU-headed inventory/pstree/core images), with the bulk in
// checkpoint/pages-1.img.
import { randomFillSync } from "node:crypto";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import tarStream from "tar-stream";
import { CRIO_ANNOTATIONS, CRIU_MAGIC } from "./layout.ts";

/** A CRIU image file's head: its magics (little endian) and a few payload bytes. */
export function criuImage(...magics: number[]): Buffer {
  const b = Buffer.alloc(4 * magics.length + 8);
  magics.forEach((m, i) => b.writeUInt32LE(m, 4 * i));
  return b;
}

/** The small files of a valid checkpoint archive (everything but the memory pages), in order. */
export function checkpointArchiveFiles(containerName = "app"): [string, Buffer][] {
  const annotations = {
    "io.kubernetes.container.name": containerName,
    "io.kubernetes.pod.name": "pod",
    "io.kubernetes.pod.namespace": "default",
  };
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  return [
    ["checkpoint/inventory.img", criuImage(CRIU_MAGIC.inventory)],
    ["checkpoint/pstree.img", criuImage(CRIU_MAGIC.common, CRIU_MAGIC.pstree)],
    ["checkpoint/core-1.img", criuImage(CRIU_MAGIC.common, CRIU_MAGIC.core)],
    [
      "config.dump",
      json({
        id: "0".repeat(64),
        name: containerName,
        rootfsImageName: "docker.io/library/busybox:latest",
        createdTime: "2026-01-01T00:00:00Z",
        checkpointedTime: "2026-01-01T00:01:00.5Z",
      }),
    ],
    [
      "spec.dump",
      json({
        ociVersion: "1.0.2",
        process: { args: ["sleep", "inf"] },
        mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
        annotations: { ...annotations, [CRIO_ANNOTATIONS]: JSON.stringify(annotations) },
      }),
    ],
    ["bind.mounts", Buffer.from("[]")],
    ["deleted.files", Buffer.from("[]")],
    ["stats-dump", Buffer.from("{}")],
    ["dump.log", Buffer.from("(00.000000) Dumping finished successfully\n")],
  ];
}

export interface FakeArchiveOptions {
  /** Approximate total size in bytes (the memory image gets the rest). */
  size: number;
  containerName?: string;
  /** Seed byte mixed into the data, so two archives differ. */
  seed?: number;
}

export async function writeFakeCheckpointArchive(path: string, opts: FakeArchiveOptions): Promise<void> {
  const pack = tarStream.pack();
  const out = createWriteStream(path, { mode: 0o600 });
  const done = pipeline(pack, out);
  const small = checkpointArchiveFiles(opts.containerName ?? "app");
  const add = (header: Partial<tarStream.Header> & { name: string }, body: Buffer | string = "") =>
    new Promise<void>((resolve, reject) =>
      pack.entry(header as tarStream.Header, body, (err) => (err ? reject(err) : resolve())),
    );
  await add({ name: "checkpoint/", type: "directory", mode: 0o700 });
  for (const [name, body] of small) await add({ name, mode: 0o600 }, body);
  const bulk = Math.max(0, opts.size - 16 * 1024);
  const entry = pack.entry(
    { name: "checkpoint/pages-1.img", size: bulk, mode: 0o600 } as tarStream.Header,
    (err) => {
      if (err) throw err;
    },
  );
  const finished = new Promise<void>((resolve, reject) => {
    entry.once("finish", () => resolve());
    entry.once("error", reject);
  });
  const block = Buffer.alloc(1024 * 1024);
  randomFillSync(block);
  block[0] = opts.seed ?? 0;
  let left = bulk;
  let i = 0;
  while (left > 0) {
    const n = Math.min(left, block.length);
    block.writeUInt32LE(i++, 4); // every MiB differs
    const chunk = Buffer.from(block.subarray(0, n));
    if (!entry.write(chunk)) await new Promise<void>((r) => entry.once("drain", () => r()));
    left -= n;
  }
  entry.end(Buffer.alloc(0));
  await finished;
  // An empty tar (the container changed nothing in its root file system).
  await add({ name: "rootfs-diff.tar", mode: 0o600 }, Buffer.alloc(10240));
  pack.finalize();
  await done;
}
