// The archive fuzz property, shared by the component run (`make test`, 1,000 archives) and the
// long run (`make test-long`, 10,000): generated CRI-O checkpoint archives, valid ones and ones
// mutated in every way a hostile or broken sender could (missing or corrupt metadata, names
// unsafe on some platform, links, devices, set-id bits, nested tars, truncation, flipped bytes,
// trailing data), POSTed to a real agent (`/v1/archives`, real skopeo and containers-storage).
// For every archive: never a 5xx, never a crash; a refusal leaves nothing (no temp file, no
// record, no image, no layer); an accepted archive satisfies the layout spec as this file's own
// oracle reads it (tar-stream, an independent parser) and its release removes it all again; an
// unmutated archive is accepted.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import tarStream from "tar-stream";
import { Agent, request } from "undici";
import { expect } from "vitest";
import { CRIU_MAGIC } from "../../../src/checkpoint/layout.ts";
import { TOKENS, type TestAgent } from "../../../tooling/agent-fixture.ts";

// ---- archive model and writer (hostile constructs allowed) ----

interface Entry {
  name: string;
  /** tar typeflag */
  type: "0" | "5" | "2" | "1" | "3" | "4" | "6";
  data?: Buffer;
  linkname?: string;
  mode?: number;
  /** Raw name bytes for the ustar field (invalid UTF-8). */
  rawName?: Buffer;
  /** Extra PAX records. */
  pax?: Record<string, string>;
}

function paxBlock(records: Record<string, string>): Buffer {
  let out = Buffer.alloc(0);
  for (const [k, v] of Object.entries(records)) {
    const body = Buffer.from(` ${k}=${v}\n`);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    out = Buffer.concat([out, Buffer.from(String(len)), body]);
  }
  return out;
}

function header(name: Buffer, type: string, size: number, mode: number, linkname = ""): Buffer {
  const h = Buffer.alloc(512);
  name.copy(h, 0, 0, Math.min(100, name.length));
  h.write(mode.toString(8).padStart(7, "0") + "\0", 100, "ascii");
  h.write("0000000\0", 108, "ascii");
  h.write("0000000\0", 116, "ascii");
  h.write(size.toString(8).padStart(11, "0") + "\0", 124, "ascii");
  h.write("00000000000\0", 136, "ascii");
  h.write(type, 156, "ascii");
  Buffer.from(linkname).copy(h, 157, 0, Math.min(100, Buffer.byteLength(linkname)));
  h.write("ustar\u000000", 257, "latin1");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** Writes entries as ustar, with a PAX header for long or non-ASCII names and link targets. */
export function writeTar(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === "0" ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const records: Record<string, string> = { ...e.pax };
    const nameBytes = e.rawName ?? Buffer.from(e.name);
    if (!e.rawName && (nameBytes.length > 99 || /[^\x20-\x7e]/.test(e.name))) records.path = e.name;
    if (e.linkname !== undefined && Buffer.byteLength(e.linkname) > 99) records.linkpath = e.linkname;
    if (Object.keys(records).length > 0) {
      const p = paxBlock(records);
      parts.push(header(Buffer.from("PaxHeader"), "x", p.length, 0o644), p, pad(p.length));
    }
    parts.push(
      header(nameBytes, e.type, data.length, e.mode ?? (e.type === "5" ? 0o755 : 0o600), e.linkname),
    );
    if (data.length) parts.push(data, pad(data.length));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

// ---- generators ----

const magic = (...m: number[]) => {
  const b = Buffer.alloc(4 * m.length + 16);
  m.forEach((x, i) => b.writeUInt32LE(x, 4 * i));
  return b;
};
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const hex64 = fc.stringMatching(/^[a-f0-9]{64}$/);
const safeSeg = fc.stringMatching(/^[a-z][a-z0-9_-]{0,15}$/);

const configArb = fc.record(
  {
    id: hex64,
    name: safeSeg,
    rootfsImageRef: hex64,
    rootfsImageName: fc.constantFrom("docker.io/library/busybox:latest", "registry.local/app:1"),
    createdTime: fc.constantFrom("2026-01-01T00:00:00Z", "2026-05-01T10:11:12.123456789+02:00"),
    restored: fc.boolean(),
  },
  { requiredKeys: ["rootfsImageName"] },
);
const specArb = fc.record({
  ociVersion: fc.constant("1.0.2"),
  process: fc.record({ args: fc.array(safeSeg, { maxLength: 3 }) }),
  mounts: fc.array(
    fc.record({
      destination: safeSeg.map((s) => `/${s}`),
      type: fc.constant("bind"),
      source: safeSeg.map((s) => `/var/lib/kubelet/${s}`),
    }),
    { maxLength: 3 },
  ),
  annotations: fc
    .dictionary(
      safeSeg.map((s) => `io.kubernetes.${s}`),
      safeSeg,
      { maxKeys: 3 },
    )
    .map((a) => ({ ...a, "io.kubernetes.cri-o.Annotations": JSON.stringify(a) })),
  linux: fc.record({
    maskedPaths: fc.array(
      safeSeg.map((s) => `/proc/${s}`),
      { maxLength: 2 },
    ),
  }),
});
const bytesArb = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const rootfsArb = fc
  .uniqueArray(fc.tuple(safeSeg, safeSeg, bytesArb(300)), {
    selector: (t) => `${t[0]}/${t[1]}`,
    maxLength: 4,
  })
  .map((files) => {
    const dirs = [...new Set(files.map(([d]) => d))];
    return writeTar([
      ...dirs.map((d): Entry => ({ name: `${d}/`, type: "5" })),
      ...files.map(([d, f, data]): Entry => ({ name: `${d}/${f}`, type: "0", data })),
    ]);
  });

/** A valid checkpoint archive's entries. */
export const validEntries: fc.Arbitrary<Entry[]> = fc
  .record({
    config: configArb,
    spec: specArb,
    pids: fc.uniqueArray(fc.integer({ min: 1, max: 99999 }), { minLength: 1, maxLength: 3 }),
    pages: bytesArb(2048),
    rootfs: fc.option(rootfsArb, { nil: undefined }),
    bindMounts: fc.boolean(),
    extras: fc.subarray(["network.status", "restore.log", "io.kubernetes.cri-o.LogPath", "stats-dump"]),
  })
  .map(({ config, spec, pids, pages, rootfs, bindMounts, extras }) => {
    const e: Entry[] = [
      { name: "checkpoint/", type: "5", mode: 0o700 },
      { name: "checkpoint/inventory.img", type: "0", data: magic(CRIU_MAGIC.inventory) },
      { name: "checkpoint/pstree.img", type: "0", data: magic(CRIU_MAGIC.common, CRIU_MAGIC.pstree) },
      ...pids.map((p): Entry => ({
        name: `checkpoint/core-${p}.img`,
        type: "0",
        data: magic(CRIU_MAGIC.common, CRIU_MAGIC.core),
      })),
      ...pids.map((p): Entry => ({
        name: `checkpoint/mm-${p}.img`,
        type: "0",
        data: magic(CRIU_MAGIC.common, 0x57492820),
      })),
      { name: "checkpoint/pages-1.img", type: "0", data: pages },
      { name: "config.dump", type: "0", data: json(config) },
      { name: "spec.dump", type: "0", data: json(spec) },
      { name: "dump.log", type: "0", data: Buffer.from("(00.000000) Dumping finished successfully\n") },
      { name: "deleted.files", type: "0", data: json(["/tmp/gone"]) },
    ];
    if (bindMounts)
      e.push({
        name: "bind.mounts",
        type: "0",
        data: json(
          spec.mounts.map((m) => ({
            source: m.source,
            destination: m.destination,
            file_type: "directory",
            permissions: 0o755,
          })),
        ),
      });
    for (const x of extras)
      e.push({ name: x, type: "0", data: x === "network.status" ? json({}) : Buffer.from("log\n") });
    if (rootfs) e.push({ name: "rootfs-diff.tar", type: "0", data: rootfs });
    return e;
  });

const hostileName = fc.oneof(
  fc.constantFrom(
    "/etc/passwd",
    "../escape",
    "checkpoint/../../x",
    "checkpoint\\pages-1.img",
    "checkpoint/CON",
    "checkpoint/nul.img",
    "checkpoint/COM1.txt",
    "checkpoint/aux",
    "checkpoint/a:b.img",
    "checkpoint/a?.img",
    "checkpoint/a*",
    'checkpoint/"q"',
    "checkpoint/a|b",
    "checkpoint/<x>",
    "checkpoint/trailing.",
    "checkpoint/trailing ",
    "checkpoint/ctl\u0001",
    "checkpoint/del\u007f",
    "checkpoint/CORE-1.IMG",
    "Config.dump",
    "checkpoint/e\u0301.img",
    "checkpoint/\u00e9.img",
    `checkpoint/${"x".repeat(300)}`,
    `${"d/".repeat(2100)}f`,
    "etc/shadow",
    "evil.sh",
    "./",
    "",
  ),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }).map((s) => `checkpoint/${s}`),
);

type Mutation =
  | { kind: "drop"; at: number }
  | { kind: "replace"; at: number; data: Buffer }
  | { kind: "json"; at: number; value: unknown }
  | { kind: "rename"; at: number; name: string }
  | { kind: "rawName"; at: number; bytes: Buffer }
  | { kind: "add"; entry: Entry }
  | { kind: "mode"; at: number; mode: number }
  | { kind: "duplicate"; at: number }
  | { kind: "nested"; entry: Entry }
  | { kind: "pax"; at: number; key: string; value: string };

const jsonValue = fc.oneof(
  fc.jsonValue(),
  fc.constant({}),
  fc.constant({ annotations: {} }),
  fc.constant({ annotations: { "io.kubernetes.cri-o.Annotations": "not json" } }),
  fc.constant({ rootfsImageRef: "sha256:abc" }),
  fc.constant([{ source: "../../etc", destination: "/x", file_type: "directory", permissions: 493 }]),
  fc.constant(["../../../etc/shadow"]),
);
const linkEntry = fc.record({
  name: fc.oneof(
    safeSeg.map((s) => `checkpoint/${s}`),
    hostileName,
  ),
  type: fc.constantFrom("2" as const, "1" as const),
  linkname: fc.constantFrom("/etc/shadow", "../../..", "pstree.img", "checkpoint/pstree.img", "missing", ""),
});
const oddEntry = fc.oneof(
  linkEntry,
  fc.record({
    name: fc.constantFrom("checkpoint/mem", "dev/sda", "fifo"),
    type: fc.constantFrom("3" as const, "4" as const, "6" as const),
  }),
  fc.record({ name: hostileName, type: fc.constant("0" as const), data: bytesArb(64) }),
  fc.record({ name: hostileName, type: fc.constant("5" as const) }),
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("drop" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("replace" as const), at: fc.nat(), data: bytesArb(64) }),
  fc.record({ kind: fc.constant("json" as const), at: fc.nat(), value: jsonValue }),
  fc.record({ kind: fc.constant("rename" as const), at: fc.nat(), name: hostileName }),
  fc.record({
    kind: fc.constant("rawName" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }).map((a) => Buffer.from([0x63, 0x2f, ...a, 0xff])),
  }),
  fc.record({ kind: fc.constant("add" as const), entry: oddEntry }),
  fc.record({
    kind: fc.constant("mode" as const),
    at: fc.nat(),
    mode: fc.constantFrom(0o4755, 0o2755, 0o1777, 0o7777),
  }),
  fc.record({ kind: fc.constant("duplicate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("nested" as const), entry: oddEntry }),
  fc.record({
    kind: fc.constant("pax" as const),
    at: fc.nat(),
    key: fc.constantFrom(
      "SCHILY.xattr.security.capability",
      "path",
      "linkpath",
      "size",
      "comment",
      "GNU.sparse.map",
    ),
    value: fc.constantFrom("../../x", "/abs", "99999999999", "x", ""),
  }),
);

type Damage =
  | { kind: "truncate"; at: number }
  | { kind: "flip"; at: number; xor: number }
  | { kind: "append"; data: Buffer };
const damage: fc.Arbitrary<Damage> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({
    kind: fc.constant("append" as const),
    data: bytesArb(700).filter((b) => b.some((x) => x !== 0)),
  }),
);

function apply(entries: Entry[], m: Mutation): Entry[] {
  const e = entries.map((x) => ({ ...x }));
  const i = "at" in m ? m.at % e.length : 0;
  switch (m.kind) {
    case "drop":
      e.splice(i, 1);
      break;
    case "replace":
      e[i]!.data = m.data;
      break;
    case "json":
      e[i]!.data = json(m.value);
      break;
    case "rename":
      e[i]!.name = m.name;
      break;
    case "rawName":
      e[i]!.rawName = m.bytes;
      break;
    case "add":
      e.splice(i, 0, m.entry as Entry);
      break;
    case "mode":
      e[i]!.mode = m.mode;
      break;
    case "duplicate":
      e.push({ ...e[i]! });
      break;
    case "nested":
      e.push({ name: "rootfs-diff.tar", type: "0", data: writeTar([m.entry as Entry]) });
      break;
    case "pax":
      e[i]!.pax = { ...e[i]!.pax, [m.key]: m.value };
      break;
  }
  return e;
}

function damaged(buf: Buffer, d: Damage): Buffer {
  switch (d.kind) {
    case "truncate":
      return buf.subarray(0, d.at % buf.length);
    case "flip": {
      const b = Buffer.from(buf);
      const at = d.at % b.length;
      b[at] = b[at]! ^ d.xor;
      return b;
    }
    case "append":
      return Buffer.concat([buf, d.data]);
  }
}

export interface FuzzCase {
  archive: Buffer;
  /** Generated valid and left as is: must be accepted. */
  pristine: boolean;
  what: string;
}

/** Mostly mutated archives; one in twenty left valid (each accepted one costs a skopeo load). */
export const fuzzCase: fc.Arbitrary<FuzzCase> = fc
  .record({
    entries: validEntries,
    mutations: fc.array(mutation, { minLength: 0, maxLength: 3 }),
    damage: fc.option(damage, { freq: 4, nil: undefined }),
    keep: fc.integer({ min: 0, max: 19 }),
  })
  .map(({ entries, mutations, damage: d, keep }) => {
    const pristine = keep === 0;
    const ms = pristine ? [] : mutations.length > 0 || d ? mutations : [{ kind: "drop", at: 0 } as Mutation];
    let archive = writeTar(ms.reduce(apply, entries));
    if (!pristine && d) archive = damaged(archive, d);
    const what = pristine
      ? "valid"
      : [...ms.map((m) => m.kind), ...(d && !pristine ? [d.kind] : [])].join("+");
    return { archive, pristine, what };
  });

// ---- the oracle: the layout spec as read by tar-stream ----

// eslint-disable-next-line no-control-regex
const PORTABLE_BAD = /[<>:"|?*\\\u0000-\u001f\u007f\uFFFD]/;
const DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/i;
const TOP_FILES = new Set([
  "config.dump",
  "spec.dump",
  "bind.mounts",
  "deleted.files",
  "network.status",
  "status.dump",
  "status",
  "pod.options",
  "pod.dump",
  "dump.log",
  "restore.log",
  "stats-dump",
  "stats-restore",
  "io.kubernetes.cri-o.LogPath",
  "rootfs-diff.tar",
  "devshm-checkpoint.tar",
]);
const TOP_DIRS = new Set(["checkpoint", "artifacts", "volumes"]);

async function entriesOf(buf: Buffer): Promise<{ name: string; type: string; mode: number; data: Buffer }[]> {
  const extract = tarStream.extract();
  const out: { name: string; type: string; mode: number; data: Buffer }[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.push({
        name: entry.header.name,
        type: entry.header.type ?? "file",
        mode: entry.header.mode ?? 0,
        data: Buffer.concat(chunks),
      });
    }
  })();
  extract.end(buf);
  await done;
  return out;
}

/** Why an archive the agent accepted breaks the layout spec, or undefined when it satisfies it. */
export async function layoutViolation(buf: Buffer): Promise<string | undefined> {
  let entries: Awaited<ReturnType<typeof entriesOf>>;
  try {
    entries = await entriesOf(buf);
  } catch (err) {
    return `tar-stream cannot read it: ${(err as Error).message}`;
  }
  const names = new Set<string>();
  const folded = new Set<string>();
  const files = new Map<string, Buffer>();
  for (const e of entries) {
    const name = e.name.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
    if (name === "" || name === ".") {
      if (e.type !== "directory") return "root entry that is not a directory";
      continue;
    }
    if (name.startsWith("/") || name.split("/").includes("..")) return `unsafe path ${name}`;
    if (PORTABLE_BAD.test(name)) return `non-portable character in ${JSON.stringify(name)}`;
    for (const part of name.split("/")) {
      if (part === "" || /[. ]$/.test(part) || DEVICE.test(part) || Buffer.byteLength(part) > 255)
        return `non-portable component in ${JSON.stringify(name)}`;
    }
    if (names.has(name)) return `duplicate ${name}`;
    const f = name.normalize("NFC").toLowerCase();
    if (folded.has(f)) return `case/normalization collision ${name}`;
    names.add(name);
    folded.add(f);
    if (e.type !== "file" && e.type !== "directory") return `${e.type} entry ${name}`;
    if (e.type === "file" && e.mode & 0o7000) return `set-id bits on ${name}`;
    const top = name.split("/")[0]!;
    if (
      name.includes("/")
        ? !TOP_DIRS.has(top)
        : e.type === "directory"
          ? !TOP_DIRS.has(top)
          : !TOP_FILES.has(top)
    )
      return `unexpected entry ${name}`;
    if (e.type === "file") files.set(name, e.data);
  }
  const parse = (n: string): unknown => {
    const b = files.get(n);
    if (!b) throw new Error(`${n} missing`);
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b));
  };
  try {
    const config = parse("config.dump") as Record<string, unknown>;
    if (typeof config !== "object" || config === null || Array.isArray(config))
      return "config.dump not an object";
    const ref = config["rootfsImageRef"];
    if (ref !== undefined && ref !== null && ref !== "" && !/^[a-f0-9]{64}$/.test(String(ref)))
      return "bad rootfsImageRef";
    if (!ref && !config["rootfsImageName"]) return "no base image";
    const spec = parse("spec.dump") as {
      annotations?: Record<string, unknown>;
      mounts?: { destination?: unknown }[];
    };
    const ann = spec?.annotations?.["io.kubernetes.cri-o.Annotations"];
    if (typeof ann !== "string") return "no CRI-O annotations";
    const inner = JSON.parse(ann) as unknown;
    if (typeof inner !== "object" || inner === null || Array.isArray(inner))
      return "CRI-O annotations not a map";
    for (const m of spec.mounts ?? [])
      if (typeof m?.destination !== "string" || !m.destination.startsWith("/")) return "bad mount";
    if (files.has("deleted.files")) {
      const d = parse("deleted.files");
      if (
        d !== null &&
        (!Array.isArray(d) || d.some((p) => typeof p !== "string" || p.split("/").includes("..")))
      )
        return "bad deleted.files";
    }
    if (files.has("bind.mounts")) {
      const b = parse("bind.mounts");
      if (
        b !== null &&
        (!Array.isArray(b) ||
          b.some(
            (m: { source?: unknown }) =>
              typeof m?.source !== "string" ||
              !m.source.startsWith("/") ||
              m.source.split("/").includes(".."),
          ))
      )
        return "bad bind.mounts";
    }
  } catch (err) {
    return `metadata: ${(err as Error).message}`;
  }
  const head = (n: string) => files.get(`checkpoint/${n}`);
  const u32 = (b: Buffer | undefined, i: number) =>
    b && b.length >= 4 * (i + 1) ? b.readUInt32LE(4 * i) : -1;
  if (u32(head("inventory.img"), 0) !== CRIU_MAGIC.inventory) return "inventory.img";
  if (u32(head("pstree.img"), 0) !== CRIU_MAGIC.common || u32(head("pstree.img"), 1) !== CRIU_MAGIC.pstree)
    return "pstree.img";
  const cores = [...files.keys()].filter((n) => /^checkpoint\/core-[0-9]+\.img$/.test(n));
  if (cores.length === 0) return "no core image";
  for (const c of cores) if (u32(files.get(c), 1) !== CRIU_MAGIC.core) return c;
  const rootfs = files.get("rootfs-diff.tar");
  if (rootfs) {
    try {
      for (const e of await entriesOf(rootfs)) {
        const n = e.name;
        if (n.startsWith("/") || n.split("/").includes("..")) return `rootfs-diff.tar: unsafe ${n}`;
        if (!["file", "directory", "symlink", "link"].includes(e.type)) return `rootfs-diff.tar: ${e.type}`;
      }
    } catch (err) {
      return `rootfs-diff.tar: ${(err as Error).message}`;
    }
  }
  return undefined;
}

// ---- the run against a real agent ----

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

function storeState(a: TestAgent): { images: number; layers: number } {
  const read = (f: string) => {
    try {
      return (JSON.parse(readFileSync(f, "utf8")) as unknown[]).length;
    } catch {
      return 0;
    }
  };
  const { graphRoot, driver } = a.store;
  return {
    images: read(join(graphRoot, `${driver}-images`, "images.json")),
    layers: read(join(graphRoot, `${driver}-layers`, "layers.json")),
  };
}

function leftovers(a: TestAgent, migration: string): string[] {
  const out: string[] = [];
  const tmp = join(a.workDir, "tmp");
  if (existsSync(tmp) && readdirSync(tmp).length > 0) out.push(`temp files ${readdirSync(tmp).join(",")}`);
  if (existsSync(join(a.workDir, "records", migration))) out.push(`record of ${migration}`);
  const s = storeState(a);
  if (s.images > 0) out.push(`${s.images} image(s)`);
  if (s.layers > 0) out.push(`${s.layers} layer(s)`);
  return out;
}

export interface FuzzStats {
  runs: number;
  accepted: number;
  rejected: Record<string, number>;
  pristine: number;
  kinds: Record<string, number>;
}

/** Runs `numRuns` archives against `agent`; throws (fast-check's counterexample) on a violation. */
export async function fuzzAgent(
  agent: TestAgent,
  ca: Buffer,
  numRuns: number,
  seed?: number,
  /** Prefix of the migration keys, to tell workers apart in a counterexample. */
  prefix = "",
): Promise<FuzzStats> {
  const dispatcher = new Agent({ connect: { ca, servername: "ms2m-agent" } });
  const stats: FuzzStats = { runs: 0, accepted: 0, rejected: {}, pristine: 0, kinds: {} };
  let n = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fuzzCase, async (c) => {
        const migration = `fuzz-${prefix}${n++}`;
        const url = new URL(
          `/v1/archives?container=app&image=localhost/fuzz/img:t${n}&migration=${migration}`,
          agent.url,
        );
        const res = await request(url, {
          method: "POST",
          headers: {
            authorization: `Bearer ${TOKENS.agent}`,
            "content-type": "application/x-tar",
            "ms2m-archive-digest": sha(c.archive),
          },
          body: c.archive,
          dispatcher,
        });
        const body = (await res.body.json()) as { reason?: string; message?: string };
        stats.runs++;
        stats.kinds[c.what.split("+")[0] ?? "?"] = (stats.kinds[c.what.split("+")[0] ?? "?"] ?? 0) + 1;
        expect(res.statusCode, `${c.what}: ${body.message}`).toBeLessThan(500);
        if (res.statusCode === 201) {
          stats.accepted++;
          if (c.pristine) stats.pristine++;
          expect(await layoutViolation(c.archive), `accepted ${c.what}`).toBeUndefined();
          const rel = await request(new URL(`/v1/checkpoints/${migration}`, agent.url), {
            method: "DELETE",
            headers: { authorization: `Bearer ${TOKENS.controller}` },
            dispatcher,
          });
          expect(rel.statusCode).toBe(200);
          await rel.body.dump();
        } else {
          expect(c.pristine, `valid archive refused: ${body.message}`).toBe(false);
          expect(res.statusCode).toBeGreaterThanOrEqual(400);
          const key = `${res.statusCode} ${body.reason}`;
          stats.rejected[key] = (stats.rejected[key] ?? 0) + 1;
        }
        expect(leftovers(agent, migration), `${c.what} (${res.statusCode})`).toEqual([]);
      }),
      { numRuns, ...(seed !== undefined ? { seed } : {}), endOnFailure: true },
    );
    // Never a crash: the agent still answers.
    const health = await request(new URL("/healthz", agent.url), { dispatcher });
    expect(health.statusCode).toBe(200);
    await health.body.dump();
  } finally {
    await dispatcher.close();
  }
  return stats;
}
