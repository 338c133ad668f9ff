// The ms2m-agent HTTPS server: receives archives (direct mode), sends local checkpoints to
// another agent or a registry, pulls from a registry, asks the local kubelet for checkpoints.
import { randomUUID } from "node:crypto";
import { lstat, mkdir, readFile, readdir, rename, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, join } from "node:path";
import { Agent as UndiciAgent, request } from "undici";
import type { z } from "zod";
import { Ms2mError, describeError } from "../common/errors.ts";
import { createLogger, type Logger } from "../common/logger.ts";
import {
  HEADER_ARCHIVE_DIGEST,
  HEADER_ARCHIVE_SIZE,
  RECEIVE_PATH,
  readBounded,
} from "../checkpoint/direct.ts";
import {
  ARCHIVE_CONTENT_TYPE,
  assertContainerName,
  blobPath,
  describeCheckpointImage,
  initLayout,
  isDigest,
  parseImageReference,
  writeLayout,
} from "../checkpoint/image.ts";
import { deleteCheckpointImage, pullCheckpointImage, type RegistryOptions } from "../checkpoint/registry.ts";
import {
  deleteStoredImage,
  loadLayoutIntoStorage,
  storedManifest,
  type StorageConfig,
} from "../checkpoint/skopeo.ts";
import { digestFile, receiveArchive } from "../checkpoint/stream.ts";
import { checkpointArchivePattern, resolveArchiveName } from "../checkpoint/kubelet-archives.ts";
import { Authenticator, type AgentOperation, type Principal, type Reviewer } from "./auth.ts";
import type { AgentConfig } from "./config.ts";
import { createMetrics, type AgentMetrics, type Operation } from "./metrics.ts";
import { CheckpointRecords } from "./records.ts";
import { ensureBaseImage } from "./base-image.ts";
import { inspectRuntime, requestedRuntime } from "./runtime.ts";
import { registryOptions, sendCheckpoint } from "./send.ts";
import {
  baseImageRequestSchema,
  checkpointRequestSchema,
  pullRequestSchema,
  sendRequestSchema,
  type CheckpointRecord,
  type CheckpointResponse,
  type PullResponse,
  type ReleaseResponse,
  type SendRecord,
  type SendResponse,
} from "../transfer/types.ts";

export interface AgentDeps {
  config: AgentConfig;
  reviewer: Reviewer;
  logger?: Logger;
  metrics?: AgentMetrics;
  /** Token presented to other agents (default: read AGENT_TOKEN_FILE on every use). */
  outboundToken?: () => Promise<string>;
}

const migrationRe = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const containerRe = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const JSON_LIMIT = 64 * 1024;
/** Kubelet checkpoint timeout assumed when the request names none (runtime request timeout + margin). */
const DEFAULT_CHECKPOINT_TIMEOUT_SECONDS = 240;
/** After its timeout, how long a Pending checkpoint whose agent restarted may still produce an archive. */
const PENDING_GRACE_MS = 60_000;

type SendBody = z.infer<typeof sendRequestSchema>;
/** The POST commands (the runtime report is a read: its own route). */
type Command = Exclude<AgentOperation, "runtime"> | "image";
type CheckpointBody = z.infer<typeof checkpointRequestSchema>;

/** Identity of a send destination in the record: the same migration+container+destination is sent once. */
function destinationKey(d: SendBody["destination"]): string {
  return d.type === "agent" ? `agent ${d.url} ${d.image}` : `registry ${d.image}`;
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

class Slot {
  released = false;
}

export class AgentServer {
  readonly config: AgentConfig;
  readonly metrics: AgentMetrics;
  readonly log: Logger;
  readonly server: Server;
  private readonly auth: Authenticator;
  private readonly outboundToken: () => Promise<string>;
  private readonly tmpDir: string;
  private readonly store: StorageConfig;
  readonly records: CheckpointRecords;
  /** In flight per migration/container (checkpoint) and migration/container/destination (send). */
  private readonly checkpointsInFlight = new Map<string, Promise<CheckpointResponse>>();
  private readonly sendsInFlight = new Map<string, Promise<SendResponse>>();
  /** Receives and pulls in flight per migration/container/request (target side). */
  private readonly loadsInFlight = new Map<string, Promise<unknown>>();
  /** Serializes read-modify-write of one record file. */
  private readonly recordLocks = new Map<string, Promise<unknown>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly shutdownAbort = new AbortController();
  private inFlight = new Set<Slot>();
  private idleWaiters: (() => void)[] = [];
  private ready = false;
  private draining = false;

  constructor(deps: AgentDeps, tls: { cert: Buffer | string; key: Buffer | string }) {
    this.config = deps.config;
    this.metrics = deps.metrics ?? createMetrics();
    this.log = (deps.logger ?? createLogger("ms2m-agent")).child({ node: this.config.NODE_NAME });
    this.auth = new Authenticator(deps.reviewer, this.config.NODE_NAME, {
      ttlMs: this.config.AGENT_AUTH_CACHE_SECONDS * 1000,
    });
    this.outboundToken =
      deps.outboundToken ?? (async () => (await readFile(this.config.AGENT_TOKEN_FILE, "utf8")).trim());
    this.tmpDir = join(this.config.AGENT_WORK_DIR, "tmp");
    this.records = new CheckpointRecords(this.config.AGENT_WORK_DIR, this.config.AGENT_CHECKPOINTS_DIR);
    this.store = {
      driver: this.config.AGENT_STORAGE_DRIVER,
      graphRoot: this.config.AGENT_STORAGE_GRAPHROOT,
      runRoot: this.config.AGENT_STORAGE_RUNROOT,
    };
    this.server = createServer({ ...tls, minVersion: "TLSv1.2" }, (req, res) => void this.handle(req, res));
    this.server.requestTimeout = 60 * 60_000;
    this.server.headersTimeout = 30_000;
  }

  /** Sweeps leftovers of a previous (crashed) run, then listens. */
  async listen(): Promise<number> {
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    await this.records.init();
    await this.sweepExpired();
    const ttlMs = this.config.AGENT_CHECKPOINT_TTL_SECONDS * 1000;
    this.sweepTimer = setInterval(
      () => void this.sweepExpired(),
      Math.max(1000, Math.min(60_000, ttlMs / 2)),
    ).unref();
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.config.AGENT_PORT, this.config.AGENT_BIND_ADDRESS, () => resolve());
    });
    this.ready = true;
    const port = (this.server.address() as AddressInfo).port;
    this.log.info({ port }, "agent listening");
    return port;
  }

  /** Installs a re-issued certificate without dropping connections. */
  reloadTls(tls: { cert: Buffer | string; key: Buffer | string }): void {
    this.server.setSecureContext({ ...tls, minVersion: "TLSv1.2" });
  }

  /** Stops accepting, lets in-flight work finish for `graceMs`, then aborts it (cleaning up). */
  async shutdown(graceMs = this.config.AGENT_SHUTDOWN_GRACE_SECONDS * 1000): Promise<void> {
    this.draining = true;
    this.ready = false;
    clearInterval(this.sweepTimer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inFlight.size > 0) {
      const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([idle, timer]);
      if (this.inFlight.size > 0) {
        this.log.warn({ inFlight: this.inFlight.size }, "grace period over, aborting transfers");
        this.shutdownAbort.abort();
        await Promise.race([
          new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
          new Promise<void>((resolve) => setTimeout(resolve, 10_000).unref()),
        ]);
      }
    }
    this.server.closeAllConnections();
    await closed;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  private acquire(): Slot {
    if (this.inFlight.size >= this.config.AGENT_MAX_CONCURRENT_TRANSFERS) {
      throw new Ms2mError("TooManyRequests", `agent busy: ${this.inFlight.size} transfers in flight`);
    }
    const slot = new Slot();
    this.inFlight.add(slot);
    this.metrics.inFlight.set(this.inFlight.size);
    return slot;
  }

  private release(slot: Slot): void {
    if (slot.released) return;
    slot.released = true;
    this.inFlight.delete(slot);
    this.metrics.inFlight.set(this.inFlight.size);
    if (this.inFlight.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://agent.invalid");
    let route = "other";
    try {
      if (req.method === "GET" && url.pathname === "/healthz") {
        route = "healthz";
        return this.reply(res, 200, { status: "ok" }, route);
      }
      if (req.method === "GET" && url.pathname === "/readyz") {
        route = "readyz";
        return this.reply(res, this.ready ? 200 : 503, { ready: this.ready }, route);
      }
      if (req.method === "GET" && url.pathname === "/metrics") {
        route = "metrics";
        res.setHeader("content-type", this.metrics.registry.contentType);
        res.end(await this.metrics.registry.metrics());
        this.metrics.requests.inc({ route, code: "200" });
        return;
      }
      if (url.pathname === "/v1/runtime") {
        route = "runtime";
        if (req.method !== "GET") throw new Ms2mError("MethodNotAllowed", `${req.method} not allowed`);
        await this.auth.check(req.headers.authorization, "runtime");
        const want = requestedRuntime(url.searchParams.get("runtime"));
        const body = await inspectRuntime(
          { crio: this.config.AGENT_CRIO_CONFIG_DIR, containerd: this.config.AGENT_CONTAINERD_CONFIG_DIR },
          want,
        );
        return this.reply(res, 200, body, route);
      }
      const recordRoute = /^\/v1\/checkpoints\/([^/]{1,253})(?:\/([^/]{1,63}))?$/.exec(url.pathname);
      if (recordRoute) {
        route = "checkpoints";
        // Valid names need no percent-encoding: anything encoded is refused by the checks below.
        const [migration, container] = [recordRoute[1], recordRoute[2]];
        if (!migration || !migrationRe.test(migration))
          throw new Ms2mError("BadRequest", "invalid migration name");
        if (container !== undefined && !containerRe.test(container))
          throw new Ms2mError("BadRequest", "invalid container name");
        const allowed = container === undefined ? "DELETE" : "GET";
        if (req.method !== allowed) throw new Ms2mError("MethodNotAllowed", `${req.method} not allowed`);
        const principal = await this.auth.check(req.headers.authorization, "checkpoint");
        const log = this.log.child({ op: "checkpoints", caller: principal.serviceAccount, migration });
        const body =
          container === undefined
            ? await this.releaseMigration(migration, log, {
                keepLoadedImages: url.searchParams.get("keepLoadedImages") === "true",
              })
            : await this.lookupCheckpoint(migration, container, log);
        return this.reply(res, 200, body, route);
      }
      const ops: Record<string, Command> = {
        [RECEIVE_PATH]: "receive",
        "/v1/send": "send",
        "/v1/pull": "pull",
        "/v1/checkpoint": "checkpoint",
        "/v1/images": "image",
      };
      const op = ops[url.pathname];
      if (!op) throw new Ms2mError("NotFound", `no route ${url.pathname.slice(0, 100)}`);
      route = op;
      if (req.method !== "POST") throw new Ms2mError("MethodNotAllowed", `${req.method} not allowed`);
      if (this.draining) throw new Ms2mError("ServiceUnavailable", "agent is shutting down");
      // A base image pull is a pull into this node's store: the same permission.
      const principal = await this.auth.check(req.headers.authorization, op === "image" ? "pull" : op);
      const slot = this.acquire();
      try {
        const log = this.log.child({
          op,
          caller: principal.serviceAccount,
          migration: url.searchParams.get("migration") ?? undefined,
        });
        const body = await this.dispatch(op, req, url, principal, log);
        this.reply(res, op === "receive" ? 201 : 200, body, route);
      } finally {
        this.release(slot);
      }
    } catch (err) {
      this.replyError(req, res, err, route);
    }
  }

  private dispatch(
    op: Command,
    req: IncomingMessage,
    url: URL,
    _p: Principal,
    log: Logger,
  ): Promise<unknown> {
    switch (op) {
      case "receive":
        return this.track("receive", () =>
          this.loading(url.searchParams.get("migration"), () => this.receive(req, url, log)),
        );
      case "send":
        return this.readJson(req, sendRequestSchema).then((body) =>
          this.track(body.destination.type === "agent" ? "send_direct" : "send_registry", () =>
            this.send(body, log),
          ),
        );
      case "pull":
        return this.readJson(req, pullRequestSchema).then((body) =>
          this.track("pull", () => this.loading(body.migration, () => this.pull(body, log))),
        );
      case "checkpoint":
        return this.readJson(req, checkpointRequestSchema).then((body) =>
          this.track("checkpoint", () => this.checkpoint(body, log)),
        );
      case "image":
        return this.readJson(req, baseImageRequestSchema).then(async (body) => {
          const got = await ensureBaseImage(body, {
            store: this.store,
            registry: await this.registryOptions(),
            signal: this.shutdownAbort.signal,
          });
          if (!got.present) log.info({ image: got.image, pullSeconds: got.pullSeconds }, "base image pulled");
          return got;
        });
    }
  }

  /** Tracks a receive or pull of a migration, so that its release waits for it. */
  private loading<T>(migration: string | null | undefined, fn: () => Promise<T>): Promise<T> {
    if (!migration) return fn();
    const key = `${migration}/load/${randomUUID()}`;
    const p = fn().finally(() => this.loadsInFlight.delete(key));
    this.loadsInFlight.set(key, p);
    return p;
  }

  private async track<T>(operation: Operation, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const reason = err instanceof Ms2mError ? err.reason : "InternalError";
      this.metrics.failures.inc({ operation, reason });
      throw err;
    }
  }

  private async readJson<S extends z.ZodType>(req: IncomingMessage, schema: S): Promise<z.infer<S>> {
    const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
    if (type !== "application/json")
      throw new Ms2mError("UnsupportedMediaType", "content type must be application/json");
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > JSON_LIMIT) throw new Ms2mError("RequestEntityTooLarge", "request body too large");
    let text: string;
    try {
      text = await readBounded(req, JSON_LIMIT);
    } catch {
      throw new Ms2mError("RequestEntityTooLarge", "request body too large");
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new Ms2mError("BadRequest", "request body is not JSON");
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) {
      const msg = parsed.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; ");
      throw new Ms2mError("Invalid", `invalid request: ${msg}`.slice(0, 1000));
    }
    return parsed.data;
  }

  private signalFor(req?: IncomingMessage): AbortSignal {
    const signals = [this.shutdownAbort.signal];
    if (req) {
      const ac = new AbortController();
      req.once("close", () => {
        if (!req.complete) ac.abort();
      });
      signals.push(ac.signal);
    }
    return AbortSignal.any(signals);
  }

  private localImage(image: string) {
    const ref = parseImageReference(image);
    if (ref.host !== "localhost")
      throw new Ms2mError("BadRequest", "target image must be named localhost/<repo>:<tag>");
    return ref;
  }

  /** Direct mode: stream the archive into an OCI layout, then load it. */
  private async receive(req: IncomingMessage, url: URL, log: Logger) {
    const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
    if (type !== ARCHIVE_CONTENT_TYPE)
      throw new Ms2mError("UnsupportedMediaType", `content type must be ${ARCHIVE_CONTENT_TYPE}`);
    const container = assertContainerName(url.searchParams.get("container") ?? "");
    const image = url.searchParams.get("image") ?? "";
    const ref = this.localImage(image);
    const migration = url.searchParams.get("migration");
    if (migration !== null && !migrationRe.test(migration))
      throw new Ms2mError("BadRequest", "invalid migration name");
    const sizeText = req.headers[HEADER_ARCHIVE_SIZE] ?? req.headers["content-length"];
    if (typeof sizeText !== "string" || !/^[0-9]{1,16}$/.test(sizeText)) {
      throw new Ms2mError("BadRequest", `declared size required (${HEADER_ARCHIVE_SIZE} or Content-Length)`);
    }
    const size = Number(sizeText);
    const cl = req.headers["content-length"];
    if (cl !== undefined && Number(cl) !== size)
      throw new Ms2mError("BadRequest", "Content-Length and declared size differ");
    if (size > this.config.AGENT_MAX_ARCHIVE_BYTES) {
      throw new Ms2mError(
        "RequestEntityTooLarge",
        `archive of ${size} bytes exceeds the maximum ${this.config.AGENT_MAX_ARCHIVE_BYTES}`,
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
    const dir = join(this.tmpDir, randomUUID());
    try {
      const blobs = await initLayout(dir);
      const started = performance.now();
      const got = await receiveArchive(req, join(blobs, ".partial"), {
        maxBytes: this.config.AGENT_MAX_ARCHIVE_BYTES,
        expectedSize: size,
        expectedDigest: () => headerDigest ?? (req.trailers[HEADER_ARCHIVE_DIGEST] as string | undefined),
        signal: this.signalFor(req),
        destroySource: false,
        onBytes: (n) => this.metrics.bytes.inc({ operation: "receive" }, n),
      });
      const receiveSeconds = (performance.now() - started) / 1000;
      this.metrics.transferDuration.observe({ operation: "receive" }, receiveSeconds);
      this.metrics.transferSize.observe({ operation: "receive" }, got.size);
      await rename(join(blobs, ".partial"), blobPath(dir, got.digest));
      const described = describeCheckpointImage(got, container);
      await writeLayout(dir, described, ref.tag, container);
      if (migration !== null) await this.recordLoaded(migration, container, image, "receive");
      const loadSeconds = await this.loadAndVerify(dir, ref.tag, image, got.digest, got.size);
      log.info(
        { image, digest: got.digest, size: got.size, receiveSeconds, loadSeconds },
        "checkpoint image loaded",
      );
      return { image, digest: got.digest, size: got.size, receiveSeconds, loadSeconds };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Target side: recorded before the load, so the release finds every image this agent loaded. */
  private recordLoaded(
    migration: string,
    container: string,
    image: string,
    via: "receive" | "pull",
  ): Promise<void> {
    return this.records.putLoaded({ migration, container, image, via, createdAt: new Date().toISOString() });
  }

  private async loadAndVerify(
    dir: string,
    tag: string,
    image: string,
    digest: string,
    size: number,
  ): Promise<number> {
    const started = performance.now();
    const opts = { binary: this.config.AGENT_SKOPEO, signal: this.shutdownAbort.signal };
    await loadLayoutIntoStorage(dir, tag, this.store, image, opts);
    const manifest = (await storedManifest(this.store, image, opts)) as {
      layers?: { digest?: string }[];
    } | null;
    if (manifest?.layers?.length !== 1 || manifest.layers[0]?.digest !== digest) {
      throw new Ms2mError("InternalError", "loaded image does not carry the received layer");
    }
    const seconds = (performance.now() - started) / 1000;
    this.metrics.loadDuration.observe(seconds);
    this.metrics.loadBytes.inc(size);
    return seconds;
  }

  private registryOptions(): Promise<RegistryOptions> {
    return registryOptions(this.config);
  }

  /**
   * Source side. An archive this agent recorded for the migration (`/v1/checkpoint` with a
   * migration key) is kept until the migration is released or expires, and a send to the same
   * destination is done once: a repeat returns the recorded result. Any other archive is read
   * once and removed afterwards (unless `retainArchiveOnFailure` and the send failed).
   */
  private async send(body: SendBody, log: Logger): Promise<SendResponse> {
    const path = resolveArchiveName(this.config.AGENT_CHECKPOINTS_DIR, body.archive, body);
    const rec = await this.records.get(body.migration, body.container);
    const owned =
      rec?.state === "Done" &&
      rec.archive === basename(path) &&
      rec.namespace === body.namespace &&
      rec.pod === body.pod;
    if (!owned) return (await this.transmit(body, path, log, undefined)).result;
    const dest = destinationKey(body.destination);
    const key = `${body.migration}/${body.container}/${dest}`;
    const inflight = this.sendsInFlight.get(key);
    if (inflight) return inflight;
    const p = this.recordedSend(body, path, rec, dest, log).finally(() => this.sendsInFlight.delete(key));
    this.sendsInFlight.set(key, p);
    return p;
  }

  private async recordedSend(
    body: SendBody,
    path: string,
    rec: CheckpointRecord,
    dest: string,
    log: Logger,
  ): Promise<SendResponse> {
    const done = rec.sends?.find((s) => s.destination === dest && s.state === "Done");
    if (done?.result) {
      log.info(
        { archive: rec.archive, destination: body.destination.type },
        "repeated send: recorded result",
      );
      return done.result;
    }
    const registryImage = body.destination.type === "registry" ? body.destination.image : undefined;
    await this.updateSend(rec, dest, {
      destination: dest,
      state: "Pending",
      ...(registryImage ? { registryImage } : {}),
    });
    const { result, manifestDigest } = await this.transmit(body, path, log, rec);
    await this.updateSend(rec, dest, {
      destination: dest,
      state: "Done",
      ...(registryImage ? { registryImage } : {}),
      ...(manifestDigest ? { manifestDigest } : {}),
      result,
    });
    return result;
  }

  private async withRecordLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.recordLocks.get(key) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(fn);
    const tail = run.catch(() => undefined);
    this.recordLocks.set(key, tail);
    void tail.then(() => {
      if (this.recordLocks.get(key) === tail) this.recordLocks.delete(key);
    });
    return run;
  }

  private updateSend(rec: CheckpointRecord, dest: string, send: SendRecord): Promise<void> {
    return this.withRecordLock(`${rec.migration}/${rec.container}`, async () => {
      const current = await this.records.get(rec.migration, rec.container);
      if (!current)
        throw new Ms2mError("Conflict", "the checkpoint was released during the send", { retriable: false });
      current.sends = [...(current.sends ?? []).filter((s) => s.destination !== dest), send];
      current.updatedAt = new Date().toISOString();
      await this.records.put(current);
    });
  }

  private async transmit(
    body: SendBody,
    path: string,
    log: Logger,
    rec: CheckpointRecord | undefined,
  ): Promise<{ result: SendResponse; manifestDigest?: string }> {
    let ok = false;
    const operation = body.destination.type === "agent" ? "send_direct" : "send_registry";
    try {
      const { result, manifestDigest } = await sendCheckpoint(this.config, body, {
        token: this.outboundToken,
        signal: this.shutdownAbort.signal,
        onBytes: (n) => this.metrics.bytes.inc({ operation }, n),
        expected: { size: rec?.size, digest: rec?.digest },
      });
      ok = true;
      this.metrics.transferDuration.observe({ operation }, result.seconds);
      this.metrics.transferSize.observe({ operation }, result.size);
      log.info({ ...result, archive: body.archive }, "checkpoint sent");
      return manifestDigest ? { result, manifestDigest } : { result };
    } finally {
      // A recorded archive lives until the migration's release (or the expiry sweep).
      if (!rec && (ok || !body.retainArchiveOnFailure)) await rm(path, { force: true });
    }
  }

  private async pull(body: z.infer<typeof pullRequestSchema>, log: Logger): Promise<PullResponse> {
    const ref = this.localImage(body.image);
    const dir = join(this.tmpDir, randomUUID());
    const started = performance.now();
    try {
      const got = await pullCheckpointImage(body.source, dir, ref.tag, {
        ...(await this.registryOptions()),
        maxBytes: this.config.AGENT_MAX_ARCHIVE_BYTES,
        expectedDigest: body.expectedDigest,
        signal: this.shutdownAbort.signal,
        onBytes: (n) => this.metrics.bytes.inc({ operation: "pull" }, n),
      });
      const pullSeconds = (performance.now() - started) / 1000;
      this.metrics.transferDuration.observe({ operation: "pull" }, pullSeconds);
      this.metrics.transferSize.observe({ operation: "pull" }, got.size);
      await this.recordLoaded(body.migration, got.containerName, body.image, "pull");
      const loadSeconds = await this.loadAndVerify(dir, ref.tag, body.image, got.layerDigest, got.size);
      log.info(
        { image: body.image, digest: got.layerDigest, pullSeconds, loadSeconds },
        "checkpoint image pulled",
      );
      return {
        image: body.image,
        digest: got.layerDigest,
        size: got.size,
        containerName: got.containerName,
        pullSeconds,
        loadSeconds,
      };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * With a migration key the checkpoint is made at most once per (migration, container): the
   * outcome is recorded durably, a repeat returns it, a concurrent repeat waits for the first.
   */
  private checkpoint(body: CheckpointBody, log: Logger): Promise<CheckpointResponse> {
    if (!body.migration) return this.kubeletCheckpoint(body, log);
    const key = `${body.migration}/${body.container}`;
    const inflight = this.checkpointsInFlight.get(key);
    if (inflight) return inflight;
    const p = this.recordedCheckpoint(body, body.migration, log).finally(() =>
      this.checkpointsInFlight.delete(key),
    );
    this.checkpointsInFlight.set(key, p);
    return p;
  }

  private async recordedCheckpoint(
    body: CheckpointBody,
    migration: string,
    log: Logger,
  ): Promise<CheckpointResponse> {
    let existing = await this.records.get(migration, body.container);
    if (existing && (existing.namespace !== body.namespace || existing.pod !== body.pod)) {
      throw new Ms2mError("Conflict", "this migration already checkpointed that container of another pod", {
        retriable: false,
      });
    }
    if (existing?.state === "Pending") existing = await this.resolvePending(existing, log);
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
    };
    await this.records.put(pending);
    let res: CheckpointResponse;
    try {
      res = await this.kubeletCheckpoint(body, log);
    } catch (err) {
      // The kubelet answered with a failure: nothing was made, a retry may checkpoint. A lost
      // connection leaves the record Pending (resolved from the checkpoints folder later).
      if (err instanceof Ms2mError) await this.records.remove(migration, body.container);
      throw err;
    }
    return toCheckpointResponse(await this.complete(pending, res.archive, res.seconds));
  }

  private async complete(
    rec: CheckpointRecord,
    archive: string,
    seconds?: number,
  ): Promise<CheckpointRecord> {
    const { digest, size } = await digestFile(join(this.config.AGENT_CHECKPOINTS_DIR, archive));
    const done: CheckpointRecord = {
      ...rec,
      state: "Done",
      archive,
      digest,
      size,
      ...(seconds !== undefined ? { seconds } : {}),
      updatedAt: new Date().toISOString(),
    };
    await this.withRecordLock(`${rec.migration}/${rec.container}`, () => this.records.put(done));
    return done;
  }

  /**
   * A Pending record nobody is working on (the agent restarted mid-checkpoint): adopt the
   * archive the kubelet wrote since, or — once the kubelet call must be over and no archive
   * appeared — forget it (undefined: nothing was made). Otherwise 409: not known yet.
   */
  private async resolvePending(rec: CheckpointRecord, log: Logger): Promise<CheckpointRecord | undefined> {
    const pattern = checkpointArchivePattern(rec.namespace, rec.pod, rec.container);
    const claimed = await this.records.claimedArchives();
    const since = Date.parse(rec.createdAt) - 2000;
    const found: { name: string; mtime: number }[] = [];
    for (const name of await readdir(this.config.AGENT_CHECKPOINTS_DIR).catch(() => [] as string[])) {
      if (!pattern.test(name) || claimed.has(name)) continue;
      const st = await lstat(join(this.config.AGENT_CHECKPOINTS_DIR, name)).catch(() => undefined);
      if (st?.isFile() && st.mtimeMs >= since) found.push({ name, mtime: st.mtimeMs });
    }
    found.sort((a, b) => a.mtime - b.mtime);
    const first = found[0];
    if (first) {
      log.info({ archive: first.name }, "pending checkpoint resolved from the checkpoints folder");
      return this.complete(rec, first.name);
    }
    const timeoutMs = (rec.timeoutSeconds ?? DEFAULT_CHECKPOINT_TIMEOUT_SECONDS) * 1000;
    if (Date.now() - Date.parse(rec.createdAt) > timeoutMs + PENDING_GRACE_MS) {
      log.info("pending checkpoint made no archive; forgotten");
      await this.records.remove(rec.migration, rec.container);
      return undefined;
    }
    throw new Ms2mError(
      "Conflict",
      "a checkpoint of this container was requested before the agent restarted; its outcome is not known yet",
    );
  }

  /** `GET /v1/checkpoints/{migration}/{container}`: the record (Pending or Done), or 404. */
  private async lookupCheckpoint(
    migration: string,
    container: string,
    log: Logger,
  ): Promise<CheckpointRecord> {
    let rec = await this.records.get(migration, container);
    if (rec?.state === "Pending" && !this.checkpointsInFlight.has(`${migration}/${container}`)) {
      try {
        rec = await this.resolvePending(rec, log);
      } catch (err) {
        if (!(err instanceof Ms2mError && err.reason === "Conflict")) throw err;
      }
    }
    if (!rec) throw new Ms2mError("NotFound", `no checkpoint recorded for ${migration}/${container}`);
    return rec;
  }

  /**
   * `DELETE /v1/checkpoints/{migration}`: waits for the migration's requests in flight, deletes
   * the registry images its sends pushed (a refusing registry is reported, not an error), the
   * checkpoint images it loaded into this node's store (unless `keepLoadedImages`: a completed
   * migration's pod runs from them; a store that refuses — image in use — is reported), then
   * its archives and records. Idempotent.
   */
  async releaseMigration(
    migration: string,
    log: Logger = this.log,
    opts: { keepLoadedImages?: boolean } = {},
  ): Promise<ReleaseResponse> {
    const prefix = `${migration}/`;
    const busy = [...this.checkpointsInFlight, ...this.sendsInFlight, ...this.loadsInFlight]
      .filter(([k]) => k.startsWith(prefix))
      .map(([, p]) => p);
    await Promise.allSettled(busy);
    const loadedImages = await this.releaseLoaded(migration, log, opts.keepLoadedImages === true);
    const records = await this.records.list(migration);
    const registryImages: ReleaseResponse["registryImages"] = [];
    const pushed = records.flatMap((r) => r.sends ?? []).filter((s) => s.registryImage);
    if (pushed.length > 0) {
      const opts = await this.registryOptions();
      for (const s of pushed) {
        const image = s.registryImage!;
        try {
          await deleteCheckpointImage(image, { ...opts, manifestDigest: s.manifestDigest });
          registryImages.push({ image, deleted: true });
        } catch (err) {
          const message = describeError(err).slice(0, 300);
          log.warn({ image, err: message }, "registry image not deleted");
          registryImages.push({ image, deleted: false, message });
        }
      }
    }
    const released = await this.records.release(migration);
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
  private async releaseLoaded(
    migration: string,
    log: Logger,
    keep: boolean,
  ): Promise<NonNullable<ReleaseResponse["loadedImages"]>> {
    const out: NonNullable<ReleaseResponse["loadedImages"]> = [];
    for (const rec of await this.records.listLoaded(migration)) {
      if (keep) {
        out.push({ image: rec.image, deleted: false, message: "kept: the migrated pod runs from it" });
        continue;
      }
      try {
        const res = await deleteStoredImage(this.store, rec.image, { binary: this.config.AGENT_SKOPEO });
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

  /** Releases migrations whose records are older than AGENT_CHECKPOINT_TTL_SECONDS. */
  async sweepExpired(now = Date.now()): Promise<string[]> {
    const ttlMs = this.config.AGENT_CHECKPOINT_TTL_SECONDS * 1000;
    const busy = (m: string) =>
      [...this.checkpointsInFlight.keys(), ...this.sendsInFlight.keys(), ...this.loadsInFlight.keys()].some(
        (k) => k.startsWith(`${m}/`),
      );
    const out: string[] = [];
    try {
      for (const m of await this.records.expired(ttlMs, now)) {
        if (busy(m)) continue;
        await this.releaseMigration(m, this.log.child({ op: "sweep", migration: m }));
        out.push(m);
      }
    } catch (err) {
      this.log.warn({ err: describeError(err) }, "checkpoint record sweep failed");
    }
    return out;
  }

  private async kubeletCheckpoint(body: CheckpointBody, log: Logger): Promise<CheckpointResponse> {
    const base = this.config.AGENT_KUBELET_URL;
    if (!base) throw new Ms2mError("NotFound", "local kubelet checkpointing is not configured on this agent");
    const token = (await readFile(this.config.AGENT_KUBELET_TOKEN_FILE, "utf8")).trim();
    const ca = this.config.AGENT_KUBELET_CA_FILE
      ? await readFile(this.config.AGENT_KUBELET_CA_FILE)
      : undefined;
    const dispatcher = new UndiciAgent({ connect: ca ? { ca } : {} });
    const started = performance.now();
    try {
      const url = new URL(
        `/checkpoint/${encodeURIComponent(body.namespace)}/${encodeURIComponent(body.pod)}/${encodeURIComponent(body.container)}`,
        base,
      );
      if (body.timeoutSeconds !== undefined) url.searchParams.set("timeout", String(body.timeoutSeconds));
      const res = await request(url, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        dispatcher,
        signal: this.shutdownAbort.signal,
      });
      const text = await readBounded(res.body, 64 * 1024);
      if (res.statusCode !== 200) {
        const reason =
          res.statusCode === 401 || res.statusCode === 403
            ? "Forbidden"
            : res.statusCode === 404
              ? "NotFound"
              : "InternalError";
        throw new Ms2mError(reason, `kubelet checkpoint: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
      }
      const items = (JSON.parse(text) as { items?: unknown }).items;
      if (!Array.isArray(items) || items.length !== 1 || typeof items[0] !== "string") {
        throw new Ms2mError("InternalError", "kubelet checkpoint: unexpected response");
      }
      const path = resolveArchiveName(this.config.AGENT_CHECKPOINTS_DIR, items[0], body);
      const archive = path.slice(this.config.AGENT_CHECKPOINTS_DIR.length + 1);
      const seconds = (performance.now() - started) / 1000;
      log.info({ archive, seconds }, "checkpoint created");
      return { archive, seconds };
    } finally {
      await dispatcher.close();
    }
  }

  private reply(res: ServerResponse, code: number, body: unknown, route: string): void {
    res.statusCode = code;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(body));
    this.metrics.requests.inc({ route, code: String(code) });
  }

  private replyError(req: IncomingMessage, res: ServerResponse, err: unknown, route: string): void {
    const e =
      err instanceof Ms2mError
        ? err
        : new Ms2mError("InternalError", `internal error: ${describeError(err)}`, { cause: err });
    if (e.code >= 500) this.log.error({ err: describeError(err), route }, "request failed");
    else this.log.info({ reason: e.reason, message: e.message, route }, "request rejected");
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    if (e.reason === "TooManyRequests" || e.reason === "ServiceUnavailable")
      res.setHeader("retry-after", "5");
    if (!req.complete) {
      // Answer first, then drain what the client is still sending for a moment so it can read
      // the Status instead of a connection reset; never store any of it.
      res.setHeader("connection", "close");
      res.once("finish", () => {
        req.resume();
        setTimeout(() => req.destroy(), 2000).unref();
      });
    }
    this.reply(res, e.code, e.toStatus(), route);
  }
}
