// Whether a node's container runtime can checkpoint and restore, from its configuration files.
// Pure: file contents in, capabilities out. src/agent/runtime.ts reads the files (the agent mounts
// /etc/crio and /etc/containerd read-only) and serves the report (`GET /v1/runtime`); the
// controller re-assesses the settings of that report with the runtime's version, which only it
// knows (Node.status.nodeInfo.containerRuntimeVersion; src/controller/preflight.ts).
//
// What the rules rest on:
//  - CRI-O v1.36.1 (read in its source: internal/criocli, pkg/config, server/): the main file
//    /etc/crio/crio.conf, then every file below /etc/crio/crio.conf.d (walked recursively, in
//    lexical order), each overriding the keys it sets. `[crio.runtime] enable_criu_support`
//    (default true since cri-o#7846; CRI-O turns it off at start when criu is not on its PATH)
//    gates CheckpointContainer and, in CreateContainer, whether a checkpoint image is restored.
//  - Later CRI-O patch releases (cri-o#10248, #10251 and their backports, 2026-09) add
//    `[crio.checkpoint_restore] container_level_enabled`: "none", "checkpoint_only" (their
//    default: no restore) or "checkpoint_restore". v1.36.1 has no such table and ignores it.
//  - containerd 2.2.7 and 2.3.4 (containerd#13913, #13937; its contrib/checkpoint test): restore
//    through CreateContainer only with `enable_experimental_restore_via_create = true` in
//    [plugins."io.containerd.cri.v1.runtime"] (version 3 files); 2.4 removes that path.
//    `enable_criu = false` in the same table (containerd#13664) turns checkpoint and restore off.
//    /etc/containerd/config.toml, then its `imports` in order, each overriding what it sets.
import { parse } from "smol-toml";

/** Container runtimes whose configuration the agent reads (`GET /v1/runtime?runtime=`). */
export const runtimeNames = ["cri-o", "containerd"] as const;
export type RuntimeName = (typeof runtimeNames)[number] | "unknown";

/** A setting that decides checkpoint/restore, as the runtime's configuration files set it. */
export const runtimeSettingSchema = z.strictObject({
  value: z.union([z.string().max(256), z.number(), z.boolean()]),
  /** The file that set it last (node path). */
  file: z.string().max(1024),
  /** The TOML table it is in, e.g. `[crio.runtime]`. */
  table: z.string().max(256),
});
export type RuntimeSetting = z.infer<typeof runtimeSettingSchema>;

/**
 * `GET /v1/runtime`: what the node's container runtime is configured to do, read by the agent from
 * the runtime's configuration files (this module). `checkpoint`/`restore` are what
 * the files alone decide; absent when that depends on the runtime's version (the controller
 * re-assesses `settings` with the version from Node.status.nodeInfo) or cannot be told.
 */
export const runtimeReportSchema = z.strictObject({
  runtime: z.enum([...runtimeNames, "unknown"]),
  checkpoint: z.boolean().optional(),
  restore: z.boolean().optional(),
  /** The configuration files read, in the order applied (node paths, comma-separated). */
  source: z.string().max(8192),
  /** Why, in words. */
  detail: z.string().max(8192),
  settings: z.record(z.string().max(128), runtimeSettingSchema).optional(),
});
export type RuntimeReport = z.infer<typeof runtimeReportSchema>;
import { z } from "zod";

export interface ConfigFile {
  /** The file's path on the node (what messages name). */
  path: string;
  text: string;
}

/** The settings that decide, by key, as the files set them (the last file wins). */
export type RuntimeSettings = Record<string, RuntimeSetting>;

export interface ParsedConfig {
  settings: RuntimeSettings;
  /** Files applied, in order. */
  files: string[];
  /** Why the files cannot be relied on (malformed TOML, a wrong type, unreadable): nothing is decided. */
  problem?: string;
}

/** One capability: `able` undefined when it cannot be told; `fix` says what to set, and where. */
export interface Capability {
  able?: boolean;
  why: string;
  fix?: string;
}

export interface Assessment {
  checkpoint: Capability;
  restore: Capability;
}

export interface RuntimeVersion {
  name: string;
  major: number;
  minor: number;
  patch: number;
  /** As the node reports it, e.g. cri-o://1.36.1. */
  text: string;
}

export const CRIO_CONF = "/etc/crio/crio.conf";
export const CRIO_DROP_INS = "/etc/crio/crio.conf.d";
export const CONTAINERD_CONFIG = "/etc/containerd/config.toml";

const CRIO_RUNTIME_TABLE = "[crio.runtime]";
const CRIO_CR_TABLE = "[crio.checkpoint_restore]";
const CONTAINERD_V3_PLUGIN = "io.containerd.cri.v1.runtime";
const CONTAINERD_V2_PLUGIN = "io.containerd.grpc.v1.cri";
const CRIO_LEVELS = ["none", "checkpoint_only", "checkpoint_restore"];

/** `cri-o://1.36.1`, `containerd://v2.3.4-k3s1` → name and numbers; undefined when unparsable. */
export function parseRuntimeVersion(text: string | undefined): RuntimeVersion | undefined {
  const m = /^([a-z0-9.-]+):\/\/v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(text ?? "");
  if (!m) return undefined;
  return { name: m[1]!, major: Number(m[2]), minor: Number(m[3]), patch: Number(m[4] ?? 0), text: text! };
}

/** The runtime a node reports (`cri-o://…` → cri-o), if the agent knows how to read its files. */
export function runtimeOf(version: RuntimeVersion | undefined): RuntimeName {
  return version?.name === "cri-o" || version?.name === "containerd" ? version.name : "unknown";
}

type Table = Record<string, unknown>;
const isTable = (x: unknown): x is Table => typeof x === "object" && x !== null && !Array.isArray(x);
const tableAt = (doc: Table, ...path: string[]): Table | undefined => {
  let cur: unknown = doc;
  for (const key of path) cur = isTable(cur) ? cur[key] : undefined;
  return isTable(cur) ? cur : undefined;
};

function parseToml(file: ConfigFile): Table | string {
  try {
    return parse(file.text) as Table;
  } catch (err) {
    // smol-toml adds a code frame after the first line: the first line says what is wrong.
    const first = ((err as Error).message.split("\n")[0] ?? "").replace(/^Invalid TOML document: /, "");
    return `${file.path} is not valid TOML (${first.slice(0, 200)})`;
  }
}

/** Records `key` if `table` sets it; a value of the wrong type is a problem (the runtime would not start). */
function take(
  out: RuntimeSettings,
  table: Table | undefined,
  key: string,
  type: "boolean" | "string",
  file: string,
  tableName: string,
): string | undefined {
  const value = table?.[key];
  if (value === undefined) return undefined;
  if (typeof value !== type) return `${key} in ${tableName} of ${file} is not a ${type}`;
  out[key] = { value: value as string | boolean, file, table: tableName };
  return undefined;
}

/** CRI-O: the main file first, then the drop-ins in the order CRI-O applies them. */
export function parseCrioConfig(files: ConfigFile[]): ParsedConfig {
  const settings: RuntimeSettings = {};
  const applied = files.map((f) => f.path);
  for (const f of files) {
    const doc = parseToml(f);
    if (typeof doc === "string") return { settings, files: applied, problem: doc };
    const problem =
      take(
        settings,
        tableAt(doc, "crio", "runtime"),
        "enable_criu_support",
        "boolean",
        f.path,
        CRIO_RUNTIME_TABLE,
      ) ??
      take(
        settings,
        tableAt(doc, "crio", "checkpoint_restore"),
        "container_level_enabled",
        "string",
        f.path,
        CRIO_CR_TABLE,
      );
    if (problem) return { settings, files: applied, problem };
  }
  return { settings, files: applied };
}

/** containerd: `imports` of the main file (the reader resolves and reads them). */
export function containerdImports(main: ConfigFile): string[] {
  const doc = parseToml(main);
  if (typeof doc === "string" || !Array.isArray(doc.imports)) return [];
  return doc.imports.filter((x): x is string => typeof x === "string");
}

/** containerd: config.toml first, then its imports in order. */
export function parseContainerdConfig(files: ConfigFile[]): ParsedConfig {
  const settings: RuntimeSettings = {};
  const applied = files.map((f) => f.path);
  for (const [i, f] of files.entries()) {
    const doc = parseToml(f);
    if (typeof doc === "string") return { settings, files: applied, problem: doc };
    if (i === 0 && typeof doc.version === "number") {
      settings.version = { value: doc.version, file: f.path, table: "" };
    }
    // Version 3 files (containerd 2.x) keep runtime options in the cri.v1.runtime plugin;
    // version 2 files in the grpc.v1.cri plugin, which containerd 2.x migrates on load.
    for (const plugin of [CONTAINERD_V2_PLUGIN, CONTAINERD_V3_PLUGIN]) {
      const table = tableAt(doc, "plugins", plugin);
      const name = `[plugins."${plugin}"]`;
      const problem =
        take(settings, table, "enable_criu", "boolean", f.path, name) ??
        take(settings, table, "enable_experimental_restore_via_create", "boolean", f.path, name);
      if (problem) return { settings, files: applied, problem };
    }
  }
  return { settings, files: applied };
}

const shown = (s: RuntimeSetting) => (typeof s.value === "string" ? `"${s.value}"` : String(s.value));
const where = (key: string, s: RuntimeSetting) => `${key} = ${shown(s)} in ${s.table} (${s.file})`;

/** Checked in the v1.36.1 source: no [crio.checkpoint_restore]; enable_criu_support alone decides. */
function crioWithoutLevelTable(v: RuntimeVersion | undefined): boolean {
  return v?.name === "cri-o" && v.major === 1 && v.minor === 36 && v.patch <= 1;
}

function assessCrio(s: RuntimeSettings, v: RuntimeVersion | undefined): Assessment {
  const criu = s.enable_criu_support;
  const level = s.container_level_enabled;
  const restart = "then restart CRI-O";
  if (criu?.value === false) {
    const off: Capability = {
      able: false,
      why: where("enable_criu_support", criu),
      fix: `set enable_criu_support = true in ${CRIO_RUNTIME_TABLE} (${criu.file}), ${restart}`,
    };
    return { checkpoint: off, restore: off };
  }
  const criuOn: Capability = criu
    ? { able: true, why: where("enable_criu_support", criu) }
    : {
        able: true,
        why: "enable_criu_support is not set (CRI-O enables it by default when criu is installed)",
      };
  const levelFix = (file: string) =>
    `set container_level_enabled = "checkpoint_restore" in ${CRIO_CR_TABLE} (${file}), ${restart}`;
  if (level && !crioWithoutLevelTable(v)) {
    const value = String(level.value);
    if (!CRIO_LEVELS.includes(value)) {
      const bad: Capability = {
        why: `${where("container_level_enabled", level)} is none of ${CRIO_LEVELS.map((l) => `"${l}"`).join(", ")}`,
        fix: levelFix(level.file),
      };
      return { checkpoint: bad, restore: bad };
    }
    const because = where("container_level_enabled", level);
    const off: Capability = { able: false, why: because, fix: levelFix(level.file) };
    if (value === "none") return { checkpoint: off, restore: off };
    return {
      checkpoint: { able: true, why: `${because}; ${criuOn.why}` },
      restore: value === "checkpoint_restore" ? { able: true, why: `${because}; ${criuOn.why}` } : off,
    };
  }
  if (crioWithoutLevelTable(v)) {
    const note = `${v!.text} has no ${CRIO_CR_TABLE}: enable_criu_support alone decides`;
    return { checkpoint: criuOn, restore: { able: true, why: `${criuOn.why}; ${note}` } };
  }
  return {
    checkpoint: criuOn,
    restore: {
      why:
        `${criuOn.why}, but container_level_enabled is not set in ${CRIO_CR_TABLE}: CRI-O releases ` +
        `that have it default to "checkpoint_only" (no restore), older ones restore whenever ` +
        `enable_criu_support is on${v ? `, and which of them ${v.text} is, is not known` : ""}`,
      fix: levelFix(`a file in ${CRIO_DROP_INS}/`),
    },
  };
}

const atLeast = (v: RuntimeVersion, major: number, minor: number, patch = 0) =>
  v.major !== major ? v.major > major : v.minor !== minor ? v.minor > minor : v.patch >= patch;

function assessContainerd(s: RuntimeSettings, v: RuntimeVersion | undefined): Assessment {
  const criu = s.enable_criu;
  const via = s.enable_experimental_restore_via_create;
  const known = v?.name === "containerd" ? v : undefined;
  const table = `[plugins."${s.version?.value === 2 ? CONTAINERD_V2_PLUGIN : CONTAINERD_V3_PLUGIN}"]`;
  const restart = "then restart containerd";
  if (criu?.value === false) {
    const off: Capability = {
      able: false,
      why: where("enable_criu", criu),
      fix: `set enable_criu = true in ${criu.table} (${criu.file}), ${restart}`,
    };
    return { checkpoint: off, restore: off };
  }
  const checkpoint: Capability =
    known && known.major >= 2
      ? {
          able: true,
          why: `nothing in the configuration turns it off (${known.text} checkpoints through the CRI)`,
        }
      : {
          why: "nothing in the configuration turns it off; whether this containerd checkpoints is not known",
        };
  const restoreFix = `set enable_experimental_restore_via_create = true in ${via?.table ?? table} (${via?.file ?? CONTAINERD_CONFIG}), ${restart}`;
  if (known && atLeast(known, 2, 4)) {
    return {
      checkpoint,
      restore: {
        able: false,
        why: `${known.text} has no restore through CreateContainer (removed in containerd 2.4), which ms2m restores with`,
        fix: "run CRI-O, or containerd below 2.4 with enable_experimental_restore_via_create = true",
      },
    };
  }
  if (via) {
    return {
      checkpoint,
      restore: via.value
        ? { able: true, why: where("enable_experimental_restore_via_create", via) }
        : { able: false, why: where("enable_experimental_restore_via_create", via), fix: restoreFix },
    };
  }
  const unset = "enable_experimental_restore_via_create is not set";
  const offByDefault =
    known !== undefined &&
    ((known.major === 2 && known.minor === 2 && known.patch >= 7) ||
      (known.major === 2 && known.minor === 3 && known.patch >= 4));
  return {
    checkpoint,
    restore: offByDefault
      ? { able: false, why: `${unset}: ${known.text} does not restore without it`, fix: restoreFix }
      : {
          why:
            `${unset}: containerd 2.2.7+ and 2.3.4+ do not restore without it` +
            (known ? `; whether ${known.text} needs it is not known` : ""),
          fix: restoreFix,
        },
  };
}

/** What the settings allow, given the runtime's version when it is known. */
export function assessRuntime(
  runtime: RuntimeName,
  settings: RuntimeSettings,
  version?: RuntimeVersion,
): Assessment {
  if (runtime === "cri-o") return assessCrio(settings, version);
  if (runtime === "containerd") return assessContainerd(settings, version);
  const unknown: Capability = { why: "the container runtime is not known" };
  return { checkpoint: unknown, restore: unknown };
}

/** The agent's answer for one runtime (no version: what the files alone decide). */
export function runtimeReport(runtime: RuntimeName, parsed: ParsedConfig): RuntimeReport {
  const source = parsed.files.length > 0 ? parsed.files.join(", ") : "(no configuration files: defaults)";
  // Settings read before a problem are not the whole story: none are reported, so nobody
  // re-assesses them.
  if (parsed.problem) return { runtime, source, detail: parsed.problem };
  const a = assessRuntime(runtime, parsed.settings);
  return {
    runtime,
    ...(a.checkpoint.able !== undefined ? { checkpoint: a.checkpoint.able } : {}),
    ...(a.restore.able !== undefined ? { restore: a.restore.able } : {}),
    source,
    detail: `checkpoint: ${a.checkpoint.why}; restore: ${a.restore.why}`,
    settings: parsed.settings,
  };
}
