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
