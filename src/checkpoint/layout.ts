// The CRI-O checkpoint archive layout, checked while the archive streams past (tar-inspect.ts
// feeds it every entry and the data of the few entries it reads). An archive is accepted only if
// everything CRI-O v1.36.1 needs to restore from it is there and parses the way CRI-O parses it
// (server/container_restore.go, internal/lib/restore.go; file names from checkpointctl's
// lib/metadata.go), so a bad archive fails at the transfer, on the source or when it arrives,
// and never later on the target in the middle of a restore:
//
//  - config.dump: JSON object (checkpointctl ContainerConfig): string fields are strings, the
//    times RFC 3339, `rootfsImageRef` (when set) a 64-hex storage image ID (CRI-O parses it),
//    and the base image named (`rootfsImageRef` or `rootfsImageName`).
//  - spec.dump: JSON object (OCI runtime spec) with the fields CRI-O reads well typed:
//    `annotations` string map holding `io.kubernetes.cri-o.Annotations` (a JSON string map CRI-O
//    unmarshals), `mounts[].destination`, `linux.maskedPaths`/`readonlyPaths`.
//  - checkpoint/: CRIU images — inventory.img (inventory magic), pstree.img and core-*.img (CRIU
//    image magic), at least one core image.
//  - optional: bind.mounts (CRI-O re-creates missing bind-mount sources on the target host from
//    it: absolute clean paths, file_type directory|file, permissions ≤ 07777), deleted.files (CRI-O
//    removes each path below the container root: clean paths, no `..`), network.status and
//    status.dump (JSON), rootfs-diff.tar and devshm-checkpoint.tar (tars: inspected as nested
//    archives with the same path rules, Linux names, absolute symlink targets allowed: they
//    resolve inside the container's root, and CRI-O writes etc/mtab -> /proc/mounts), the logs, stats-dump, pod.options/pod.dump, artifacts/,
//    volumes/.
//  - nothing else: no top-level name outside that list, no symlink or hard link anywhere in the
//    archive (CRI-O writes none), every file regular.
import { Ms2mError } from "../common/errors.ts";
import { TarInspector, type EntrySink, type TarEntrySummary } from "./tar-inspect.ts";

/** checkpointctl lib/metadata.go names and the files CRI-O v1.36.1 adds to its archives. */
export const CONFIG_DUMP = "config.dump";
export const SPEC_DUMP = "spec.dump";
export const CHECKPOINT_DIR = "checkpoint";
export const ROOTFS_DIFF_TAR = "rootfs-diff.tar";
export const DEVSHM_TAR = "devshm-checkpoint.tar";
/** The CRI-O annotation holding the container's original annotations (JSON). */
export const CRIO_ANNOTATIONS = "io.kubernetes.cri-o.Annotations";

const JSON_FILES: Record<string, number> = {
  [CONFIG_DUMP]: 1024 * 1024,
  [SPEC_DUMP]: 4 * 1024 * 1024,
  "bind.mounts": 1024 * 1024,
  "deleted.files": 16 * 1024 * 1024,
  "network.status": 1024 * 1024,
  "status.dump": 1024 * 1024,
  status: 1024 * 1024,
  "pod.options": 1024 * 1024,
  "pod.dump": 4 * 1024 * 1024,
};
/** Top-level regular files besides the JSON ones and the nested tars. */
const OTHER_FILES = new Set([
  "dump.log",
  "restore.log",
  "stats-dump",
  "stats-restore",
  "io.kubernetes.cri-o.LogPath",
]);
/** Top-level directories whose content is not looked at beyond the tar rules (and checkpoint/). */
const DIRECTORIES = new Set([CHECKPOINT_DIR, "artifacts", "volumes"]);
const NESTED_TARS = new Set([ROOTFS_DIFF_TAR, DEVSHM_TAR]);

/** CRIU image magics (criu/include/magic.h), little endian u32 at the head of the file. */
export const CRIU_MAGIC = {
  inventory: 0x58313116,
  common: 0x54564319,
  service: 0x55105940,
  pstree: 0x50273030,
  core: 0x55053847,
};

export interface LayoutSummary {
  files: number;
  criuImages: number;
  rootfsDiffEntries: number;
}

function invalid(message: string): Ms2mError {
  return new Ms2mError("Invalid", `invalid checkpoint archive: ${message}`, { retriable: false });
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const isObject = (v: unknown): v is Record<string, Json> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** An absolute or relative path without `..`, NUL or empty components beyond a leading slash. */
function cleanPath(p: unknown, absolute: boolean): boolean {
  if (typeof p !== "string" || p.length === 0 || p.length > 4096 || p.includes("\0")) return false;
  if (absolute && !p.startsWith("/")) return false;
  return !p.split("/").some((s) => s === "..");
}

function parseJson(name: string, bytes: Buffer): Json {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw invalid(`${name} is not UTF-8`);
  }
  try {
    return JSON.parse(text) as Json;
  } catch {
    throw invalid(`${name} is not JSON`);
  }
}

function checkConfig(v: Json): void {
  if (!isObject(v)) throw invalid(`${CONFIG_DUMP} is not a JSON object`);
  for (const k of ["id", "name", "rootfsImage", "rootfsImageRef", "rootfsImageName", "runtime"]) {
    if (v[k] !== undefined && v[k] !== null && typeof v[k] !== "string")
      throw invalid(`${CONFIG_DUMP}: ${k} is not a string`);
  }
  for (const k of ["createdTime", "checkpointedTime", "restoredTime"]) {
    const t = v[k];
    if (t !== undefined && t !== null && (typeof t !== "string" || !RFC3339.test(t)))
      throw invalid(`${CONFIG_DUMP}: ${k} is not an RFC 3339 time`);
  }
  if (v["restored"] !== undefined && v["restored"] !== null && typeof v["restored"] !== "boolean")
    throw invalid(`${CONFIG_DUMP}: restored is not a boolean`);
  const ref = v["rootfsImageRef"];
  if (typeof ref === "string" && ref !== "" && !/^[a-f0-9]{64}$/.test(ref))
    throw invalid(`${CONFIG_DUMP}: rootfsImageRef is not a 64-hex image ID`);
  const name = v["rootfsImageName"];
  if (!(typeof ref === "string" && ref !== "") && !(typeof name === "string" && name !== ""))
    throw invalid(`${CONFIG_DUMP} names no base image (rootfsImageRef or rootfsImageName)`);
}

function stringArray(v: Json | undefined, what: string): void {
  if (v === undefined || v === null) return;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
    throw invalid(`${what} is not a list of strings`);
}

function checkSpec(v: Json): void {
  if (!isObject(v)) throw invalid(`${SPEC_DUMP} is not a JSON object`);
  const types: [string, (x: Json) => boolean, string][] = [
    ["ociVersion", (x) => typeof x === "string", "a string"],
    ["hostname", (x) => typeof x === "string", "a string"],
    ["process", isObject, "an object"],
    ["root", isObject, "an object"],
    ["linux", isObject, "an object"],
    ["hooks", isObject, "an object"],
    ["mounts", Array.isArray, "a list"],
  ];
  for (const [k, ok, what] of types) {
    const x = v[k];
    if (x !== undefined && x !== null && !ok(x)) throw invalid(`${SPEC_DUMP}: ${k} is not ${what}`);
  }
  const annotations = v["annotations"];
  if (!isObject(annotations) || Object.values(annotations).some((x) => typeof x !== "string"))
    throw invalid(`${SPEC_DUMP}: annotations is not a string map`);
  const original = annotations[CRIO_ANNOTATIONS];
  if (typeof original !== "string") throw invalid(`${SPEC_DUMP}: annotation ${CRIO_ANNOTATIONS} missing`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(original);
  } catch {
    throw invalid(`${SPEC_DUMP}: annotation ${CRIO_ANNOTATIONS} is not JSON`);
  }
  if (!isObject(parsed) || Object.values(parsed).some((x) => typeof x !== "string"))
    throw invalid(`${SPEC_DUMP}: annotation ${CRIO_ANNOTATIONS} is not a string map`);
  for (const m of (v["mounts"] as Json[] | null | undefined) ?? []) {
    if (!isObject(m) || !cleanPath(m["destination"], true))
      throw invalid(`${SPEC_DUMP}: a mount without an absolute, clean destination`);
    for (const k of ["source", "type"])
      if (m[k] !== undefined && m[k] !== null && typeof m[k] !== "string")
        throw invalid(`${SPEC_DUMP}: mount ${k} is not a string`);
    stringArray(m["options"], `${SPEC_DUMP}: mount options`);
  }
  const linux = v["linux"];
  if (isObject(linux)) {
    stringArray(linux["maskedPaths"], `${SPEC_DUMP}: linux.maskedPaths`);
    stringArray(linux["readonlyPaths"], `${SPEC_DUMP}: linux.readonlyPaths`);
  }
}

function checkBindMounts(v: Json): void {
  if (v === null) return;
  if (!Array.isArray(v)) throw invalid("bind.mounts is not a list");
  for (const m of v) {
    if (
      !isObject(m) ||
      !cleanPath(m["source"], true) ||
      !cleanPath(m["destination"], true) ||
      (m["file_type"] !== "directory" && m["file_type"] !== "file") ||
      typeof m["permissions"] !== "number" ||
      !Number.isInteger(m["permissions"]) ||
      m["permissions"] < 0 ||
      m["permissions"] > 0o7777
    )
      throw invalid(
        "bind.mounts: an entry is not {source, destination: absolute clean paths, file_type, permissions}",
      );
  }
}

function checkDeletedFiles(v: Json): void {
  if (v === null) return;
  if (!Array.isArray(v)) throw invalid("deleted.files is not a list");
  for (const p of v) {
    if (!cleanPath(p, false)) throw invalid("deleted.files: a path with '..', NUL or empty");
  }
}

const CHECKS: Record<string, (v: Json) => void> = {
  [CONFIG_DUMP]: checkConfig,
  [SPEC_DUMP]: checkSpec,
  "bind.mounts": checkBindMounts,
  "deleted.files": checkDeletedFiles,
};

/** Collects up to `max` bytes; more is an error. */
class Collect implements EntrySink {
  private readonly chunks: Buffer[] = [];
  private n = 0;
  private readonly max: number;
  private readonly what: string;
  private readonly done: (b: Buffer) => void;
  constructor(max: number, what: string, done: (b: Buffer) => void) {
    this.max = max;
    this.what = what;
    this.done = done;
  }
  write(chunk: Buffer): void {
    this.n += chunk.length;
    if (this.n > this.max) throw invalid(`${this.what} larger than ${this.max} bytes`);
    this.chunks.push(Buffer.from(chunk));
  }
  end(): void {
    this.done(Buffer.concat(this.chunks));
  }
}

/** Keeps the first 8 bytes. */
class Head implements EntrySink {
  private buf = Buffer.alloc(0);
  private readonly done: (b: Buffer) => void;
  constructor(done: (b: Buffer) => void) {
    this.done = done;
  }
  write(chunk: Buffer): void {
    if (this.buf.length < 8) this.buf = Buffer.concat([this.buf, chunk.subarray(0, 8 - this.buf.length)]);
  }
  end(): void {
    this.done(this.buf);
  }
}

/** A nested tar (rootfs-diff.tar): the same path rules, Linux names, may be empty. */
class NestedTar implements EntrySink {
  readonly inspector: TarInspector;
  private readonly name: string;
  private readonly done: (entries: number) => void;
  constructor(name: string, maxEntries: number, done: (entries: number) => void) {
    this.name = name;
    this.done = done;
    this.inspector = new TarInspector({ maxEntries }, undefined, {
      portable: false,
      allowEmpty: true,
      allowAbsoluteSymlinks: true,
    });
  }
  private wrap(f: () => void): void {
    try {
      f();
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      throw invalid(`${this.name}: ${msg.replace(/^(unsafe|malformed) checkpoint archive: /, "")}`);
    }
  }
  write(chunk: Buffer): void {
    this.wrap(() => this.inspector.write(chunk));
  }
  end(): void {
    this.wrap(() => this.inspector.end());
    this.done(this.inspector.entries);
  }
}

/**
 * The layout check of one archive: `entry` for every entry the tar inspector accepted (returns
 * a sink for the entries whose bytes it reads), `finish` once the archive ended.
 */
export class CheckpointLayout {
  private readonly seen = new Set<string>();
  private readonly parsed = new Set<string>();
  private readonly images = new Set<string>();
  private files = 0;
  private criuImages = 0;
  private cores = 0;
  private rootfsDiffEntries = 0;
  private readonly maxEntries: number;

  constructor(opts: { maxEntries?: number } = {}) {
    this.maxEntries = opts.maxEntries ?? 100_000;
  }

  entry(e: TarEntrySummary): EntrySink | void {
    const top = e.path.split("/")[0]!;
    const nested = e.path.includes("/");
    if (e.type === "symlink" || e.type === "hardlink")
      throw invalid(`link ${JSON.stringify(e.path.slice(0, 200))} (CRI-O archives hold none)`);
    if (nested) {
      if (!DIRECTORIES.has(top)) throw invalid(`unexpected entry ${JSON.stringify(e.path.slice(0, 200))}`);
    } else if (e.type === "dir") {
      if (!DIRECTORIES.has(top)) throw invalid(`unexpected directory ${JSON.stringify(top.slice(0, 200))}`);
    } else if (DIRECTORIES.has(top)) {
      throw invalid(`${top} is not a directory`);
    } else if (!(top in JSON_FILES) && !OTHER_FILES.has(top) && !NESTED_TARS.has(top)) {
      throw invalid(`unexpected entry ${JSON.stringify(top.slice(0, 200))}`);
    }
    this.seen.add(e.path);
    if (e.type !== "file") return;
    this.files++;
    if (!nested && top in JSON_FILES) {
      const check = CHECKS[top];
      return new Collect(JSON_FILES[top]!, top, (bytes) => {
        const v = parseJson(top, bytes);
        check?.(v);
        this.parsed.add(top);
      });
    }
    if (!nested && NESTED_TARS.has(top)) {
      return new NestedTar(top, this.maxEntries, (n) => {
        if (top === ROOTFS_DIFF_TAR) this.rootfsDiffEntries = n;
        this.parsed.add(top);
      });
    }
    if (top === CHECKPOINT_DIR && e.path.split("/").length === 2)
      return this.criuImage(e.path.slice(top.length + 1));
  }

  private criuImage(name: string): EntrySink | void {
    const expected =
      name === "inventory.img"
        ? [CRIU_MAGIC.inventory]
        : name === "pstree.img"
          ? [CRIU_MAGIC.common, CRIU_MAGIC.pstree]
          : /^core-[0-9]+\.img$/.test(name)
            ? [CRIU_MAGIC.common, CRIU_MAGIC.core]
            : undefined;
    if (!expected) return;
    return new Head((head) => {
      for (const [i, magic] of expected.entries()) {
        if (head.length < 4 * (i + 1) || head.readUInt32LE(4 * i) !== magic)
          throw invalid(`${CHECKPOINT_DIR}/${name} is not a CRIU image (bad magic)`);
      }
      this.criuImages++;
      this.images.add(name);
      if (name.startsWith("core-")) this.cores++;
    });
  }

  /** Everything required is present and parsed; throws an Invalid Ms2mError naming what is not. */
  finish(): LayoutSummary {
    for (const name of [CONFIG_DUMP, SPEC_DUMP]) {
      if (!this.parsed.has(name)) throw invalid(`${name} missing`);
    }
    if (!this.seen.has(CHECKPOINT_DIR) && ![...this.seen].some((p) => p.startsWith(`${CHECKPOINT_DIR}/`)))
      throw invalid(`${CHECKPOINT_DIR}/ (the CRIU images) missing`);
    for (const img of ["inventory.img", "pstree.img"]) {
      if (!this.images.has(img)) throw invalid(`${CHECKPOINT_DIR}/${img} missing`);
    }
    if (this.cores === 0) throw invalid(`${CHECKPOINT_DIR}/ has no core-<pid>.img`);
    return { files: this.files, criuImages: this.criuImages, rootfsDiffEntries: this.rootfsDiffEntries };
  }
}
