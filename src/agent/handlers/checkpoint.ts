// `POST /v1/checkpoint` (source side): a checkpoint through the local kubelet. With a migration
// key it is made at most once per (migration, container): a Pending record is written before the
// kubelet call and a Done record (archive, sha256, size) after; a repeat returns the record, a
// concurrent repeat joins the first.
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Ms2mError } from "../../common/errors.ts";
import type { Logger } from "../../common/logger.ts";
import { checkpointArchivePattern } from "../../checkpoint/kubelet-archives.ts";
import { digestFile } from "../../checkpoint/stream.ts";
import type { AgentCheckpointRequest, CheckpointRecord, CheckpointResponse } from "../../transfer/types.ts";
import type { AgentContext } from "../context.ts";
import { KubeletConnectionLost, kubeletCheckpoint } from "../kubelet.ts";
import { countFailures } from "../metrics.ts";

/** Kubelet checkpoint timeout assumed when the request names none (runtime request timeout + margin). */
const DEFAULT_CHECKPOINT_TIMEOUT_SECONDS = 240;
/** After its timeout, how long a Pending checkpoint whose agent restarted may still produce an archive. */
const PENDING_GRACE_MS = 60_000;

/** The in-flight key of the checkpoint of `container` (per migration). */
export const checkpointKey = (container: string) => `checkpoint ${container}`;

export function checkpoint(
  ctx: AgentContext,
  body: AgentCheckpointRequest,
  log: Logger,
): Promise<CheckpointResponse> {
  return countFailures(ctx.metrics, "checkpoint", () => {
    if (!body.migration) return kubeletCheckpoint(ctx.config, body, ctx.signal, log);
    const migration = body.migration;
    return ctx.inflight.join(migration, checkpointKey(body.container), () =>
      recordedCheckpoint(ctx, body, migration, log),
    );
  });
}

function toCheckpointResponse(r: CheckpointRecord): CheckpointResponse {
  return {
    archive: r.archive ?? "",
    seconds: r.seconds ?? 0,
    ...(r.digest ? { digest: r.digest } : {}),
    ...(r.size !== undefined ? { size: r.size } : {}),
    createdAt: r.createdAt,
  };
}

async function recordedCheckpoint(
  ctx: AgentContext,
  body: AgentCheckpointRequest,
  migration: string,
  log: Logger,
): Promise<CheckpointResponse> {
  let existing = await ctx.records.get(migration, body.container);
  if (existing && (existing.namespace !== body.namespace || existing.pod !== body.pod)) {
    throw new Ms2mError("Conflict", "this migration already checkpointed that container of another pod", {
      retriable: false,
    });
  }
  if (existing?.workload && body.workload && existing.workload.uid !== body.workload.uid) {
    throw new Ms2mError(
      "Forbidden",
      `this migration checkpointed ${body.container} of ${existing.workload.kind} ${existing.workload.name} ` +
        `uid ${existing.workload.uid}, not uid ${body.workload.uid} (deleted and recreated since)`,
      { retriable: false },
    );
  }
  if (existing?.state === "Pending") existing = await resolvePending(ctx, existing, log);
  if (existing?.state === "Done") {
    log.info({ archive: existing.archive }, "repeated checkpoint: recorded result");
    return toCheckpointResponse(existing);
  }
  const pending: CheckpointRecord = {
    migration,
    namespace: body.namespace,
    pod: body.pod,
    container: body.container,
    state: "Pending",
    createdAt: new Date().toISOString(),
    ...(body.timeoutSeconds !== undefined ? { timeoutSeconds: body.timeoutSeconds } : {}),
    ...(body.workload ? { workload: body.workload } : {}),
  };
  await ctx.records.put(pending);
  let res: CheckpointResponse;
  try {
    res = await kubeletCheckpoint(ctx.config, body, ctx.signal, log);
  } catch (err) {
    // The kubelet answered with a failure: nothing was made, a retry may checkpoint. A lost
    // connection leaves the record Pending (resolved from the checkpoints folder later).
    if (err instanceof Ms2mError && !(err instanceof KubeletConnectionLost))
      await ctx.records.remove(migration, body.container);
    throw err;
  }
  return toCheckpointResponse(await complete(ctx, pending, res.archive, res.seconds));
}

async function complete(
  ctx: AgentContext,
  rec: CheckpointRecord,
  archive: string,
  seconds?: number,
): Promise<CheckpointRecord> {
  const { digest, size } = await digestFile(join(ctx.config.AGENT_CHECKPOINTS_DIR, archive));
  const done: CheckpointRecord = {
    ...rec,
    state: "Done",
    archive,
    digest,
    size,
    ...(seconds !== undefined ? { seconds } : {}),
    updatedAt: new Date().toISOString(),
  };
  await ctx.recordLocks.run(`${rec.migration}/${rec.container}`, () => ctx.records.put(done));
  return done;
}

/**
 * A Pending record nobody is working on (the agent restarted mid-checkpoint): adopt the
 * archive the kubelet wrote since, or — once the kubelet call must be over and no archive
 * appeared — forget it (undefined: nothing was made). Otherwise 409: not known yet.
 */
export async function resolvePending(
  ctx: AgentContext,
  rec: CheckpointRecord,
  log: Logger,
): Promise<CheckpointRecord | undefined> {
  const dir = ctx.config.AGENT_CHECKPOINTS_DIR;
  const pattern = checkpointArchivePattern(rec.namespace, rec.pod, rec.container);
  const claimed = await ctx.records.claimedArchives();
  const since = Date.parse(rec.createdAt) - 2000;
  const found: { name: string; mtime: number }[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!pattern.test(name) || claimed.has(name)) continue;
    const st = await lstat(join(dir, name)).catch(() => undefined);
    if (st?.isFile() && st.mtimeMs >= since) found.push({ name, mtime: st.mtimeMs });
  }
  found.sort((a, b) => a.mtime - b.mtime);
  const first = found[0];
  if (first) {
    log.info({ archive: first.name }, "pending checkpoint resolved from the checkpoints folder");
    return complete(ctx, rec, first.name);
  }
  const timeoutMs = (rec.timeoutSeconds ?? DEFAULT_CHECKPOINT_TIMEOUT_SECONDS) * 1000;
  if (Date.now() - Date.parse(rec.createdAt) > timeoutMs + PENDING_GRACE_MS) {
    log.info("pending checkpoint made no archive; forgotten");
    await ctx.records.remove(rec.migration, rec.container);
    return undefined;
  }
  throw new Ms2mError(
    "Conflict",
    "a checkpoint of this container was requested before the agent restarted; its outcome is not known yet",
  );
}
