// `GET /v1/checkpoints/{migration}/{container}` and `DELETE /v1/checkpoints/{migration}`: what
// the agent recorded for a migration, and its release — also run by the expiry sweep for
// migrations nobody released.
import { describeError, Ms2mError } from "../../common/errors.ts";
import type { Logger } from "../../common/logger.ts";
import { deleteCheckpointImage } from "../../checkpoint/registry.ts";
import { deleteStoredImage } from "../../checkpoint/skopeo.ts";
import type { CheckpointInventory, CheckpointRecord, ReleaseResponse } from "../../transfer/types.ts";
import type { AgentContext } from "../context.ts";
import { registryOptions } from "../send.ts";
import { checkpointKey, resolvePending } from "./checkpoint.ts";

type ImageOutcome = NonNullable<ReleaseResponse["loadedImages"]>[number];

/** The record (Pending or Done), or 404. */
export async function lookupCheckpoint(
  ctx: AgentContext,
  migration: string,
  container: string,
  log: Logger,
): Promise<CheckpointRecord> {
  let rec = await ctx.records.get(migration, container);
  // Pending and nobody working on it: the agent restarted mid-checkpoint.
  if (rec?.state === "Pending" && !ctx.inflight.has(migration, checkpointKey(container))) {
    try {
      rec = await resolvePending(ctx, rec, log);
    } catch (err) {
      if (!(err instanceof Ms2mError && err.reason === "Conflict")) throw err;
    }
  }
  if (!rec) throw new Ms2mError("NotFound", `no checkpoint recorded for ${migration}/${container}`);
  return rec;
}

/**
 * Waits for the migration's requests in flight, deletes the registry images its sends pushed (a
 * refusing registry is reported, not an error), the checkpoint images it loaded into this node's
 * store (unless `keepLoadedImages`: a completed migration's pod runs from them; a store that
 * refuses — image in use — is reported), then its archives and records. Idempotent.
 */
export async function releaseMigration(
  ctx: AgentContext,
  migration: string,
  log: Logger,
  opts: { keepLoadedImages?: boolean } = {},
): Promise<ReleaseResponse> {
  await ctx.inflight.settled(migration);
  const loadedImages = await releaseLoaded(ctx, migration, log, opts.keepLoadedImages === true);
  const records = await ctx.records.list(migration);
  const registryImages: ReleaseResponse["registryImages"] = [];
  const pushed = records.flatMap((r) => r.sends ?? []).filter((s) => s.registryImage);
  if (pushed.length > 0) {
    const registry = await registryOptions(ctx.config);
    for (const s of pushed) {
      const image = s.registryImage!;
      try {
        await deleteCheckpointImage(image, { ...registry, manifestDigest: s.manifestDigest });
        registryImages.push({ image, deleted: true });
      } catch (err) {
        const message = describeError(err).slice(0, 300);
        log.warn({ image, err: message }, "registry image not deleted");
        registryImages.push({ image, deleted: false, message });
      }
    }
  }
  const released = await ctx.records.release(migration);
  if (released.records.length > 0 || loadedImages.length > 0)
    log.info({ archives: released.archives, registryImages, loadedImages }, "checkpoints released");
  return {
    migration,
    records: released.records.length,
    archives: released.archives,
    registryImages,
    loadedImages,
  };
}

/** Removes (or keeps) the images this agent loaded for the migration; the records go with release(). */
async function releaseLoaded(
  ctx: AgentContext,
  migration: string,
  log: Logger,
  keep: boolean,
): Promise<ImageOutcome[]> {
  const out: ImageOutcome[] = [];
  for (const rec of await ctx.records.listLoaded(migration)) {
    if (keep) {
      out.push({ image: rec.image, deleted: false, message: "kept: the migrated pod runs from it" });
      continue;
    }
    try {
      const res = await deleteStoredImage(ctx.store, rec.image, { binary: ctx.config.AGENT_SKOPEO });
      out.push(
        res === "shared"
          ? { image: rec.image, deleted: false, message: "kept: the image carries other names too" }
          : { image: rec.image, deleted: true },
      );
    } catch (err) {
      const message = describeError(err).slice(0, 300);
      log.warn({ image: rec.image, err: message }, "loaded image not deleted");
      out.push({ image: rec.image, deleted: false, message });
    }
  }
  return out;
}

/**
 * `GET /v1/checkpoints`: every migration this agent holds something of, with the workload UIDs
 * its records name, when it was last written, and what a release would remove. The controller's
 * lifecycle sweep decides from it (and the migrations it knows) what to release.
 */
export async function inventory(ctx: AgentContext): Promise<CheckpointInventory> {
  const migrations: CheckpointInventory["migrations"] = [];
  for (const migration of await ctx.records.migrations()) {
    const records = await ctx.records.list(migration);
    const loaded = await ctx.records.listLoaded(migration).catch(() => []);
    const newest = await ctx.records.newest(migration, records, loaded);
    const workloadUids = new Set<string>();
    for (const r of records) if (r.workload?.uid) workloadUids.add(r.workload.uid);
    for (const l of loaded) if (l.workloadUid) workloadUids.add(l.workloadUid);
    migrations.push({
      migration,
      workloadUids: [...workloadUids],
      newest: new Date(newest).toISOString(),
      records: records.length,
      archives: records.flatMap((r) => (r.archive ? [r.archive] : [])),
      registryImages: records.flatMap((r) =>
        (r.sends ?? []).flatMap((x) => (x.registryImage ? [x.registryImage] : [])),
      ),
      loadedImages: loaded.map((l) => l.image),
      busy: ctx.inflight.busy(migration),
    });
  }
  return { node: ctx.config.NODE_NAME, migrations };
}

/** Releases the migrations whose records are older than AGENT_CHECKPOINT_TTL_SECONDS and that have nothing in flight. */
export async function sweepExpired(ctx: AgentContext, now = Date.now()): Promise<string[]> {
  const ttlMs = ctx.config.AGENT_CHECKPOINT_TTL_SECONDS * 1000;
  const out: string[] = [];
  try {
    for (const m of await ctx.records.expired(ttlMs, now)) {
      if (ctx.inflight.busy(m)) continue;
      await releaseMigration(ctx, m, ctx.log.child({ op: "sweep", migration: m }));
      out.push(m);
    }
  } catch (err) {
    ctx.log.warn({ err: describeError(err) }, "checkpoint record sweep failed");
  }
  return out;
}
