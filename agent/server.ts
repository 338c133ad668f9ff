// The ms2m-agent HTTPS server: receives archives (direct mode), sends local checkpoints to
// another agent or a registry, pulls from a registry, asks the local kubelet for checkpoints.
import { randomUUID } from "node:crypto";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Agent as UndiciAgent, request } from "undici";
import type { z } from "zod";
import { Ms2mError, describeError } from "../src/common/errors.ts";
import { createLogger, type Logger } from "../src/common/logger.ts";
import {
  HEADER_ARCHIVE_DIGEST,
  HEADER_ARCHIVE_SIZE,
  RECEIVE_PATH,
  readBounded,
  sendArchive,
} from "../src/checkpoint/direct.ts";
import {
  ARCHIVE_CONTENT_TYPE,
  assertContainerName,
  blobPath,
  describeCheckpointImage,
  initLayout,
  isDigest,
  parseImageReference,
  writeLayout,
} from "../src/checkpoint/image.ts";
import {
  pullCheckpointImage,
  pushCheckpointImage,
  type RegistryOptions,
} from "../src/checkpoint/registry.ts";
import { loadLayoutIntoStorage, storedManifest, type StorageConfig } from "../src/checkpoint/skopeo.ts";
import { receiveArchive } from "../src/checkpoint/stream.ts";
import { openArchive, resolveArchiveName } from "./archives.ts";
import { Authenticator, type AgentOperation, type Principal, type Reviewer } from "./auth.ts";
import type { AgentConfig } from "./config.ts";
import { createMetrics, type AgentMetrics, type Operation } from "./metrics.ts";
import { AGENT_SERVER_NAME } from "../src/transfer/client.ts";
import {
  checkpointRequestSchema,
  pullRequestSchema,
  sendRequestSchema,
  type CheckpointResponse,
  type PullResponse,
  type SendResponse,
} from "../src/transfer/types.ts";

export interface AgentDeps {
  config: AgentConfig;
  reviewer: Reviewer;
  logger?: Logger;
  metrics?: AgentMetrics;
  /** Token presented to other agents (default: read AGENT_TOKEN_FILE on every use). */
  outboundToken?: () => Promise<string>;
}

const migrationRe = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const JSON_LIMIT = 64 * 1024;

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
      const ops: Record<string, AgentOperation> = {
        [RECEIVE_PATH]: "receive",
        "/v1/send": "send",
        "/v1/pull": "pull",
        "/v1/checkpoint": "checkpoint",
      };
      const op = ops[url.pathname];
      if (!op) throw new Ms2mError("NotFound", `no route ${url.pathname.slice(0, 100)}`);
      route = op;
      if (req.method !== "POST") throw new Ms2mError("MethodNotAllowed", `${req.method} not allowed`);
      if (this.draining) throw new Ms2mError("ServiceUnavailable", "agent is shutting down");
      const principal = await this.auth.check(req.headers.authorization, op);
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
    op: AgentOperation,
    req: IncomingMessage,
    url: URL,
    _p: Principal,
    log: Logger,
  ): Promise<unknown> {
    switch (op) {
      case "receive":
        return this.track("receive", () => this.receive(req, url, log));
      case "send":
        return this.readJson(req, sendRequestSchema).then((body) =>
          this.track(body.destination.type === "agent" ? "send_direct" : "send_registry", () =>
            this.send(body, log),
          ),
        );
      case "pull":
        return this.readJson(req, pullRequestSchema).then((body) =>
          this.track("pull", () => this.pull(body, log)),
        );
      case "checkpoint":
        return this.readJson(req, checkpointRequestSchema).then((body) =>
          this.track("checkpoint", () => this.checkpoint(body, log)),
        );
    }
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

  private async registryOptions(): Promise<RegistryOptions> {
    const opts: RegistryOptions = { insecureHosts: this.config.AGENT_INSECURE_REGISTRIES };
    if (this.config.AGENT_REGISTRY_CA_FILE) opts.ca = await readFile(this.config.AGENT_REGISTRY_CA_FILE);
    if (this.config.AGENT_REGISTRY_CREDENTIALS_FILE) {
      const text = (await readFile(this.config.AGENT_REGISTRY_CREDENTIALS_FILE, "utf8")).trim();
      const colon = text.indexOf(":");
      if (colon > 0) opts.auth = { username: text.slice(0, colon), password: text.slice(colon + 1) };
    }
    return opts;
  }

  /** Source side: the archive is read once from the kubelet folder and removed afterwards. */
  private async send(body: z.infer<typeof sendRequestSchema>, log: Logger): Promise<SendResponse> {
    const path = resolveArchiveName(this.config.AGENT_CHECKPOINTS_DIR, body.archive, body);
    const { handle, size } = await openArchive(path);
    let ok = false;
    const started = performance.now();
    const signal = this.shutdownAbort.signal;
    const operation = body.destination.type === "agent" ? "send_direct" : "send_registry";
    const onBytes = (n: number) => this.metrics.bytes.inc({ operation }, n);
    try {
      if (size > this.config.AGENT_MAX_ARCHIVE_BYTES)
        throw new Ms2mError("RequestEntityTooLarge", "archive exceeds the maximum size");
      const stream = handle.createReadStream({ highWaterMark: 1024 * 1024, autoClose: false });
      let result: SendResponse;
      if (body.destination.type === "agent") {
        this.localImage(body.destination.image);
        const r = await sendArchive(
          stream,
          { container: body.container, image: body.destination.image, migration: body.migration },
          {
            url: body.destination.url,
            token: await this.outboundToken(),
            ca: await readFile(this.config.AGENT_TLS_CA_FILE),
            servername: AGENT_SERVER_NAME,
            size,
            maxBytes: this.config.AGENT_MAX_ARCHIVE_BYTES,
            signal,
            onBytes,
          },
        );
        result = {
          image: r.image,
          digest: r.digest,
          size: r.size,
          seconds: (performance.now() - started) / 1000,
          targetLoadSeconds: r.loadSeconds,
        };
      } else {
        const r = await pushCheckpointImage(stream, body.destination.image, body.container, {
          ...(await this.registryOptions()),
          maxBytes: this.config.AGENT_MAX_ARCHIVE_BYTES,
          expectedSize: size,
          signal,
          onBytes,
        });
        result = {
          image: r.image,
          digest: r.layerDigest,
          size: r.size,
          seconds: (performance.now() - started) / 1000,
        };
      }
      ok = true;
      this.metrics.transferDuration.observe({ operation }, result.seconds);
      this.metrics.transferSize.observe({ operation }, size);
      log.info({ ...result, archive: body.archive }, "checkpoint sent");
      return result;
    } finally {
      await handle.close();
      if (ok || !body.retainArchiveOnFailure) await rm(path, { force: true });
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

  private async checkpoint(
    body: z.infer<typeof checkpointRequestSchema>,
    log: Logger,
  ): Promise<CheckpointResponse> {
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
