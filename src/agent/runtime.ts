// `GET /v1/runtime[?runtime=cri-o|containerd]`: what this node's container runtime is configured
// to do about checkpoint and restore, read from its configuration files through read-only
// mounts of /etc/crio and /etc/containerd (no CRI socket: least privilege). The rules are in
// agent/runtime-config.ts; this module only finds and reads the files, bounded.
//
// The mounts are hostPath DirectoryOrCreate (config/agent/daemonset.yaml), so on a node without
// one of the runtimes its folder exists but is empty: an empty folder means "not this runtime".
import { lstat, readFile, readdir, realpath, stat } from "node:fs/promises";
import { join, posix, relative, sep } from "node:path";
import { Ms2mError } from "../common/errors.ts";
import { runtimeNames, type RuntimeName, type RuntimeReport } from "../transfer/types.ts";
import {
  CONTAINERD_CONFIG,
  containerdImports,
  parseContainerdConfig,
  parseCrioConfig,
  runtimeReport,
  type ConfigFile,
} from "../checkpoint/runtime-config.ts";

/** Where the agent has the node's folders mounted (AGENT_CRIO_CONFIG_DIR, AGENT_CONTAINERD_CONFIG_DIR). */
export interface RuntimeConfigDirs {
  crio: string;
  containerd: string;
}

const NODE_CRIO = "/etc/crio";
const NODE_CONTAINERD = "/etc/containerd";
/** Bounds: configuration folders are small; anything beyond is not read (and said so). */
const MAX_FILES = 64;
const MAX_FILE_BYTES = 256 * 1024;
const MAX_DEPTH = 4;

interface Found {
  files: ConfigFile[];
  problem?: string;
}

class Unreadable extends Error {}

/** Go's filepath.Walk order (CRI-O's): names sorted bytewise, folders entered where they sort. */
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Reads one file below `mount` (the folder as mounted here) and names it by its node path. A
 * symlink is followed only while it stays inside the mount: its target anywhere else would be
 * read from this container's filesystem, not the node's.
 */
async function readConfigFile(mount: string, hostPath: string, nodePath: string): Promise<ConfigFile> {
  let path = hostPath;
  const st = await lstat(path);
  if (st.isSymbolicLink()) {
    const target = await realpath(path).catch(() => undefined);
    const root = await realpath(mount);
    const rel = target === undefined ? undefined : relative(root, target);
    if (rel === undefined || rel.startsWith("..") || rel.startsWith(sep)) {
      throw new Unreadable(`${nodePath} is a symlink that leads out of ${posix.dirname(nodePath)}: not read`);
    }
    path = target!;
  }
  const real = await stat(path);
  if (!real.isFile()) throw new Unreadable(`${nodePath} is not a regular file`);
  if (real.size > MAX_FILE_BYTES) throw new Unreadable(`${nodePath} is larger than ${MAX_FILE_BYTES} bytes`);
  return { path: nodePath, text: await readFile(path, "utf8") };
}

const exists = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  );

/** CRI-O: crio.conf, then every file below crio.conf.d, recursively, in lexical order. */
async function readCrio(dir: string): Promise<Found> {
  const files: ConfigFile[] = [];
  try {
    if (await exists(join(dir, "crio.conf"))) {
      files.push(await readConfigFile(dir, join(dir, "crio.conf"), `${NODE_CRIO}/crio.conf`));
    }
    const walk = async (hostDir: string, nodeDir: string, depth: number): Promise<void> => {
      const names = (await readdir(hostDir).catch(() => [] as string[])).sort(byName);
      for (const name of names) {
        const host = join(hostDir, name);
        const node = `${nodeDir}/${name}`;
        if ((await lstat(host)).isDirectory()) {
          if (depth >= MAX_DEPTH) throw new Unreadable(`${node} is nested deeper than ${MAX_DEPTH} folders`);
          await walk(host, node, depth + 1);
          continue;
        }
        if (files.length >= MAX_FILES) throw new Unreadable(`more than ${MAX_FILES} files in ${NODE_CRIO}`);
        files.push(await readConfigFile(dir, host, node));
      }
    };
    await walk(join(dir, "crio.conf.d"), `${NODE_CRIO}/crio.conf.d`, 1);
  } catch (err) {
    return { files, problem: unreadable(err) };
  }
  return { files };
}

/**
 * containerd: config.toml, then its `imports` in order (globs with `*` in the file name, as
 * containerd expands them). Imports outside /etc/containerd are not mounted: not decided then.
 */
async function readContainerd(dir: string): Promise<Found> {
  const files: ConfigFile[] = [];
  try {
    if (!(await exists(join(dir, "config.toml")))) return { files };
    const main = await readConfigFile(dir, join(dir, "config.toml"), CONTAINERD_CONFIG);
    files.push(main);
    for (const pattern of containerdImports(main)) {
      const nodePattern = posix.resolve(NODE_CONTAINERD, pattern);
      if (!nodePattern.startsWith(`${NODE_CONTAINERD}/`)) {
        throw new Unreadable(`${CONTAINERD_CONFIG} imports ${pattern}, outside ${NODE_CONTAINERD}: not read`);
      }
      const rel = nodePattern.slice(NODE_CONTAINERD.length + 1);
      const folder = posix.dirname(rel);
      const base = posix.basename(rel);
      if (folder.includes("*")) throw new Unreadable(`import ${pattern}: only the file name may have a *`);
      const re = new RegExp(`^${base.split("*").map(escapeRe).join("[^/]*")}$`);
      const names = (await readdir(join(dir, folder)).catch(() => [] as string[])).filter((n) => re.test(n));
      for (const name of names.sort(byName)) {
        if (files.length >= MAX_FILES) throw new Unreadable(`more than ${MAX_FILES} imports`);
        files.push(
          await readConfigFile(dir, join(dir, folder, name), posix.join(NODE_CONTAINERD, folder, name)),
        );
      }
    }
  } catch (err) {
    return { files, problem: unreadable(err) };
  }
  return { files };
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const unreadable = (err: unknown) =>
  err instanceof Unreadable ? err.message : `cannot read the configuration: ${(err as Error).message}`;

/** Parses `?runtime=`; absent: detect from the files. */
export function requestedRuntime(value: string | null): RuntimeName | undefined {
  if (value === null || value === "") return undefined;
  if (!(runtimeNames as readonly string[]).includes(value)) {
    throw new Ms2mError("BadRequest", `runtime must be one of ${runtimeNames.join(", ")}`);
  }
  return value as RuntimeName;
}

/**
 * The report for `want`, or for the runtime whose files are present. Asked for a runtime that has
 * no files, its defaults apply (a runtime runs without a configuration file).
 */
export async function inspectRuntime(dirs: RuntimeConfigDirs, want?: RuntimeName): Promise<RuntimeReport> {
  const [crio, containerd] = await Promise.all([readCrio(dirs.crio), readContainerd(dirs.containerd)]);
  const report = (runtime: "cri-o" | "containerd", found: Found) => {
    const parsed = runtime === "cri-o" ? parseCrioConfig(found.files) : parseContainerdConfig(found.files);
    return runtimeReport(runtime, found.problem ? { ...parsed, problem: found.problem } : parsed);
  };
  if (want === "cri-o") return report("cri-o", crio);
  if (want === "containerd") return report("containerd", containerd);
  const hasCrio = crio.files.length > 0 || crio.problem !== undefined;
  const hasContainerd = containerd.files.length > 0 || containerd.problem !== undefined;
  if (hasCrio && !hasContainerd) return report("cri-o", crio);
  if (hasContainerd && !hasCrio) return report("containerd", containerd);
  return {
    runtime: "unknown",
    source: [...crio.files, ...containerd.files].map((f) => f.path).join(", "),
    detail: hasCrio
      ? `both CRI-O (${NODE_CRIO}) and containerd (${CONTAINERD_CONFIG}) are configured on this node: ask with ?runtime=`
      : `no CRI-O (${NODE_CRIO}/crio.conf, ${NODE_CRIO}/crio.conf.d/) and no containerd (${CONTAINERD_CONFIG}) configuration on this node`,
  };
}
