// Pushing and pulling checkpoint images with the OCI distribution API. The push streams the
// archive once: it is hashed and inspected while it is uploaded (chunked PATCH), and the digest
// is only named in the final PUT. The pull streams the layer through the same checks into an
// OCI layout; config and manifest are rebuilt locally (deterministic), never trusted.
import { rename } from "node:fs/promises";
import { Readable } from "node:stream";
import { Agent, request, type Dispatcher } from "undici";
import { Ms2mError, reasonForCode } from "../common/errors.ts";
import {
  CHECKPOINT_NAME_ANNOTATION,
  MEDIA_TYPE_CONFIG,
  MEDIA_TYPE_LAYER,
  MEDIA_TYPE_MANIFEST,
  assertContainerName,
  blobPath,
  describeCheckpointImage,
  initLayout,
  parseImageReference,
  writeLayout,
  type CheckpointImage,
  type ImageReference,
} from "./image.ts";
import { StreamMeter, receiveArchive } from "./stream.ts";

export interface RegistryOptions {
  /** Registry hosts (host[:port]) reached over plain HTTP: loopback test registries only. */
  insecureHosts?: string[];
  /** Extra CA certificates (PEM) for HTTPS registries. */
  ca?: string | Buffer | undefined;
  /** Basic credentials. */
  auth?: { username: string; password: string } | undefined;
  signal?: AbortSignal | undefined;
  dispatcher?: Dispatcher;
}

const MAX_MANIFEST_BYTES = 256 * 1024;

function baseUrl(ref: ImageReference, opts: RegistryOptions): string {
  const scheme = opts.insecureHosts?.includes(ref.host) ? "http" : "https";
  return `${scheme}://${ref.host}/v2/${ref.repository}`;
}

const dispatchers = new Map<string, Agent>();
function dispatcherFor(opts: RegistryOptions): Dispatcher {
  if (opts.dispatcher) return opts.dispatcher;
  const key = opts.ca ? String(opts.ca) : "";
  let d = dispatchers.get(key);
  if (!d) {
    d = new Agent({ connect: opts.ca ? { ca: opts.ca } : {}, bodyTimeout: 120_000, headersTimeout: 60_000 });
    dispatchers.set(key, d);
  }
  return d;
}

function headers(opts: RegistryOptions, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { ...extra };
  if (opts.auth) {
    h.authorization = `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString("base64")}`;
  }
  return h;
}

async function fail(op: string, res: Dispatcher.ResponseData): Promise<never> {
  const text = (await res.body.text().catch(() => "")).slice(0, 300);
  const reason =
    res.statusCode === 404
      ? "NotFound"
      : res.statusCode >= 500
        ? "ServiceUnavailable"
        : reasonForCode(res.statusCode);
  throw new Ms2mError(reason, `registry ${op}: HTTP ${res.statusCode} ${text}`);
}

function location(res: Dispatcher.ResponseData, base: string): URL {
  const loc = res.headers.location;
  if (typeof loc !== "string") throw new Ms2mError("InternalError", "registry upload: no Location header");
  const url = new URL(loc, base);
  if (url.origin !== new URL(base).origin)
    throw new Ms2mError("InternalError", "registry redirected upload to another origin");
  return url;
}

async function startUpload(base: string, opts: RegistryOptions): Promise<URL> {
  const res = await request(`${base}/blobs/uploads/`, {
    method: "POST",
    headers: headers(opts, { "content-length": "0" }),
    dispatcher: dispatcherFor(opts),
    signal: opts.signal,
  });
  if (res.statusCode !== 202) await fail("start upload", res);
  await res.body.dump();
  return location(res, base);
}

async function putSmallBlob(
  base: string,
  bytes: Buffer,
  digest: string,
  opts: RegistryOptions,
): Promise<void> {
  const head = await request(`${base}/blobs/${digest}`, {
    method: "HEAD",
    headers: headers(opts),
    dispatcher: dispatcherFor(opts),
    signal: opts.signal,
  });
  await head.body.dump();
  if (head.statusCode === 200) return;
  const url = await startUpload(base, opts);
  url.searchParams.set("digest", digest);
  const res = await request(url, {
    method: "PUT",
    headers: headers(opts, { "content-type": "application/octet-stream" }),
    body: bytes,
    dispatcher: dispatcherFor(opts),
    signal: opts.signal,
  });
  if (res.statusCode !== 201) await fail("put blob", res);
  await res.body.dump();
}

export interface PushResult {
  image: string;
  layerDigest: string;
  size: number;
  manifestDigest: string;
}

/**
 * Pushes the checkpoint image for `source` (the archive bytes) to `imageRef`
 * (`host/repo:tag`). The archive is read once; `maxBytes` bounds it.
 */
export async function pushCheckpointImage(
  source: Readable | AsyncIterable<Buffer>,
  imageRef: string,
  containerName: string,
  opts: RegistryOptions & { maxBytes: number; expectedSize?: number; onBytes?: (n: number) => void },
): Promise<PushResult> {
  const ref = parseImageReference(imageRef);
  assertContainerName(containerName);
  const base = baseUrl(ref, opts);
  const meter = new StreamMeter({ maxBytes: opts.maxBytes, expectedSize: opts.expectedSize, inspect: true });
  const onBytes = opts.onBytes;
  const uploadUrl = await startUpload(base, opts);
  const body = Readable.from(
    (async function* () {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        meter.update(chunk);
        onBytes?.(chunk.length);
        yield chunk;
      }
    })(),
    { objectMode: false },
  );
  let res: Dispatcher.ResponseData;
  try {
    res = await request(uploadUrl, {
      method: "PATCH",
      headers: headers(opts, { "content-type": "application/octet-stream" }),
      body,
      dispatcher: dispatcherFor(opts),
      signal: opts.signal,
    });
  } catch (err) {
    // A meter error (bad tar, too large) surfaces as the request's error cause.
    let e: unknown = err;
    while (e instanceof Error && !(e instanceof Ms2mError) && e.cause) e = e.cause;
    if (e instanceof Ms2mError) throw e;
    throw new Ms2mError("ServiceUnavailable", `registry upload failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (res.statusCode !== 202) await fail("upload", res);
  await res.body.dump();
  const { digest, size } = meter.finish();
  const finalUrl = location(res, base);
  finalUrl.searchParams.set("digest", digest);
  const put = await request(finalUrl, {
    method: "PUT",
    headers: headers(opts, { "content-length": "0" }),
    dispatcher: dispatcherFor(opts),
    signal: opts.signal,
  });
  if (put.statusCode !== 201) await fail("commit upload", put);
  await put.body.dump();

  const image = describeCheckpointImage({ digest, size }, containerName);
  await putSmallBlob(base, image.config.bytes, image.config.descriptor.digest, opts);
  const man = await request(`${base}/manifests/${ref.tag}`, {
    method: "PUT",
    headers: headers(opts, { "content-type": MEDIA_TYPE_MANIFEST }),
    body: image.manifest.bytes,
    dispatcher: dispatcherFor(opts),
    signal: opts.signal,
  });
  if (man.statusCode !== 201) await fail("put manifest", man);
  await man.body.dump();
  return { image: imageRef, layerDigest: digest, size, manifestDigest: image.manifest.descriptor.digest };
}

async function getFollowing(
  url: string,
  opts: RegistryOptions,
  accept?: string,
): Promise<Dispatcher.ResponseData> {
  let current = new URL(url);
  for (let hop = 0; hop < 4; hop++) {
    const sameOrigin = current.origin === new URL(url).origin;
    const res = await request(current, {
      method: "GET",
      // Credentials only to the registry itself, never to a redirect target (blob storage).
      headers: sameOrigin ? headers(opts, accept ? { accept } : {}) : {},
      dispatcher: dispatcherFor(opts),
      signal: opts.signal,
    });
    if (res.statusCode >= 300 && res.statusCode < 400 && typeof res.headers.location === "string") {
      await res.body.dump();
      current = new URL(res.headers.location, current);
      if (current.protocol !== "https:" && !opts.insecureHosts?.includes(current.host)) {
        throw new Ms2mError("InternalError", "registry redirected to an insecure URL");
      }
      continue;
    }
    return res;
  }
  throw new Ms2mError("InternalError", "too many registry redirects");
}

export interface PullResult {
  layerDigest: string;
  size: number;
  containerName: string;
  image: CheckpointImage;
}

/** Validates a remote manifest as a checkpoint image made the way this project makes them. */
export function parseCheckpointManifest(raw: unknown): {
  layer: { digest: string; size: number };
  containerName: string;
} {
  const bad = (why: string) => new Ms2mError("Invalid", `not a checkpoint image: ${why}`);
  const m = raw as {
    mediaType?: unknown;
    schemaVersion?: unknown;
    config?: { mediaType?: unknown };
    layers?: { mediaType?: unknown; digest?: unknown; size?: unknown }[];
    annotations?: Record<string, unknown>;
  };
  if (!m || typeof m !== "object" || m.schemaVersion !== 2 || m.mediaType !== MEDIA_TYPE_MANIFEST)
    throw bad("not an OCI manifest");
  if (m.config?.mediaType !== MEDIA_TYPE_CONFIG) throw bad("config is not an OCI config");
  if (!Array.isArray(m.layers) || m.layers.length !== 1) throw bad("exactly one layer expected");
  const layer = m.layers[0]!;
  if (layer.mediaType !== MEDIA_TYPE_LAYER) throw bad("layer is not an uncompressed OCI tar");
  if (typeof layer.digest !== "string" || !/^sha256:[a-f0-9]{64}$/.test(layer.digest))
    throw bad("bad layer digest");
  if (typeof layer.size !== "number" || !Number.isSafeInteger(layer.size) || layer.size < 0)
    throw bad("bad layer size");
  const name = m.annotations?.[CHECKPOINT_NAME_ANNOTATION];
  if (typeof name !== "string") throw bad("checkpoint annotation missing");
  assertContainerName(name);
  return { layer: { digest: layer.digest, size: layer.size }, containerName: name };
}

/**
 * Pulls a checkpoint image into the OCI layout `layoutDir` under `tag`, streaming and checking
 * the layer. `expectedDigest` (the layer digest the source reported) pins the content.
 */
export async function pullCheckpointImage(
  imageRef: string,
  layoutDir: string,
  tag: string,
  opts: RegistryOptions & {
    maxBytes: number;
    expectedDigest?: string | undefined;
    onBytes?: (n: number) => void;
  },
): Promise<PullResult> {
  const ref = parseImageReference(imageRef);
  const base = baseUrl(ref, opts);
  const res = await getFollowing(`${base}/manifests/${ref.tag}`, opts, MEDIA_TYPE_MANIFEST);
  if (res.statusCode !== 200) await fail("get manifest", res);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw new Ms2mError("Invalid", "registry manifest too large");
    }
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new Ms2mError("Invalid", "registry manifest is not JSON");
  }
  const { layer, containerName } = parseCheckpointManifest(parsed);
  if (opts.expectedDigest !== undefined && opts.expectedDigest !== layer.digest) {
    throw new Ms2mError(
      "Conflict",
      `image layer ${layer.digest} is not the expected ${opts.expectedDigest}`,
      { retriable: false },
    );
  }
  if (layer.size > opts.maxBytes)
    throw new Ms2mError("RequestEntityTooLarge", "checkpoint layer exceeds the maximum size");
  const blobs = await initLayout(layoutDir);
  const blobRes = await getFollowing(`${base}/blobs/${layer.digest}`, opts);
  if (blobRes.statusCode !== 200) await fail("get blob", blobRes);
  const part = `${blobs}/.partial`;
  const got = await receiveArchive(blobRes.body, part, {
    maxBytes: opts.maxBytes,
    expectedSize: layer.size,
    expectedDigest: layer.digest,
    signal: opts.signal,
    ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
  });
  await rename(part, blobPath(layoutDir, got.digest));
  const image = describeCheckpointImage(got, containerName);
  await writeLayout(layoutDir, image, tag, containerName);
  return { layerDigest: got.digest, size: got.size, containerName, image };
}

/**
 * Deletes a checkpoint image from its registry: `DELETE /v2/<repo>/manifests/<digest>` (the
 * distribution API deletes by digest only; the digest is resolved from the tag when not given).
 * "absent" when it is already gone; registries that refuse deletes (405 UNSUPPORTED, 401/403)
 * throw an Ms2mError naming the status.
 */
export async function deleteCheckpointImage(
  imageRef: string,
  opts: RegistryOptions & { manifestDigest?: string | undefined },
): Promise<"deleted" | "absent"> {
  const ref = parseImageReference(imageRef);
  const base = baseUrl(ref, opts);
  let digest = opts.manifestDigest;
  if (!digest) {
    const head = await request(`${base}/manifests/${ref.tag}`, {
      method: "HEAD",
      headers: headers(opts, { accept: MEDIA_TYPE_MANIFEST }),
      dispatcher: dispatcherFor(opts),
      signal: opts.signal,
    });
    await head.body.dump();
    if (head.statusCode === 404) return "absent";
    const d = head.headers["docker-content-digest"];
    if (head.statusCode !== 200 || typeof d !== "string" || !/^sha256:[a-f0-9]{64}$/.test(d)) {
      throw new Ms2mError(
        head.statusCode >= 500 ? "ServiceUnavailable" : reasonForCode(head.statusCode),
        `registry resolve manifest: HTTP ${head.statusCode}`,
      );
    }
    digest = d;
  }
  const res = await request(`${base}/manifests/${digest}`, {
    method: "DELETE",
    headers: headers(opts),
    dispatcher: dispatcherFor(opts),
    signal: opts.signal,
  });
  if (res.statusCode === 404) {
    await res.body.dump();
    return "absent";
  }
  if (res.statusCode !== 202 && res.statusCode !== 200) await fail("delete manifest", res);
  await res.body.dump();
  return "deleted";
}
