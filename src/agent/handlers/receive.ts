// `POST /v1/archives` (Direct mode, target side): streams the archive another agent sends into
// a fresh OCI layout — counted, hashed and tar-inspected while it is written — checks size and
// digest, then loads it into this node's containers-storage.
import { randomUUID } from "node:crypto";
import { rename, rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { Ms2mError } from "../../common/errors.ts";
import type { Logger } from "../../common/logger.ts";
import { HEADER_ARCHIVE_DIGEST, HEADER_ARCHIVE_SIZE, type LoadResult } from "../../checkpoint/direct.ts";
import {
  ARCHIVE_CONTENT_TYPE,
  assertContainerName,
  blobPath,
  describeCheckpointImage,
  initLayout,
  isDigest,
  writeLayout,
} from "../../checkpoint/image.ts";
import { ProgressWatchdog, stalled } from "../../checkpoint/progress.ts";
import { receiveArchive } from "../../checkpoint/stream.ts";
import { objectUidSchema } from "../../transfer/types.ts";
import { contentTypeOf } from "../body.ts";
import type { AgentContext } from "../context.ts";
import { countFailures } from "../metrics.ts";
import { MIGRATION_NAME } from "../names.ts";
import { loadAndVerify, localImage, recordLoaded } from "./load.ts";

/** The request body is the archive; `query` names container, image and (optionally) migration. */
export function receive(
  ctx: AgentContext,
  req: IncomingMessage,
  query: URLSearchParams,
  log: Logger,
): Promise<LoadResult> {
  return countFailures(ctx.metrics, "receive", () =>
    // A release of the migration waits for it.
    ctx.inflight.track(query.get("migration"), () => receiveAndLoad(ctx, req, query, log)),
  );
}

async function receiveAndLoad(
  ctx: AgentContext,
  req: IncomingMessage,
  query: URLSearchParams,
  log: Logger,
): Promise<LoadResult> {
  if (contentTypeOf(req) !== ARCHIVE_CONTENT_TYPE)
    throw new Ms2mError("UnsupportedMediaType", `content type must be ${ARCHIVE_CONTENT_TYPE}`);
  const container = assertContainerName(query.get("container") ?? "");
  const image = query.get("image") ?? "";
  const ref = localImage(image);
  const migration = query.get("migration");
  if (migration !== null && !MIGRATION_NAME.test(migration))
    throw new Ms2mError("BadRequest", "invalid migration name");
  const workloadUid = query.get("workloadUid") ?? undefined;
  if (workloadUid !== undefined && !objectUidSchema.safeParse(workloadUid).success)
    throw new Ms2mError("BadRequest", "invalid workload UID");
  const sizeText = req.headers[HEADER_ARCHIVE_SIZE] ?? req.headers["content-length"];
  if (typeof sizeText !== "string" || !/^[0-9]{1,16}$/.test(sizeText)) {
    throw new Ms2mError("BadRequest", `declared size required (${HEADER_ARCHIVE_SIZE} or Content-Length)`);
  }
  const size = Number(sizeText);
  const cl = req.headers["content-length"];
  if (cl !== undefined && Number(cl) !== size)
    throw new Ms2mError("BadRequest", "Content-Length and declared size differ");
  if (size > ctx.config.AGENT_MAX_ARCHIVE_BYTES) {
    throw new Ms2mError(
      "RequestEntityTooLarge",
      `archive of ${size} bytes exceeds the maximum ${ctx.config.AGENT_MAX_ARCHIVE_BYTES}`,
    );
  }
  const headerDigest = req.headers[HEADER_ARCHIVE_DIGEST];
  if (headerDigest !== undefined && (typeof headerDigest !== "string" || !isDigest(headerDigest))) {
    throw new Ms2mError("BadRequest", "declared digest must be sha256:<64 hex>");
  }
  const declaredTrailer = String(req.headers.trailer ?? "")
    .toLowerCase()
    .includes(HEADER_ARCHIVE_DIGEST);
  if (headerDigest === undefined && !declaredTrailer) {
    throw new Ms2mError(
      "BadRequest",
      `declared digest required (${HEADER_ARCHIVE_DIGEST} header or trailer)`,
    );
  }
  const dir = join(ctx.tmpDir, randomUUID());
  // A sender that stops sending (dead without a reset, stalled) is noticed by progress: no body
  // bytes for AGENT_PROGRESS_TIMEOUT_SECONDS ends the receive (our heartbeats keep the socket
  // itself busy, so its idle timeout cannot tell).
  const watchdog = new ProgressWatchdog(
    ctx.config.AGENT_PROGRESS_TIMEOUT_SECONDS * 1000,
    (s) => stalled("sending agent", s),
    abortedWith(ctx.signal, req),
  );
  try {
    const blobs = await initLayout(dir);
    const started = performance.now();
    const got = await receiveArchive(req, join(blobs, ".partial"), {
      maxBytes: ctx.config.AGENT_MAX_ARCHIVE_BYTES,
      expectedSize: size,
      expectedDigest: () => headerDigest ?? (req.trailers[HEADER_ARCHIVE_DIGEST] as string | undefined),
      signal: watchdog.signal,
      destroySource: false,
      onBytes: (n) => {
        watchdog.touch();
        ctx.metrics.bytes.inc({ operation: "receive" }, n);
      },
    });
    watchdog.stop();
    const receiveSeconds = (performance.now() - started) / 1000;
    ctx.metrics.transferDuration.observe({ operation: "receive" }, receiveSeconds);
    ctx.metrics.transferSize.observe({ operation: "receive" }, got.size);
    await rename(join(blobs, ".partial"), blobPath(dir, got.digest));
    // Whose checkpoint it is, on the image itself (the records say it too).
    const origin = { migrationUid: migration ?? undefined, workloadUid };
    const described = describeCheckpointImage(got, container, undefined, origin);
    await writeLayout(dir, described, ref.tag, container, origin);
    if (migration !== null) await recordLoaded(ctx, migration, container, image, "receive", workloadUid);
    const loadSeconds = await loadAndVerify(ctx, dir, ref.tag, image, got.digest, got.size);
    log.info(
      { image, digest: got.digest, size: got.size, receiveSeconds, loadSeconds },
      "checkpoint image loaded",
    );
    return { image, digest: got.digest, size: got.size, receiveSeconds, loadSeconds };
  } finally {
    watchdog.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Aborts on shutdown, and when the sender goes away before the whole body arrived. */
function abortedWith(shutdown: AbortSignal, req: IncomingMessage): AbortSignal {
  const gone = new AbortController();
  req.once("close", () => {
    if (!req.complete) gone.abort();
  });
  return AbortSignal.any([shutdown, gone.signal]);
}
