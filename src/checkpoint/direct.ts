// Direct mode, sending side: streams an archive to the receiving agent over HTTPS in one pass.
// The body is chunked; its sha256 (computed while the bytes flow) goes in an HTTP trailer, so
// the file is read exactly once. The declared size goes in a header up front.
import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";
import { Ms2mError, reasonForCode, statusReasons, type StatusReason } from "../common/errors.ts";
import { ARCHIVE_CONTENT_TYPE, isDigest } from "./image.ts";
import { StreamMeter } from "./stream.ts";

export const HEADER_ARCHIVE_SIZE = "ms2m-archive-size";
export const HEADER_ARCHIVE_DIGEST = "ms2m-archive-digest";
export const RECEIVE_PATH = "/v1/archives";

export interface ReceiveQuery {
  /** Original container name (goes into the checkpoint annotation). */
  container: string;
  /** Local image name on the target, `localhost/<repo>:<tag>`. */
  image: string;
  /** Migration name, for logs. */
  migration?: string | undefined;
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
}

/** Sends `source` to the agent at `opts.url`; resolves with what the target loaded. */
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

  if (opts.digest !== undefined && !isDigest(opts.digest))
    throw new Ms2mError("BadRequest", "digest must be sha256:<64 hex>");
  const meter = new StreamMeter({
    maxBytes: opts.maxBytes,
    expectedSize: opts.size,
    inspect: false,
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

  const req = httpsRequest(url, {
    method: "POST",
    headers,
    ca: opts.ca,
    ...(opts.servername ? { servername: opts.servername } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const response = once(req, "response") as Promise<[IncomingMessage]>;
  // Avoid unhandled rejections while we are still writing.
  response.catch(() => undefined);
  let writeError: unknown = null;
  let sentDigest = "";
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      meter.update(chunk);
      opts.onBytes?.(chunk.length);
      if (!req.write(chunk)) await once(req, "drain");
    }
    sentDigest = opts.digest ?? meter.finish().digest;
    if (opts.digest) meter.finish(); // size checks
    if (!opts.digest) req.addTrailers({ [HEADER_ARCHIVE_DIGEST]: sentDigest });
    req.end();
  } catch (err) {
    writeError = err;
    if (err instanceof Ms2mError) {
      req.destroy(err);
      throw err;
    }
  }
  let res: IncomingMessage;
  try {
    // If the target answered early (e.g. 413), its Status explains better than a reset.
    [res] = await Promise.race([
      response,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(writeError ?? new Error("no response")),
          writeError ? 2000 : 2 ** 31 - 1,
        ).unref(),
      ),
    ]);
  } catch (err) {
    req.destroy();
    throw new Ms2mError("ServiceUnavailable", `sending to target agent failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const body = await readBounded(res, 64 * 1024);
  if (res.statusCode !== 201) throw statusError(res.statusCode ?? 500, body);
  const result = JSON.parse(body) as LoadResult;
  if (result.digest !== sentDigest) {
    throw new Ms2mError("InternalError", `target loaded ${result.digest}, sent ${sentDigest}`);
  }
  return { ...result, sentDigest };
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
