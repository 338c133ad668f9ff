// A CRI-O-shaped checkpoint archive of a chosen size, for the node simulator, tests and the
// benchmark: the files checkpointctl expects, with the bulk in checkpoint/pages-1.img.
import { randomFillSync } from "node:crypto";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import tarStream from "tar-stream";

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
  const small: [string, string][] = [
    [
      "config.dump",
      JSON.stringify({
        id: "0".repeat(64),
        name: opts.containerName ?? "app",
        rootfsImageName: "docker.io/library/busybox:latest",
      }),
    ],
    ["spec.dump", JSON.stringify({ ociVersion: "1.0.2", process: { args: ["sleep", "inf"] }, mounts: [] })],
    ["bind.mounts", "[]"],
    ["deleted.files", "[]"],
    ["stats-dump", "{}"],
    ["dump.log", "(00.000000) Dumping finished successfully\n"],
  ];
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
  await add({ name: "rootfs-diff.tar", mode: 0o600 }, Buffer.alloc(10240));
  pack.finalize();
  await done;
}
