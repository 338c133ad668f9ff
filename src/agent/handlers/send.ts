// `POST /v1/send` (source side): sends one archive of the kubelet checkpoints folder to the
// target node's agent or a registry (the send itself is ../send.ts, shared with the transfer Job).
//
// An archive this agent recorded for the migration (`/v1/checkpoint` with a migration key) is
// kept until it was sent (a failed send keeps it for the retry; the release or the expiry
// sweep removes what is left), and a send to the same destination is done once: a repeat
// returns the recorded result, a concurrent repeat joins the first. Any other
// archive is read once and removed afterwards (unless `retainArchiveOnFailure` and the send failed).
import { access, rm } from "node:fs/promises";
import { basename } from "node:path";
import { Ms2mError } from "../../common/errors.ts";
import type { Logger } from "../../common/logger.ts";
import { resolveArchiveName } from "../../checkpoint/kubelet-archives.ts";
import type { CheckpointRecord, SendRecord, SendRequest, SendResponse } from "../../transfer/types.ts";
import type { AgentContext } from "../context.ts";
import { countFailures } from "../metrics.ts";
import { sendCheckpoint } from "../send.ts";

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** Identity of a send destination in the record: the same migration+container+destination is sent once. */
function destinationKey(d: SendRequest["destination"]): string {
  return d.type === "agent" ? `agent ${d.url} ${d.image}` : `registry ${d.image}`;
}

const operationOf = (body: SendRequest) =>
  body.destination.type === "agent" ? "send_direct" : "send_registry";

export function send(ctx: AgentContext, body: SendRequest, log: Logger): Promise<SendResponse> {
  return countFailures(ctx.metrics, operationOf(body), () => sendOnce(ctx, body, log));
}

async function sendOnce(ctx: AgentContext, body: SendRequest, log: Logger): Promise<SendResponse> {
  const path = resolveArchiveName(ctx.config.AGENT_CHECKPOINTS_DIR, body.archive, body);
  const rec = await ctx.records.get(body.migration, body.container);
  const owned =
    rec?.state === "Done" &&
    rec.archive === basename(path) &&
    rec.namespace === body.namespace &&
    rec.pod === body.pod;
  if (!owned) return (await transmit(ctx, body, path, log, undefined)).result;
  assertSameWorkload(rec, body);
  const dest = destinationKey(body.destination);
  return ctx.inflight.join(body.migration, `send ${body.container} ${dest}`, () =>
    recordedSend(ctx, body, path, rec, dest, log),
  );
}

async function recordedSend(
  ctx: AgentContext,
  body: SendRequest,
  path: string,
  rec: CheckpointRecord,
  dest: string,
  log: Logger,
): Promise<SendResponse> {
  const done = rec.sends?.find((s) => s.destination === dest && s.state === "Done");
  if (done?.result) {
    log.info({ archive: rec.archive, destination: body.destination.type }, "repeated send: recorded result");
    return done.result;
  }
  // Direct, the archive already removed after a send of the same image: the image is in the
  // target node's store whatever its agent's address is now (a restarted agent has a new pod IP).
  if (body.destination.type === "agent" && !(await exists(path))) {
    const image = body.destination.image;
    const same = rec.sends?.find(
      (s) =>
        s.state === "Done" &&
        s.result &&
        s.destination.startsWith("agent ") &&
        s.destination.endsWith(` ${image}`),
    );
    if (same?.result) {
      log.info({ archive: rec.archive }, "repeated send to a restarted target agent: recorded result");
      return same.result;
    }
  }
  const registryImage = body.destination.type === "registry" ? body.destination.image : undefined;
  // Pending before the first byte: a release knows the registry image even if the agent dies mid-push.
  await updateSend(ctx, rec, dest, {
    destination: dest,
    state: "Pending",
    ...(registryImage ? { registryImage } : {}),
  });
  const { result, manifestDigest } = await transmit(ctx, withRecordedWorkload(body, rec), path, log, rec);
  await updateSend(ctx, rec, dest, {
    destination: dest,
    state: "Done",
    ...(registryImage ? { registryImage } : {}),
    ...(manifestDigest ? { manifestDigest } : {}),
    result,
  });
  // Transferred: the checkpoint (every memory page of the process) leaves this node now, not at
  // the release. A repeat gets the recorded result; the record stays until the release.
  await rm(path, { force: true });
  log.info({ archive: rec.archive }, "archive removed after the transfer");
  return result;
}

/**
 * A recorded checkpoint is sent only for the incarnation of the workload it was taken of: a send
 * naming another UID of it (deleted and recreated since) is refused before a byte moves.
 */
function assertSameWorkload(rec: CheckpointRecord, body: SendRequest): void {
  const was = rec.workload;
  const now = body.workload;
  if (!was || !now || was.uid === now.uid) return;
  throw new Ms2mError(
    "Forbidden",
    `the checkpoint of ${rec.container} is of ${was.kind} ${was.name} uid ${was.uid}; the send is for uid ` +
      `${now.uid}: the workload was deleted and recreated since the checkpoint, which is not restored into it`,
    { retriable: false },
  );
}

/** The request's workload, or the one recorded with the checkpoint (the image is annotated with it). */
function withRecordedWorkload(body: SendRequest, rec: CheckpointRecord): SendRequest {
  return body.workload || !rec.workload ? body : { ...body, workload: rec.workload };
}

function updateSend(ctx: AgentContext, rec: CheckpointRecord, dest: string, send: SendRecord): Promise<void> {
  return ctx.recordLocks.run(`${rec.migration}/${rec.container}`, async () => {
    const current = await ctx.records.get(rec.migration, rec.container);
    if (!current)
      throw new Ms2mError("Conflict", "the checkpoint was released during the send", { retriable: false });
    current.sends = [...(current.sends ?? []).filter((s) => s.destination !== dest), send];
    current.updatedAt = new Date().toISOString();
    await ctx.records.put(current);
  });
}

async function transmit(
  ctx: AgentContext,
  body: SendRequest,
  path: string,
  log: Logger,
  rec: CheckpointRecord | undefined,
): Promise<{ result: SendResponse; manifestDigest?: string }> {
  let ok = false;
  const operation = operationOf(body);
  try {
    const { result, manifestDigest } = await sendCheckpoint(ctx.config, body, {
      token: ctx.outboundToken,
      signal: ctx.signal,
      onBytes: (n) => ctx.metrics.bytes.inc({ operation }, n),
      expected: { size: rec?.size, digest: rec?.digest },
    });
    ok = true;
    ctx.metrics.transferDuration.observe({ operation }, result.seconds);
    ctx.metrics.transferSize.observe({ operation }, result.size);
    log.info({ ...result, archive: body.archive }, "checkpoint sent");
    return manifestDigest ? { result, manifestDigest } : { result };
  } finally {
    // A recorded archive lives until the migration's release (or the expiry sweep).
    if (!rec && (ok || !body.retainArchiveOnFailure)) await rm(path, { force: true });
  }
}
