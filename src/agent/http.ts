// The agent's HTTPS shell: TLS, the health/readiness/metrics routes, and for the API routes of
// a route table: method, authentication + authorization (before the concurrency slot and before
// any body byte is read, so 401/403 have no side effect), draining, the concurrency slot, the
// JSON body, and the answer — the handler's result as JSON, or a Kubernetes Status.
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { z } from "zod";
import { Ms2mError, describeError } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import type { AgentOperation, Authenticator, Principal } from "./auth.ts";
import { readJson } from "./body.ts";
import type { AgentMetrics } from "./metrics.ts";
import { Slots } from "./slots.ts";
import { HEARTBEAT_MS } from "../checkpoint/progress.ts";

export interface TlsPair {
  cert: Buffer | string;
  key: Buffer | string;
}

/** One authorized request, as a handler sees it. */
export interface Call<B = unknown> {
  req: IncomingMessage;
  url: URL;
  /** The named groups of the route's path. */
  params: Readonly<Partial<Record<string, string>>>;
  principal: Principal;
  /** The agent's logger with `op`, `caller` and `migration` (path parameter or query). */
  log: Logger;
  /** The JSON body, validated with the route's `body` schema (undefined without one). */
  body: B;
}

export interface Route<B = unknown> {
  /** The `route` label of the request metric and the `op` of the log lines. */
  name: string;
  method: "GET" | "POST" | "DELETE";
  /** The exact path, or a pattern whose named groups become `params`. */
  path: string | RegExp;
  /** Checks `params` before anything else (400). */
  checkParams?: (params: Call["params"]) => void;
  /** What the caller must be allowed to do on this node. */
  operation: AgentOperation;
  /** A transfer: refused while draining (503) and holds a concurrency slot (429 when none is left). */
  transfer?: boolean;
  /** Success status (default 200). */
  status?: number;
  body?: z.ZodType<B>;
  handle(call: Call<B>): Promise<unknown>;
}

/** A route of the table, type-checked against its own body schema. */
export function defineRoute<B = undefined>(r: Route<B>): Route {
  return r;
}

export interface AgentHttpOptions {
  routes: readonly Route[];
  auth: Authenticator;
  metrics: AgentMetrics;
  log: Logger;
  /** Read per transfer (AGENT_MAX_CONCURRENT_TRANSFERS). */
  maxConcurrent: () => number;
}

export class AgentHttp {
  readonly server: Server;
  private readonly routes: readonly Route[];
  private readonly auth: Authenticator;
  private readonly metrics: AgentMetrics;
  private readonly log: Logger;
  private readonly slots: Slots;
  private ready = false;
  private draining = false;

  constructor(options: AgentHttpOptions, tls: TlsPair) {
    this.routes = options.routes;
    this.auth = options.auth;
    this.metrics = options.metrics;
    this.log = options.log;
    this.slots = new Slots(options.maxConcurrent, (n) => this.metrics.inFlight.set(n));
    this.server = createServer({ ...tls, minVersion: "TLSv1.2" }, (req, res) => void this.handle(req, res));
    this.server.requestTimeout = 60 * 60_000;
    this.server.headersTimeout = 30_000;
  }

  /** Listens and turns ready; resolves with the port. */
  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => resolve());
    });
    this.ready = true;
    return (this.server.address() as AddressInfo).port;
  }

  /** Installs a re-issued certificate without dropping connections. */
  reloadTls(tls: TlsPair): void {
    this.server.setSecureContext({ ...tls, minVersion: "TLSv1.2" });
  }

  /** Transfers holding a slot. */
  get inFlight(): number {
    return this.slots.size;
  }

  /**
   * Turns unready, stops accepting, lets the transfers in flight finish for `graceMs`, then calls
   * `abortWork` and gives them 10 s more to clean up before closing every connection.
   */
  async shutdown(graceMs: number, abortWork: () => void): Promise<void> {
    this.draining = true;
    this.ready = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.slots.size > 0) {
      await this.slots.idle(graceMs);
      if (this.slots.size > 0) {
        this.log.warn({ inFlight: this.slots.size }, "grace period over, aborting transfers");
        abortWork();
        await this.slots.idle(10_000);
      }
    }
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://agent.invalid");
    let name = "other";
    try {
      if (req.method === "GET" && url.pathname === "/healthz") {
        name = "healthz";
        return this.reply(res, 200, { status: "ok" }, name);
      }
      if (req.method === "GET" && url.pathname === "/readyz") {
        name = "readyz";
        return this.reply(res, this.ready ? 200 : 503, { ready: this.ready }, name);
      }
      if (req.method === "GET" && url.pathname === "/metrics") {
        name = "metrics";
        res.setHeader("content-type", this.metrics.registry.contentType);
        res.end(await this.metrics.registry.metrics());
        this.metrics.requests.inc({ route: name, code: "200" });
        return;
      }
      const found = this.match(url.pathname);
      if (!found) throw new Ms2mError("NotFound", `no route ${url.pathname.slice(0, 100)}`);
      const { route, params } = found;
      name = route.name;
      route.checkParams?.(params);
      if (req.method !== route.method) throw new Ms2mError("MethodNotAllowed", `${req.method} not allowed`);
      if (route.transfer && this.draining)
        throw new Ms2mError("ServiceUnavailable", "agent is shutting down");
      const principal = await this.auth.check(req.headers.authorization, route.operation);
      const slot = route.transfer ? this.slots.acquire() : undefined;
      // Alive while working: `102 Processing` every HEARTBEAT_MS until the answer, so callers
      // can tell a busy agent (loading, pushing) from a dead or stalled one by progress alone.
      const heartbeat = setInterval(() => {
        if (!res.headersSent && !res.destroyed && res.writable) res.writeProcessing();
      }, HEARTBEAT_MS);
      heartbeat.unref();
      try {
        const log = this.log.child({
          op: route.name,
          caller: principal.serviceAccount,
          migration: params.migration ?? url.searchParams.get("migration") ?? undefined,
        });
        const body = route.body ? await readJson(req, route.body) : undefined;
        const result = await route.handle({ req, url, params, principal, log, body });
        this.reply(res, route.status ?? 200, result, name);
      } finally {
        clearInterval(heartbeat);
        if (slot) this.slots.release(slot);
      }
    } catch (err) {
      this.replyError(req, res, err, name);
    }
  }

  private match(path: string): { route: Route; params: Call["params"] } | undefined {
    for (const route of this.routes) {
      if (typeof route.path === "string") {
        if (route.path === path) return { route, params: {} };
        continue;
      }
      const m = route.path.exec(path);
      if (m) return { route, params: { ...m.groups } };
    }
    return undefined;
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
