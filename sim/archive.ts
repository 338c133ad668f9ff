// The CRI-O checkpoint archive, as checkpointctl names its parts: `config.dump` (container
// config), `spec.dump` (OCI runtime spec with the mounts), `checkpoint/` (CRIU images: here the
// process's own state bytes), `rootfs-diff.tar`, `deleted.files`, `bind.mounts`, `stats-dump`,
// `dump.log`. Written uncompressed with mode 0600, as the kubelet leaves it.
import { createReadStream, createWriteStream } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { createGunzip } from "node:zlib";
import { pipeline } from "node:stream/promises";
import * as tar from "tar-stream";

export const STATE_FILE = "checkpoint/ms2m-state.bin";

/** The subset of checkpointctl's ContainerConfig that the simulator writes and reads. */
export interface ContainerConfigDump {
  id: string;
  name: string;
  rootfsImage: string;
  rootfsImageRef: string;
  rootfsImageName: string;
  runtime: string;
  createdTime: string;
  checkpointedTime: string;
  restoredTime: string;
  restored: boolean;
}

export interface MountDump {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** The subset of the OCI runtime spec that restore needs. */
export interface SpecDump {
  ociVersion: string;
  process: { args: string[]; env: string[]; cwd: string };
  hostname: string;
  mounts: MountDump[];
  annotations: Record<string, string>;
}

export interface CheckpointParts {
  config: ContainerConfigDump;
  spec: SpecDump;
  state: Buffer;
  log: string;
  stats: { freezingTimeUs: number; frozenTimeUs: number; memdumpTimeUs: number; pagesWritten: number };
}

/** An empty tar: two zero blocks. No container writes outside its volumes in the simulator. */
const EMPTY_TAR = Buffer.alloc(1024);

const json = (v: unknown) => Buffer.from(JSON.stringify(v, null, 2));

/** CRIU image heads (criu/include/magic.h): what the agents' layout check (src/checkpoint/layout.ts) requires. */
function criuHead(...magics: number[]): Buffer {
  const b = Buffer.alloc(4 * magics.length + 8);
  magics.forEach((m, i) => b.writeUInt32LE(m, 4 * i));
  return b;
}
const CRIU_COMMON = 0x54564319;

/**
 * As CRI-O writes them: the original annotations also as the JSON string annotation CRI-O's
 * restore unmarshals, and rootfsImageRef as a bare 64-hex storage image ID (empty when unknown).
 */
function asCrio(parts: CheckpointParts): { config: ContainerConfigDump; spec: SpecDump } {
  const ref = parts.config.rootfsImageRef.replace(/^sha256:/, "");
  const annotations = { ...parts.spec.annotations };
  annotations["io.kubernetes.cri-o.Annotations"] ??= JSON.stringify(parts.spec.annotations);
  return {
    config: { ...parts.config, rootfsImageRef: /^[a-f0-9]{64}$/.test(ref) ? ref : "" },
    spec: { ...parts.spec, annotations },
  };
}

export async function writeCheckpointArchive(path: string, parts: CheckpointParts): Promise<void> {
  const pack = tar.pack();
  const mtime = new Date();
  const { config, spec } = asCrio(parts);
  const add = (name: string, body: Buffer) => pack.entry({ name, mode: 0o600, mtime }, body);
  const bindMounts = parts.spec.mounts
    .filter((m) => m.type === "bind")
    .map((m) => ({
      source: m.source,
      destination: m.destination,
      file_type: "directory",
      permissions: 0o755,
    }));
  pack.entry({ name: "checkpoint", type: "directory", mode: 0o700, mtime });
  add("checkpoint/inventory.img", criuHead(0x58313116));
  add("checkpoint/pstree.img", criuHead(CRIU_COMMON, 0x50273030));
  add("checkpoint/core-1.img", criuHead(CRIU_COMMON, 0x55053847));
  add(STATE_FILE, parts.state);
  add("config.dump", json(config));
  add("spec.dump", json(spec));
  add("bind.mounts", json(bindMounts));
  add("rootfs-diff.tar", EMPTY_TAR);
  add("deleted.files", json([]));
  add(
    "stats-dump",
    json({
      dump: {
        freezing_time: parts.stats.freezingTimeUs,
        frozen_time: parts.stats.frozenTimeUs,
        memdump_time: parts.stats.memdumpTimeUs,
        pages_written: parts.stats.pagesWritten,
      },
    }),
  );
  add("dump.log", Buffer.from(parts.log));
  pack.finalize();
  const partial = `${path}.partial-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  try {
    await pipeline(pack, createWriteStream(partial, { flags: "wx", mode: 0o600 }));
    await rename(partial, path);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}

export interface ReadArchive {
  config: ContainerConfigDump;
  spec: SpecDump;
  state: Buffer;
  entries: string[];
}

const MAX_SMALL_FILE = 64 * 1024 * 1024;

/** Reads the parts restore needs from an archive (file data other than these is skipped). */
export async function readCheckpointArchive(path: string): Promise<ReadArchive> {
  const extract = tar.extract();
  const wanted = new Set(["config.dump", "spec.dump", STATE_FILE]);
  const files = new Map<string, Buffer>();
  const entries: string[] = [];
  const reading = (async () => {
    for await (const entry of extract) {
      const name = entry.header.name.replace(/^\.\//, "");
      entries.push(name);
      if (wanted.has(name) && (entry.header.size ?? 0) <= MAX_SMALL_FILE) {
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        files.set(name, Buffer.concat(chunks));
      } else {
        entry.resume();
      }
    }
  })();
  // A layer copied out of containers-storage may come back gzip-compressed: accept both.
  const head = Buffer.alloc(2);
  const fh = await open(path, "r");
  await fh.read(head, 0, 2, 0).finally(() => fh.close());
  const gzipped = head[0] === 0x1f && head[1] === 0x8b;
  await Promise.all([
    gzipped
      ? pipeline(createReadStream(path), createGunzip(), extract)
      : pipeline(createReadStream(path), extract),
    reading,
  ]);
  const need = (name: string) => {
    const f = files.get(name);
    if (!f) throw new Error(`checkpoint archive has no ${name}`);
    return f;
  };
  return {
    config: JSON.parse(need("config.dump").toString("utf8")) as ContainerConfigDump,
    spec: JSON.parse(need("spec.dump").toString("utf8")) as SpecDump,
    state: need(STATE_FILE),
    entries,
  };
}
