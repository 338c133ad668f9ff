// Pushing and pulling checkpoint images with the OCI distribution API. The push streams the
// archive once: it is hashed and inspected while it is uploaded (chunked PATCH), and the digest
// is only named in the final PUT. The pull streams the layer through the same checks into an
// OCI layout; config and manifest are rebuilt locally (deterministic), never trusted.
import { createHash } from "node:crypto";
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
  isDigest,
  originOf,
  parseImageReference,
  writeLayout,
  type CheckpointImage,
  type CheckpointOrigin,
  type ImageReference,
} from "./image.ts";
import {
  LayerEncryptor,
  MEDIA_TYPE_LAYER_ENCRYPTED,
  openEncryptedLayer,
  type LayerDecryptor,
} from "./encryption.ts";
import { CONNECT_TIMEOUT_MS, DEFAULT_PROGRESS_TIMEOUT_MS } from "./progress.ts";
import { StreamMeter, receiveArchive } from "./stream.ts";

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Registry hosts (host[:port]) reached over plain HTTP: loopback test registries only. */
  insecureHosts?: string[];
  /** Extra CA certificates (PEM) for HTTPS registries (and their token servers). */
  ca?: string | Buffer | undefined;
  /**
   * Credentials: sent as Basic to a registry that asks for Basic, or to the token server a
   * registry names in a Bearer challenge. A function picks them per registry host.
   */
  auth?: RegistryCredentials | ((host: string) => RegistryCredentials | undefined) | undefined;
  signal?: AbortSignal | undefined;
  dispatcher?: Dispatcher;
}

const MAX_MANIFEST_BYTES = 256 * 1024;
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;

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
    // Dead registries: connect bound, then progress — undici's headers timeout is refreshed while
    // an upload body is written, its body timeout runs between received chunks.
    d = new Agent({
      connect: { ...(opts.ca ? { ca: opts.ca } : {}), timeout: CONNECT_TIMEOUT_MS },
      bodyTimeout: DEFAULT_PROGRESS_TIMEOUT_MS,
      headersTimeout: DEFAULT_PROGRESS_TIMEOUT_MS,
    });
    dispatchers.set(key, d);
  }
  return d;
}

// ---- authentication: Basic, or Bearer tokens per the distribution token spec ----
//
// Nothing is sent before a registry asks: the first request to a registry goes without
// credentials, a 401 names the scheme (remembered per registry origin), and every later
// request authenticates up front — so a streamed upload body never meets a 401 it could not
// replay. Bearer: GET <realm>?service=…&scope=… with Basic credentials (or anonymously), token
// or access_token from the JSON answer, cached per realm/service/scope/identity until
// expires_in (default 60 s) minus a margin. Credentials and tokens never appear in errors.

interface Challenge {
  scheme: "basic" | "bearer";
  realm?: string;
  service?: string;
  scope?: string;
  error?: string;
}

/** Parses a WWW-Authenticate header (first Basic or Bearer challenge). */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const text = Array.isArray(header) ? header.join(", ") : (header ?? "");
  const re = /(Basic|Bearer)\s*((?:[a-zA-Z_][\w-]*\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^\s,"]*)\s*,?\s*)*)/i;
  const m = re.exec(text);
  if (!m) return undefined;
  const c: Challenge = { scheme: m[1]!.toLowerCase() as "basic" | "bearer" };
  const params = /([a-zA-Z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))/g;
  for (const p of (m[2] ?? "").matchAll(params)) {
    const key = p[1]!.toLowerCase();
    const value = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : (p[3] ?? "");
    if (key === "realm" || key === "service" || key === "scope" || key === "error") c[key] = value;
  }
  return c;
}

const challenges = new Map<string, Challenge>();
const tokens = new Map<string, { token: string; expiresAt: number }>();
let tokenRequests = 0;

/** Forgets remembered challenges and cached tokens (tests; credentials rotated). */
export function clearRegistryAuthCache(): void {
  challenges.clear();
  tokens.clear();
}

/** How many token-server requests this process made (tests, diagnostics). */
export function registryTokenRequests(): number {
  return tokenRequests;
}

function credentialsFor(host: string, opts: RegistryOptions): RegistryCredentials | undefined {
  return typeof opts.auth === "function" ? opts.auth(host) : opts.auth;
}

function basic(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

/**
 * Parses the agent's registry credentials file: `username:password`, or a docker config JSON
 * (`.dockerconfigjson` of a kubernetes.io/dockerconfigjson Secret: `auths.<host>.auth` or
 * `username`/`password`), picked per registry host.
 */
export function parseRegistryCredentials(
  text: string,
): RegistryCredentials | ((host: string) => RegistryCredentials | undefined) | undefined {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    let cfg: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
    try {
      cfg = JSON.parse(trimmed) as typeof cfg;
    } catch {
      throw new Ms2mError("BadRequest", "registry credentials file is neither user:password nor JSON");
    }
    const byHost = new Map<string, RegistryCredentials>();
    for (const [key, entry] of Object.entries(cfg.auths ?? {})) {
      let host = key;
      try {
        if (/^[a-z]+:\/\//i.test(key)) host = new URL(key).host;
      } catch {
        continue;
      }
      host = host.replace(/\/.*$/, "");
      let username = entry.username;
      let password = entry.password;
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
        const colon = decoded.indexOf(":");
        if (colon > 0) [username, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
      }
      if (username && password !== undefined) byHost.set(host, { username, password });
    }
    const hub = byHost.get("index.docker.io");
    return (host) =>
      byHost.get(host) ?? (host === "docker.io" || host === "registry-1.docker.io" ? hub : undefined);
  }
  const colon = trimmed.indexOf(":");
  return colon > 0 ? { username: trimmed.slice(0, colon), password: trimmed.slice(colon + 1) } : undefined;
}

/** What one registry call needs: the repository and the actions of its token scope. */
interface Access {
  repository: string;
  actions: ("pull" | "push" | "delete")[];
}

function scopeOf(access: Access): string {
  return `repository:${access.repository}:${access.actions.join(",")}`;
}

async function fetchToken(
  origin: string,
  host: string,
  c: Challenge,
  scopes: string[],
  opts: RegistryOptions,
  fresh: boolean,
): Promise<string> {
  if (!c.realm) throw new Ms2mError("Unauthorized", `registry ${host}: Bearer challenge without a realm`);
  let realm: URL;
  try {
    realm = new URL(c.realm);
  } catch {
    throw new Ms2mError("Unauthorized", `registry ${host}: unusable token realm`);
  }
  if (realm.username || realm.password || realm.hash)
    throw new Ms2mError("Unauthorized", `registry ${host}: unusable token realm`);
  if (
    realm.protocol !== "https:" &&
    !(realm.protocol === "http:" && opts.insecureHosts?.includes(realm.host))
  )
    throw new Ms2mError("Unauthorized", `registry ${host}: token realm ${realm.origin} is not https`);
  const creds = credentialsFor(host, opts);
  const identity = creds
    ? createHash("sha256").update(`${creds.username}\0${creds.password}`).digest("hex")
    : "anonymous";
  const key = [origin, realm.href, c.service ?? "", ...scopes, identity].join("\n");
  const cached = tokens.get(key);
  if (!fresh && cached && cached.expiresAt > Date.now()) return cached.token;
  if (c.service) realm.searchParams.set("service", c.service);
  for (const s of scopes) realm.searchParams.append("scope", s);
  tokenRequests++;
  let res: Dispatcher.ResponseData;
  try {
    res = await request(realm, {
      method: "GET",
      headers: creds ? { authorization: basic(creds) } : {},
      dispatcher: dispatcherFor(opts),
      signal: opts.signal,
    });
  } catch (err) {
    throw new Ms2mError(
      "ServiceUnavailable",
      `registry token server ${realm.origin} unreachable: ${(err as Error).message}`,
    );
  }
  let text: string;
  try {
    text = await readLimited(res.body, MAX_TOKEN_RESPONSE_BYTES);
  } catch {
    throw new Ms2mError("ServiceUnavailable", `registry token server ${realm.origin}: answer too large`);
  }
  if (res.statusCode === 401 || res.statusCode === 403) {
    throw new Ms2mError(
      res.statusCode === 401 ? "Unauthorized" : "Forbidden",
      `registry ${host}: token server ${realm.origin} refused ${creds ? `the credentials of ${JSON.stringify(creds.username)}` : "anonymous access"} (HTTP ${res.statusCode})`,
      { retriable: false },
    );
  }
  if (res.statusCode !== 200) {
    throw new Ms2mError(
      res.statusCode >= 500 ? "ServiceUnavailable" : reasonForCode(res.statusCode),
      `registry ${host}: token server ${realm.origin} answered HTTP ${res.statusCode}`,
    );
  }
  let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Ms2mError("ServiceUnavailable", `registry ${host}: token server answer is not JSON`);
  }
  const token = typeof body.token === "string" && body.token ? body.token : body.access_token;
  if (typeof token !== "string" || !/^[\x21-\x7e]{1,16384}$/.test(token))
    throw new Ms2mError("ServiceUnavailable", `registry ${host}: token server answer has no usable token`);
  // The spec's default lifetime is 60 s; renew before expiry (a quarter, at most 30 s, early).
  const lifetime =
    typeof body.expires_in === "number" && Number.isFinite(body.expires_in) && body.expires_in > 0
      ? body.expires_in * 1000
      : 60_000;
  tokens.set(key, { token, expiresAt: Date.now() + lifetime - Math.min(30_000, lifetime / 4) });
  if (tokens.size > 1000) tokens.delete(tokens.keys().next().value!);
  return token;
}

async function authorization(
  url: URL,
  access: Access,
  opts: RegistryOptions,
  fresh = false,
): Promise<string | undefined> {
  const c = challenges.get(url.origin);
  if (!c) return undefined;
  const creds = credentialsFor(url.host, opts);
  if (c.scheme === "basic") return creds ? basic(creds) : undefined;
  const scopes = [scopeOf(access)];
  // A registry asking for more than we thought (insufficient_scope names it): ask for that too.
  if (c.scope && !scopes.includes(c.scope)) scopes.push(c.scope);
  return `Bearer ${await fetchToken(url.origin, url.host, c, scopes, opts, fresh)}`;
}

async function readLimited(body: AsyncIterable<Buffer>, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += chunk.length;
    if (n > max) throw new Error("too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

interface RegistryRequest {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  headers?: Record<string, string>;
  /** A Buffer can be replayed after a 401; a stream cannot (it is sent authenticated up front). */
  body?: Buffer | Readable;
}

/**
 * One registry call with authentication: credentials up front when the registry's scheme is
 * known, otherwise (and after an expired/insufficient token) one retry answering the challenge.
 */
async function registryRequest(
  target: string | URL,
  access: Access,
  init: RegistryRequest,
  opts: RegistryOptions,
): Promise<Dispatcher.ResponseData> {
  const url = new URL(target);
  const send = async (auth: string | undefined) => {
    try {
      return await request(url, {
        method: init.method,
        headers: { ...init.headers, ...(auth ? { authorization: auth } : {}) },
        ...(init.body ? { body: init.body } : {}),
        dispatcher: dispatcherFor(opts),
        signal: opts.signal,
      });
    } catch (err) {
      throw unreachable(url, init.method, err);
    }
  };
  const first = await authorization(url, access, opts);
  const res = await send(first);
  if (res.statusCode !== 401) return res;
  const c = parseChallenge(res.headers["www-authenticate"]);
  const replayable = !(init.body instanceof Readable);
  if (!c || !replayable) return res;
  // Basic credentials refused, or none to offer: nothing a retry would change.
  if (c.scheme === "basic" && (first?.startsWith("Basic ") || !credentialsFor(url.host, opts))) {
    challenges.set(url.origin, c);
    return res;
  }
  await res.body.dump();
  challenges.set(url.origin, c);
  // A token we already sent was refused (expired early, revoked, or too narrow): a fresh one.
  return send(await authorization(url, access, opts, first !== undefined));
}

/**
 * A registry call that ended without an answer (refused, reset, no progress): retriable, naming
 * the registry. An Ms2mError cause (a meter refusal of the streamed body) is kept as is.
 */
function unreachable(url: URL, method: string, err: unknown): Ms2mError {
  let e: unknown = err;
  while (e instanceof Error && !(e instanceof Ms2mError) && e.cause) e = e.cause;
  if (e instanceof Ms2mError) return e;
  const code = (err as { code?: string }).code ?? "";
  const why =
    code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT"
      ? `stopped responding: no progress for ${DEFAULT_PROGRESS_TIMEOUT_MS / 1000} s`
      : code === "UND_ERR_CONNECT_TIMEOUT"
        ? `unreachable: no connection within ${CONNECT_TIMEOUT_MS / 1000} s`
        : `unreachable: ${(err as Error).message}`;
  return new Ms2mError("ServiceUnavailable", `registry ${url.host} (${method}) ${why}`, { cause: err });
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return { ...extra };
}

async function fail(op: string, res: Dispatcher.ResponseData, access?: Access): Promise<never> {
  const text = (await res.body.text().catch(() => "")).slice(0, 300);
  const reason =
    res.statusCode === 404
      ? "NotFound"
      : res.statusCode >= 500
        ? "ServiceUnavailable"
        : reasonForCode(res.statusCode);
  let hint = "";
  if (res.statusCode === 401 || res.statusCode === 403) {
    const c = parseChallenge(res.headers["www-authenticate"]);
    if (c?.error === "insufficient_scope" || res.statusCode === 403)
      hint = access
        ? ` (the credentials do not grant ${access.actions.join(",")} on ${access.repository})`
        : " (insufficient scope)";
    else hint = " (authentication required or refused)";
  }
  throw new Ms2mError(
    res.statusCode === 401 && hint.startsWith(" (the credentials") ? "Forbidden" : reason,
    `registry ${op}: HTTP ${res.statusCode}${hint} ${text}`.trim(),
    res.statusCode === 401 || res.statusCode === 403 ? { retriable: false } : undefined,
  );
}

function location(res: Dispatcher.ResponseData, base: string): URL {
  const loc = res.headers.location;
  if (typeof loc !== "string") throw new Ms2mError("InternalError", "registry upload: no Location header");
  const url = new URL(loc, base);
  if (url.origin !== new URL(base).origin)
    throw new Ms2mError("InternalError", "registry redirected upload to another origin");
  return url;
}

async function startUpload(base: string, access: Access, opts: RegistryOptions): Promise<URL> {
  const res = await registryRequest(
    `${base}/blobs/uploads/`,
    access,
    { method: "POST", headers: headers({ "content-length": "0" }) },
    opts,
  );
  if (res.statusCode !== 202) await fail("start upload", res, access);
  await res.body.dump();
  return location(res, base);
}

async function putSmallBlob(
  base: string,
  bytes: Buffer,
  digest: string,
  access: Access,
  opts: RegistryOptions,
): Promise<void> {
  const head = await registryRequest(`${base}/blobs/${digest}`, access, { method: "HEAD" }, opts);
  await head.body.dump();
  if (head.statusCode === 200) return;
  const url = await startUpload(base, access, opts);
  url.searchParams.set("digest", digest);
  const res = await registryRequest(
    url,
    access,
    { method: "PUT", headers: headers({ "content-type": "application/octet-stream" }), body: bytes },
    opts,
  );
  if (res.statusCode !== 201) await fail("put blob", res, access);
  await res.body.dump();
}

export interface PushResult {
  image: string;
  /** The archive's sha256 (the image's diffID; the blob's digest unless encrypted). */
  layerDigest: string;
  /** Encrypted: the ciphertext blob's digest. */
  blobDigest?: string;
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
  opts: RegistryOptions & {
    maxBytes: number;
    expectedSize?: number;
    /**
     * The archive's digest when known beforehand (recorded at checkpoint time): not hashed
     * again; the registry verifies the upload against it when the upload is committed.
     */
    expectedDigest?: string | undefined;
    onBytes?: (n: number) => void;
    /** Encrypt the layer to these PEM public keys (encryption.ts): the registry holds only ciphertext. */
    encryptTo?: string[] | undefined;
    /** Migration and workload UIDs, annotated on the manifest (and labels of the config). */
    origin?: CheckpointOrigin | undefined;
  },
): Promise<PushResult> {
  const ref = parseImageReference(imageRef);
  assertContainerName(containerName);
  const base = baseUrl(ref, opts);
  const access: Access = { repository: ref.repository, actions: ["pull", "push"] };
  if (opts.expectedDigest !== undefined && !isDigest(opts.expectedDigest))
    throw new Ms2mError("BadRequest", "digest must be sha256:<64 hex>");
  const encryptor = opts.encryptTo?.length ? new LayerEncryptor(opts.encryptTo) : undefined;
  const meter = new StreamMeter({
    maxBytes: opts.maxBytes,
    expectedSize: opts.expectedSize,
    inspect: true,
    // A recorded digest is not hashed again. Encrypted, the registry verifies only the
    // ciphertext; the recorded digest goes into the key options, and the target checks the
    // decrypted archive against it (and against the one the controller pins): a mismatch fails
    // the pull, as a Direct receive fails.
    hash: opts.expectedDigest === undefined,
  });
  const onBytes = opts.onBytes;
  // Learns the registry's auth scheme (and gets a token) before the body that cannot be replayed.
  const uploadUrl = await startUpload(base, access, opts);
  const body = Readable.from(
    (async function* () {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        meter.update(chunk);
        onBytes?.(chunk.length);
        yield encryptor ? encryptor.update(chunk) : chunk;
      }
    })(),
    { objectMode: false },
  );
  let res: Dispatcher.ResponseData;
  try {
    res = await registryRequest(
      uploadUrl,
      access,
      { method: "PATCH", headers: headers({ "content-type": "application/octet-stream" }), body },
      opts,
    );
  } catch (err) {
    // A meter error (bad tar, too large) surfaces as the request's error cause.
    let e: unknown = err;
    while (e instanceof Error && !(e instanceof Ms2mError) && e.cause) e = e.cause;
    if (e instanceof Ms2mError) throw e;
    throw new Ms2mError("ServiceUnavailable", `registry upload failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (res.statusCode !== 202) await fail("upload", res, access);
  await res.body.dump();
  const finished = meter.finish();
  // Nothing is committed (the upload is only a session until the PUT) unless the archive is a
  // complete checkpoint.
  meter.verifyLayout();
  const digest = opts.expectedDigest ?? finished.digest;
  const size = finished.size;
  const encrypted = encryptor?.finish(digest);
  const finalUrl = location(res, base);
  finalUrl.searchParams.set("digest", encrypted?.digest ?? digest);
  const put = await registryRequest(
    finalUrl,
    access,
    { method: "PUT", headers: headers({ "content-length": "0" }) },
    opts,
  );
  if (put.statusCode !== 201) await fail("commit upload", put, access);
  await put.body.dump();

  const image = describeCheckpointImage({ digest, size }, containerName, encrypted, opts.origin);
  await putSmallBlob(base, image.config.bytes, image.config.descriptor.digest, access, opts);
  const man = await registryRequest(
    `${base}/manifests/${ref.tag}`,
    access,
    { method: "PUT", headers: headers({ "content-type": MEDIA_TYPE_MANIFEST }), body: image.manifest.bytes },
    opts,
  );
  if (man.statusCode !== 201) await fail("put manifest", man, access);
  await man.body.dump();
  return {
    image: imageRef,
    layerDigest: digest,
    size,
    manifestDigest: image.manifest.descriptor.digest,
    ...(encrypted ? { blobDigest: encrypted.digest } : {}),
  };
}

async function getFollowing(
  url: string,
  access: Access,
  opts: RegistryOptions,
  accept?: string,
): Promise<Dispatcher.ResponseData> {
  let current = new URL(url);
  for (let hop = 0; hop < 4; hop++) {
    const sameOrigin = current.origin === new URL(url).origin;
    // Credentials only to the registry itself, never to a redirect target (blob storage).
    const res = sameOrigin
      ? await registryRequest(current, access, { method: "GET", headers: accept ? { accept } : {} }, opts)
      : await request(current, { method: "GET", dispatcher: dispatcherFor(opts), signal: opts.signal }).catch(
          (err: unknown) => {
            throw unreachable(current, "GET", err);
          },
        );
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
  /** The migration and workload UIDs the image's manifest names (absent: an image made before them). */
  origin: CheckpointOrigin;
}

/** Validates a remote manifest as a checkpoint image made the way this project makes them. */
export function parseCheckpointManifest(raw: unknown): {
  layer: { digest: string; size: number; encrypted: boolean; annotations?: Record<string, unknown> };
  containerName: string;
  origin: CheckpointOrigin;
} {
  const bad = (why: string) => new Ms2mError("Invalid", `not a checkpoint image: ${why}`);
  const m = raw as {
    mediaType?: unknown;
    schemaVersion?: unknown;
    config?: { mediaType?: unknown };
    layers?: {
      mediaType?: unknown;
      digest?: unknown;
      size?: unknown;
      annotations?: Record<string, unknown>;
    }[];
    annotations?: Record<string, unknown>;
  };
  if (!m || typeof m !== "object" || m.schemaVersion !== 2 || m.mediaType !== MEDIA_TYPE_MANIFEST)
    throw bad("not an OCI manifest");
  if (m.config?.mediaType !== MEDIA_TYPE_CONFIG) throw bad("config is not an OCI config");
  if (!Array.isArray(m.layers) || m.layers.length !== 1) throw bad("exactly one layer expected");
  const layer = m.layers[0]!;
  const encrypted = layer.mediaType === MEDIA_TYPE_LAYER_ENCRYPTED;
  if (layer.mediaType !== MEDIA_TYPE_LAYER && !encrypted)
    throw bad("layer is not an uncompressed OCI tar (plain or encrypted)");
  if (typeof layer.digest !== "string" || !/^sha256:[a-f0-9]{64}$/.test(layer.digest))
    throw bad("bad layer digest");
  if (typeof layer.size !== "number" || !Number.isSafeInteger(layer.size) || layer.size < 0)
    throw bad("bad layer size");
  const name = m.annotations?.[CHECKPOINT_NAME_ANNOTATION];
  if (typeof name !== "string") throw bad("checkpoint annotation missing");
  assertContainerName(name);
  return {
    layer: {
      digest: layer.digest,
      size: layer.size,
      encrypted,
      ...(encrypted && layer.annotations ? { annotations: layer.annotations } : {}),
    },
    containerName: name,
    origin: originOf(m.annotations),
  };
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
    /**
     * PEM private keys for an encrypted image (decrypted in the stream, nothing stored in
     * clear before every check passed). Given keys also mean the image must be encrypted: a
     * plaintext image in its place is refused.
     */
    decryptWith?: string[] | undefined;
    /**
     * Called with the origin the manifest names, before any layer byte is fetched: throws to
     * refuse an image of another migration or another incarnation of the workload.
     */
    checkOrigin?: ((origin: CheckpointOrigin) => void) | undefined;
  },
): Promise<PullResult> {
  const ref = parseImageReference(imageRef);
  const base = baseUrl(ref, opts);
  const access: Access = { repository: ref.repository, actions: ["pull"] };
  const res = await getFollowing(`${base}/manifests/${ref.tag}`, access, opts, MEDIA_TYPE_MANIFEST);
  if (res.statusCode !== 200) await fail("get manifest", res, access);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > MAX_MANIFEST_BYTES) {
        res.body.destroy();
        throw new Ms2mError("Invalid", "registry manifest too large");
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw unreachable(new URL(base), "GET", err);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new Ms2mError("Invalid", "registry manifest is not JSON");
  }
  const { layer, containerName, origin } = parseCheckpointManifest(parsed);
  opts.checkOrigin?.(origin);
  if (opts.decryptWith?.length && !layer.encrypted)
    throw new Ms2mError(
      "Forbidden",
      `checkpoint image ${imageRef} is not encrypted, but the migration asks for encryption`,
      { retriable: false },
    );
  const decryptor = layer.encrypted
    ? openEncryptedLayer(layer.annotations, opts.decryptWith, imageRef)
    : undefined;
  // The archive's digest: the blob's, or (encrypted) the one the authenticated key options name.
  const plainDigest = decryptor?.plainDigest ?? layer.digest;
  if (opts.expectedDigest !== undefined && opts.expectedDigest !== plainDigest) {
    throw new Ms2mError("Conflict", `image layer ${plainDigest} is not the expected ${opts.expectedDigest}`, {
      retriable: false,
    });
  }
  if (layer.size > opts.maxBytes)
    throw new Ms2mError("RequestEntityTooLarge", "checkpoint layer exceeds the maximum size");
  const blobs = await initLayout(layoutDir);
  const blobRes = await getFollowing(`${base}/blobs/${layer.digest}`, access, opts);
  if (blobRes.statusCode !== 200) await fail("get blob", blobRes, access);
  const part = `${blobs}/.partial`;
  const decrypting = decryptor ? new DecryptingBody(blobRes.body, decryptor, layer) : undefined;
  let got: Awaited<ReturnType<typeof receiveArchive>>;
  try {
    got = await receiveArchive(decrypting ? decrypting.chunks() : blobRes.body, part, {
      maxBytes: opts.maxBytes,
      expectedSize: layer.size,
      expectedDigest: plainDigest,
      signal: opts.signal,
      ...(opts.onBytes ? { onBytes: opts.onBytes } : {}),
    });
  } catch (err) {
    // A check of the decrypted bytes failed: if the ciphertext was tampered with, say so.
    if (decrypting && !opts.signal?.aborted) throw (await decrypting.authenticate()) ?? err;
    throw err;
  } finally {
    await decrypting?.close();
  }
  await rename(part, blobPath(layoutDir, got.digest));
  const image = describeCheckpointImage(got, containerName, undefined, origin);
  await writeLayout(layoutDir, image, tag, containerName, origin);
  return { layerDigest: got.digest, size: got.size, containerName, image, origin };
}

/**
 * The plaintext of an encrypted blob, chunk by chunk. Before the last chunk is handed on, the
 * ciphertext's size (the manifest's) and its HMAC are checked: a tampered blob fails the
 * receive, whose partial file is then removed. (The ciphertext's sha256 is not computed: the
 * keyed HMAC authenticates every byte of it, and the decrypted archive's sha256 is checked
 * against the digest the key options and the caller pin — one hash pass less per pull.) The body is read by hand (not `for await`),
 * so that after a receive that failed on the (unauthenticated) plaintext — a tampered tar header
 * trips the layout check before the HMAC can be checked — `authenticate` can read the rest of the
 * ciphertext and name the real cause.
 */
class DecryptingBody {
  private readonly it: AsyncIterator<Buffer>;
  private size = 0;
  private readonly decryptor: LayerDecryptor;
  private readonly layer: { digest: string; size: number };
  private verdict: Ms2mError | null | undefined;
  constructor(
    body: AsyncIterable<Buffer>,
    decryptor: LayerDecryptor,
    layer: { digest: string; size: number },
  ) {
    this.it = body[Symbol.asyncIterator]();
    this.decryptor = decryptor;
    this.layer = layer;
  }

  async *chunks(): AsyncGenerator<Buffer> {
    let held: Buffer | undefined;
    for (;;) {
      const r = await this.it.next();
      if (r.done) break;
      this.take(r.value);
      if (held) yield held;
      held = this.decryptor.update(r.value);
    }
    const verdict = this.check();
    if (verdict) throw verdict;
    if (held) yield held;
  }

  private take(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.layer.size) throw this.mismatch();
  }

  private mismatch(): Ms2mError {
    return new Ms2mError("BadRequest", "encrypted layer does not match its manifest size", {
      retriable: false,
    });
  }

  private check(): Ms2mError | null {
    if (this.verdict !== undefined) return this.verdict;
    if (this.size !== this.layer.size) return (this.verdict = this.mismatch());
    try {
      this.decryptor.finish();
      return (this.verdict = null);
    } catch (err) {
      return (this.verdict = err as Ms2mError);
    }
  }

  /**
   * After a failed receive: reads what is left of the ciphertext (at most the manifest's size)
   * and returns the integrity error if the blob was tampered with; undefined when it was not,
   * or cannot be told (the connection failed).
   */
  async authenticate(): Promise<Ms2mError | undefined> {
    if (this.verdict !== undefined) return this.verdict ?? undefined;
    try {
      for (;;) {
        const r = await this.it.next();
        if (r.done) break;
        this.take(r.value);
        this.decryptor.authenticate(r.value);
      }
    } catch (err) {
      if (err instanceof Ms2mError) return err;
      return undefined;
    } finally {
      await this.it.return?.();
    }
    return this.check() ?? undefined;
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
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
    const pull: Access = { repository: ref.repository, actions: ["pull"] };
    const head = await registryRequest(
      `${base}/manifests/${ref.tag}`,
      pull,
      { method: "HEAD", headers: headers({ accept: MEDIA_TYPE_MANIFEST }) },
      opts,
    );
    if (head.statusCode === 404) {
      await head.body.dump();
      return "absent";
    }
    const d = head.headers["docker-content-digest"];
    if (head.statusCode !== 200) await fail("resolve manifest", head, pull);
    await head.body.dump();
    if (typeof d !== "string" || !/^sha256:[a-f0-9]{64}$/.test(d))
      throw new Ms2mError("InternalError", "registry resolve manifest: no usable Docker-Content-Digest");
    digest = d;
  }
  // Deleting needs the "delete" action (distribution; Harbor), asked for on its own scope.
  const del: Access = { repository: ref.repository, actions: ["delete"] };
  const res = await registryRequest(`${base}/manifests/${digest}`, del, { method: "DELETE" }, opts);
  if (res.statusCode === 404) {
    await res.body.dump();
    return "absent";
  }
  if (res.statusCode !== 202 && res.statusCode !== 200) await fail("delete manifest", res, del);
  await res.body.dump();
  return "deleted";
}
