// Direct mode, sending side: streams an archive to the receiving agent over HTTPS in one pass.
// The body is chunked; its sha256 (computed while the bytes flow) goes in an HTTP trailer, so
// the file is read exactly once. The declared size goes in a header up front.
import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";
import { Ms2mError, reasonForCode, statusReasons, type StatusReason } from "../common/errors.ts";
import { ARCHIVE_CONTENT_TYPE, isDigest } from "./image.ts";
import { CONNECT_TIMEOUT_MS, DEFAULT_PROGRESS_TIMEOUT_MS, stalled } from "./progress.ts";
import { StreamMeter } from "./stream.ts";

export const HEADER_ARCHIVE_SIZE = "ms2m-archive-size";
export const HEADER_ARCHIVE_DIGEST = "ms2m-archive-digest";
export const RECEIVE_PATH = "/v1/archives";

export interface ReceiveQuery {
  /** Original container name (goes into the checkpoint annotation). */
  container: string;
  /** Local image name on the target, `localhost/<repo>:<tag>`. */
  image: string;
  /** Migration key (its UID from the controller): the target records the image under it. */
  migration?: string | undefined;
  /** UID of the workload the checkpoint is of: the target annotates the image with it. */
  workloadUid?: string | undefined;
}

export interface LoadResult {
  image: string;
  digest: string;
  size: number;
  receiveSeconds: number;
  loadSeconds: number;
}

export interface SendArchiveOptions {
  /** https://host:port of the target agent (its pod address, never a Service). */
  url: string;
  token: string;
  ca?: string | Buffer | undefined;
  /** For tests: client certificate checks are done by the server, not us. */
  servername?: string;
  size: number;
  maxBytes: number;
  signal?: AbortSignal | undefined;
  onBytes?: (n: number) => void;
  /**
   * The archive's digest when it is known beforehand (recorded at checkpoint time): sent as a
   * header, and the archive is not hashed again here — the target hashes what it receives and
   * refuses a mismatch, so the check stays end to end (file on the source → bytes on the target).
   */
  digest?: string | undefined;
  /** No bytes either way for this long = the target is dead or stalled (default 15 s). */
  progressTimeoutMs?: number | undefined;
}

/**
 * Sends `source` to the agent at `opts.url`; resolves with what the target loaded.
 *
 * Dead peers: the connection must be up within CONNECT_TIMEOUT_MS, and from then on bytes must
 * move on it at least every `progressTimeoutMs` — the body flowing out, or the target's
 * `102 Processing` heartbeats while it loads. A target that was killed (reset), vanished (no
 * answer at all) or stalls fails the send within that time with ServiceUnavailable (retriable):
 * never a wait on a socket nobody reads.
 */
export async function sendArchive(
  source: Readable | AsyncIterable<Buffer>,
  query: ReceiveQuery,
  opts: SendArchiveOptions,
): Promise<LoadResult & { sentDigest: string }> {
  const base = new URL(opts.url);
  if (base.protocol !== "https:" || base.username || base.password) {
    throw new Ms2mError("BadRequest", "target agent URL must be https://host:port without credentials");
  }
  const url = new URL(RECEIVE_PATH, base);
  url.searchParams.set("container", query.container);
  url.searchParams.set("image", query.image);
  if (query.migration) url.searchParams.set("migration", query.migration);
  if (query.workloadUid) url.searchParams.set("workloadUid", query.workloadUid);

  if (opts.digest !== undefined && !isDigest(opts.digest))
    throw new Ms2mError("BadRequest", "digest must be sha256:<64 hex>");
  // The archive is checked on the way out too (tar rules and the checkpoint layout): a bad one
  // fails here, before the target spends anything on it.
  const meter = new StreamMeter({
    maxBytes: opts.maxBytes,
    expectedSize: opts.size,
    inspect: true,
    hash: opts.digest === undefined,
  });
  const headers: Record<string, string> = {
    authorization: `Bearer ${opts.token}`,
    "content-type": ARCHIVE_CONTENT_TYPE,
    [HEADER_ARCHIVE_SIZE]: String(opts.size),
    "transfer-encoding": "chunked",
  };
  if (opts.digest) headers[HEADER_ARCHIVE_DIGEST] = opts.digest;
  else headers.trailer = HEADER_ARCHIVE_DIGEST;

  const peer = `target agent ${base.host}`;
  const progressMs = opts.progressTimeoutMs ?? DEFAULT_PROGRESS_TIMEOUT_MS;
  const req = httpsRequest(url, {
    method: "POST",
    headers,
    ca: opts.ca,
    ...(opts.servername ? { servername: opts.servername } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  // Connect bound, then "no bytes either way for progressMs" (the socket's idle timeout: writes
  // of the body and reads of the heartbeats both count).
  const connectTimer = setTimeout(
    () =>
      req.destroy(
        new Ms2mError(
          "ServiceUnavailable",
          `${peer} unreachable: no connection within ${CONNECT_TIMEOUT_MS / 1000} s`,
        ),
      ),
    CONNECT_TIMEOUT_MS,
  );
  req.once("socket", (socket) => {
    const up = () => clearTimeout(connectTimer);
    if ((socket as { connecting?: boolean }).connecting === false && !socket.destroyed) up();
    else socket.once("secureConnect", up).once("connect", up);
  });
  req.setTimeout(progressMs, () => req.destroy(stalled(peer, progressMs / 1000)));
  // Any failure of the request (reset, refused, timeout, abort) settles this.
  const failed = new Promise<never>((_, reject) => req.once("error", reject));
  failed.catch(() => undefined);
  const response = Promise.race([once(req, "response") as Promise<[IncomingMessage]>, failed]);
  response.catch(() => undefined);
  let early: IncomingMessage | undefined;
  void response.then(([r]) => (early = r)).catch(() => undefined);

  let sentDigest = "";
  try {
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        // The target answered before the end (a refusal such as 413/422): stop sending.
        if (early) break;
        meter.update(chunk);
        opts.onBytes?.(chunk.length);
        if (!req.write(chunk)) await Promise.race([once(req, "drain"), failed, response]);
      }
      if (!early) {
        sentDigest = opts.digest ?? meter.finish().digest;
        if (opts.digest) meter.finish(); // size checks
        meter.verifyLayout();
        if (!opts.digest) req.addTrailers({ [HEADER_ARCHIVE_DIGEST]: sentDigest });
        req.end();
      }
    } catch (err) {
      if (err instanceof Ms2mError && !early) {
        // Our own refusal (bad archive, size): the target drops the partial body.
        req.destroy(err);
        throw err;
      }
      // A write failed: the target may have answered first; its Status explains better.
      await Promise.race([response, new Promise((r) => setTimeout(r, 2000).unref())]).catch(() => undefined);
      if (!early) throw err;
    }
    const [res] = await response;
    const body = await readBounded(res, 64 * 1024);
    if (res.statusCode !== 201) throw statusError(res.statusCode ?? 500, body);
    if (early && !sentDigest)
      throw new Ms2mError("InternalError", `${peer} answered before the whole archive was sent`);
    const result = JSON.parse(body) as LoadResult;
    if (result.digest !== sentDigest) {
      throw new Ms2mError("InternalError", `target loaded ${result.digest}, sent ${sentDigest}`);
    }
    return { ...result, sentDigest };
  } catch (err) {
    req.destroy();
    if (err instanceof Ms2mError) throw err;
    if (opts.signal?.aborted) throw new Ms2mError("ServiceUnavailable", "transfer aborted", { cause: err });
    throw new Ms2mError("ServiceUnavailable", `sending to ${peer} failed: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    clearTimeout(connectTimer);
  }
}

export async function readBounded(stream: AsyncIterable<Buffer>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    n += chunk.length;
    if (n > max) throw new Ms2mError("InternalError", "response too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Turns a Kubernetes Status body (or anything else) into an Ms2mError. */
export function statusError(code: number, body: string): Ms2mError {
  try {
    const s = JSON.parse(body) as { kind?: string; reason?: string; message?: string };
    if (
      s.kind === "Status" &&
      typeof s.reason === "string" &&
      s.reason in statusReasons &&
      typeof s.message === "string"
    ) {
      return new Ms2mError(s.reason as StatusReason, s.message);
    }
  } catch {
    // fall through
  }
  return new Ms2mError(reasonForCode(code), `HTTP ${code}: ${body.slice(0, 300)}`);
}
