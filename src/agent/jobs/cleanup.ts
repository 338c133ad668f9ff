// `ms2m-agent cleanup`: the cleanup Job's one-shot delete of what a transfer Job leaves behind
// where no ms2m-agent runs (src/controller/transfer-job.ts buildCleanupJob): checkpoint archives
// in the source node's kubelet checkpoints folder and checkpoint images a transfer Job pushed to
// a registry. The controller names them in CLEANUP_REQUEST (src/transfer/job.ts); an archive is
// checked exactly as the agent checks the archive of a send (src/checkpoint/kubelet-archives.ts: directly in the
// folder, the checkpoint of exactly this namespace/pod/container) and only a regular file is
// removed, never what a symlink points to. A time window (`archiveWindows`: a node-proxy
// checkpoint whose answer was lost, so its archive's name is unknown) removes, once the window's
// checkpoint has certainly ended, every archive of exactly that namespace/pod/container whose
// kubelet timestamp lies in the window, each checked and removed the same way. The outcome of
// every item goes to the termination message file (CLEANUP_RESULT_FILE); exit 0 when everything
// is deleted or was already gone.
import { lstat, readdir, unlink } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { basename } from "node:path";
import { z } from "zod";
import { deleteCheckpointImage } from "../../checkpoint/registry.ts";
import { env } from "../../common/config.ts";
import { describeError } from "../../common/errors.ts";
import {
  CLEANUP_JOB_SUBCOMMAND,
  MAX_CLEANUP_SETTLE_SECONDS,
  cleanupRequestSchema,
  encodeCleanupJobResult,
  type CleanupItem,
  type CleanupJobResult,
  type CleanupRequest,
} from "../../transfer/job.ts";
import { archiveTimestamp, resolveArchiveName } from "../../checkpoint/kubelet-archives.ts";
import { agentConfigSchema } from "../config.ts";
import { JOB_CONFIG_KEYS, jobRequest, runOneShot } from "./one-shot.ts";
import { registryOptions } from "../send.ts";

export const cleanupJobConfigSchema = agentConfigSchema.pick(JOB_CONFIG_KEYS).extend({
  /** What to delete (JSON, src/transfer/job.ts cleanupRequestSchema): no secret in it. */
  CLEANUP_REQUEST: z
    .string()
    .min(2)
    .max(32 * 1024),
  CLEANUP_RESULT_FILE: env.path().default("/dev/termination-log"),
});
export type CleanupJobConfig = z.infer<typeof cleanupJobConfigSchema>;

const codeOf = (err: unknown) => (err as NodeJS.ErrnoException).code;

/**
 * Removes one archive: only the file resolveArchiveName allows, only if it is a regular file
 * (lstat: a symlink is refused, not followed; unlink never follows one either). Already gone is
 * "absent".
 */
export async function removeArchive(
  checkpointsDir: string,
  req: Pick<CleanupRequest, "namespace" | "pod">,
  item: CleanupRequest["archives"][number],
): Promise<CleanupItem> {
  const result = (outcome: CleanupItem["outcome"], message?: string): CleanupItem => ({
    kind: "archive",
    name: basename(item.archive),
    outcome,
    ...(message ? { message } : {}),
  });
  let path: string;
  try {
    path = resolveArchiveName(checkpointsDir, item.archive, { ...req, container: item.container });
  } catch (err) {
    return result("refused", describeError(err));
  }
  return removeRegularFile(path, result);
}

/** lstat, then unlink only a regular file (neither follows a symlink); ENOENT is "absent". */
async function removeRegularFile(
  path: string,
  result: (outcome: CleanupItem["outcome"], message?: string) => CleanupItem,
): Promise<CleanupItem> {
  try {
    const st = await lstat(path);
    if (!st.isFile())
      return result(
        "refused",
        `not a regular file (${st.isSymbolicLink() ? "a symlink" : "other type"}): left alone`,
      );
    await unlink(path);
    return result("deleted");
  } catch (err) {
    if (codeOf(err) === "ENOENT") return result("absent");
    return result("refused", `cannot remove: ${codeOf(err) ?? describeError(err)}`);
  }
}

type ArchiveWindowItem = CleanupRequest["archiveWindows"][number];

/**
 * The names in `names` that are archives of exactly this namespace/pod/container whose kubelet
 * timestamp lies in [from, to] (inclusive), sorted.
 */
export function archivesInWindow(
  names: readonly string[],
  req: Pick<CleanupRequest, "namespace" | "pod">,
  w: Pick<ArchiveWindowItem, "container" | "from" | "to">,
): string[] {
  const ids = { namespace: req.namespace, pod: req.pod, container: w.container };
  const from = Date.parse(w.from);
  const to = Date.parse(w.to);
  return names
    .filter((n) => {
      const t = archiveTimestamp(n, ids);
      return t !== undefined && t >= from && t <= to;
    })
    .sort();
}

/** How the window is named in the result when no archive of it is found. */
export const windowLabel = (req: Pick<CleanupRequest, "namespace" | "pod">, w: ArchiveWindowItem) =>
  `checkpoint-${req.pod}_${req.namespace}-${w.container}-* written ${w.from} to ${w.to}`;

/**
 * Removes every archive of the window (archivesInWindow) from the folder, each checked by
 * resolveArchiveName and removed by removeRegularFile, as removeArchive does. Waits first until
 * `settleUntil` (at most MAX_CLEANUP_SETTLE_SECONDS): a checkpoint the kubelet was still taking
 * writes its archive only at the end. None found is one "absent" item.
 */
export async function removeArchiveWindow(
  checkpointsDir: string,
  req: Pick<CleanupRequest, "namespace" | "pod">,
  w: ArchiveWindowItem,
  opts: { signal?: AbortSignal | undefined; now?: () => number } = {},
): Promise<CleanupItem[]> {
  const wait = Math.min(
    Date.parse(w.settleUntil) - (opts.now ?? Date.now)(),
    MAX_CLEANUP_SETTLE_SECONDS * 1000,
  );
  if (wait > 0) await sleep(wait, undefined, opts.signal ? { signal: opts.signal } : {});
  const item =
    (name: string) =>
    (outcome: CleanupItem["outcome"], message?: string): CleanupItem => ({
      kind: "archive",
      name,
      outcome,
      ...(message ? { message } : {}),
    });
  let names: string[];
  try {
    names = await readdir(checkpointsDir);
  } catch (err) {
    const none = item(windowLabel(req, w));
    if (codeOf(err) === "ENOENT") return [none("absent", "no checkpoints folder")];
    return [none("refused", `cannot list the checkpoints folder: ${codeOf(err) ?? describeError(err)}`)];
  }
  const found = archivesInWindow(names, req, w);
  if (found.length === 0) return [item(windowLabel(req, w))("absent")];
  const items: CleanupItem[] = [];
  for (const name of found) {
    let path: string;
    try {
      path = resolveArchiveName(checkpointsDir, name, { ...req, container: w.container });
    } catch (err) {
      items.push(item(name)("refused", describeError(err)));
      continue;
    }
    items.push(await removeRegularFile(path, item(name)));
  }
  return items;
}

/** Deletes everything the request names; one item's failure does not stop the others. */
export async function cleanup(
  config: Omit<CleanupJobConfig, "CLEANUP_REQUEST" | "CLEANUP_RESULT_FILE" | "LOG_LEVEL" | "NODE_NAME">,
  req: CleanupRequest,
  signal?: AbortSignal,
): Promise<CleanupItem[]> {
  const items: CleanupItem[] = [];
  for (const a of req.archives) items.push(await removeArchive(config.AGENT_CHECKPOINTS_DIR, req, a));
  for (const w of req.archiveWindows)
    items.push(...(await removeArchiveWindow(config.AGENT_CHECKPOINTS_DIR, req, w, { signal })));
  if (req.registryImages.length > 0) {
    const opts = { ...(await registryOptions(config)), signal };
    for (const { image, manifestDigest } of req.registryImages) {
      try {
        const outcome = await deleteCheckpointImage(image, { ...opts, manifestDigest });
        items.push({ kind: "image", name: image, outcome });
      } catch (err) {
        items.push({ kind: "image", name: image, outcome: "refused", message: describeError(err) });
      }
    }
  }
  return items;
}

/** Runs the cleanup; returns the process exit code (0 all gone, 1 something left, 2 invalid configuration). */
export function runCleanupJob(source: NodeJS.ProcessEnv = process.env): Promise<number> {
  return runOneShot(
    {
      subcommand: CLEANUP_JOB_SUBCOMMAND,
      job: "cleanup Job",
      schema: cleanupJobConfigSchema,
      resultFile: (config) => config.CLEANUP_RESULT_FILE,
      run: async (config, log, signal): Promise<CleanupJobResult> => {
        const req = jobRequest("CLEANUP_REQUEST", config.CLEANUP_REQUEST, cleanupRequestSchema);
        const items = await cleanup(config, req, signal);
        for (const i of items) {
          const fields = { migration: req.migration, kind: i.kind, name: i.name, err: i.message };
          if (i.outcome === "refused") log.warn(fields, "not deleted");
          else log.info(fields, i.outcome === "deleted" ? "deleted" : "already gone");
        }
        return { ok: items.every((i) => i.outcome !== "refused"), items };
      },
      failure: (err) => ({ ok: false, items: [], error: describeError(err) }),
      encode: encodeCleanupJobResult,
    },
    source,
  );
}
