// Which local archive the agent may read: only a regular file directly in the kubelet
// checkpoints folder whose name is the one the kubelet gives the checkpoint of exactly this
// namespace/pod/container. Callers never name a path.
import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { basename, join } from "node:path";
import { Ms2mError } from "../common/errors.ts";

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** kubelet: checkpoint-<pod>_<namespace>-<container>-<RFC3339 timestamp>.tar */
export function checkpointArchivePattern(namespace: string, pod: string, container: string): RegExp {
  return new RegExp(
    `^checkpoint-${escape(pod)}_${escape(namespace)}-${escape(container)}-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})\\.tar$`,
  );
}

/** Where the kubelet writes checkpoint archives, and how it names them in its answer. */
export const KUBELET_CHECKPOINTS_DIR = "/var/lib/kubelet/checkpoints";

/**
 * Resolves the archive name the controller reported (a basename, or the kubelet's full path)
 * to a path inside `checkpointsDir`, refusing anything else. The kubelet's path names the
 * node's folder, which the agent may mount elsewhere: both folders are accepted.
 */
export function resolveArchiveName(
  checkpointsDir: string,
  archive: string,
  ids: { namespace: string; pod: string; container: string },
): string {
  let name = archive;
  if (archive.includes("/")) {
    const dir = [checkpointsDir, KUBELET_CHECKPOINTS_DIR].find((d) => archive.startsWith(`${d}/`));
    if (!dir || archive.slice(dir.length + 1).includes("/")) {
      throw new Ms2mError("Forbidden", "archive must be in the kubelet checkpoints folder");
    }
    name = basename(archive);
  }
  if (!checkpointArchivePattern(ids.namespace, ids.pod, ids.container).test(name)) {
    throw new Ms2mError("Forbidden", "archive name does not match the checkpoint of this pod and container");
  }
  return join(checkpointsDir, name);
}

/** Opens the archive without following symlinks; it must be a regular file. */
export async function openArchive(path: string): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Ms2mError("NotFound", `checkpoint archive ${basename(path)} not found`);
    if (code === "ELOOP") throw new Ms2mError("Forbidden", "checkpoint archive is a symlink");
    throw new Ms2mError("InternalError", `cannot open checkpoint archive: ${code}`, { cause: err });
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new Ms2mError("Forbidden", "checkpoint archive is not a regular file");
  }
  return { handle, size: st.size };
}

const RFC3339 =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?(?:Z|([+-])([0-9]{2}):?([0-9]{2}))$/;

/**
 * The time the kubelet wrote into the name of a checkpoint archive of exactly this
 * namespace/pod/container (Go's time.RFC3339 of its local clock when it took the request: whole
 * seconds, `Z` or a ±hh:mm offset), in ms since the epoch. Undefined when the name is not such
 * an archive or its time is not a valid RFC 3339 one.
 */
export function archiveTimestamp(
  name: string,
  ids: { namespace: string; pod: string; container: string },
): number | undefined {
  if (!checkpointArchivePattern(ids.namespace, ids.pod, ids.container).test(name)) return undefined;
  const prefix = `checkpoint-${ids.pod}_${ids.namespace}-${ids.container}-`;
  const m = RFC3339.exec(name.slice(prefix.length, -".tar".length));
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  if (year < 1970 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59)
    return undefined;
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, fraction);
  // Date.UTC rolls 31 February over into March: such a day does not exist.
  if (new Date(utc).getUTCDate() !== day) return undefined;
  let offset = 0;
  if (m[8]) {
    const [oh, om] = [Number(m[9]), Number(m[10])];
    if (oh > 23 || om > 59) return undefined;
    offset = (m[8] === "-" ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  return utc - offset;
}
