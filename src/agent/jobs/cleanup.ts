// `ms2m-agent cleanup`: the cleanup Job's one-shot delete of what a transfer Job leaves behind
// where no ms2m-agent runs (src/controller/transfer-job.ts buildCleanupJob): checkpoint archives
// in the source node's kubelet checkpoints folder and checkpoint images a transfer Job pushed to
// a registry. The controller names them in CLEANUP_REQUEST (src/transfer/job.ts); an archive is
// checked exactly as the agent checks the archive of a send (src/checkpoint/kubelet-archives.ts: directly in the
// folder, the checkpoint of exactly this namespace/pod/container) and only a regular file is
// removed, never what a symlink points to. The outcome of every item goes to the termination
// message file (CLEANUP_RESULT_FILE); exit 0 when everything is deleted or was already gone.
import { lstat, unlink } from "node:fs/promises";
import { basename } from "node:path";
import { z } from "zod";
import { deleteCheckpointImage } from "../../checkpoint/registry.ts";
import { env } from "../../common/config.ts";
import { describeError } from "../../common/errors.ts";
import {
  CLEANUP_JOB_SUBCOMMAND,
  cleanupRequestSchema,
  encodeCleanupJobResult,
  type CleanupItem,
  type CleanupJobResult,
  type CleanupRequest,
} from "../../transfer/job.ts";
import { resolveArchiveName } from "../../checkpoint/kubelet-archives.ts";
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

/** Deletes everything the request names; one item's failure does not stop the others. */
export async function cleanup(
  config: Omit<CleanupJobConfig, "CLEANUP_REQUEST" | "CLEANUP_RESULT_FILE" | "LOG_LEVEL" | "NODE_NAME">,
  req: CleanupRequest,
  signal?: AbortSignal,
): Promise<CleanupItem[]> {
  const items: CleanupItem[] = [];
  for (const a of req.archives) items.push(await removeArchive(config.AGENT_CHECKPOINTS_DIR, req, a));
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
