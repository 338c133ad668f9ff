// The ms2m-agent server: receives archives (direct mode), sends local checkpoints to another
// agent or a registry, pulls from a registry, asks the local kubelet for checkpoints. This
// module puts the pieces together and runs the agent's life: the HTTPS shell (http.ts) serving
// the route table (routes.ts) of the handlers (handlers/), the leftovers of a previous run swept
// at start, the expiry sweep of checkpoint records, and the shutdown.
import { mkdir, rm } from "node:fs/promises";
import type { Server } from "node:https";
import { createLogger, type Logger } from "../common/logger.ts";
import type { ReleaseResponse } from "../transfer/types.ts";
import { Authenticator, type Reviewer } from "./auth.ts";
import type { AgentConfig } from "./config.ts";
import { createContext, type AgentContext } from "./context.ts";
import { releaseMigration, sweepExpired } from "./handlers/checkpoints.ts";
import { AgentHttp, type TlsPair } from "./http.ts";
import { createMetrics, type AgentMetrics } from "./metrics.ts";
import type { CheckpointRecords } from "./records.ts";
import { agentRoutes } from "./routes.ts";

export interface AgentDeps {
  config: AgentConfig;
  reviewer: Reviewer;
  logger?: Logger;
  metrics?: AgentMetrics;
  /** Token presented to other agents (default: read AGENT_TOKEN_FILE on every use). */
  outboundToken?: () => Promise<string>;
}

export class AgentServer {
  readonly config: AgentConfig;
  readonly metrics: AgentMetrics;
  readonly log: Logger;
  readonly server: Server;
  readonly records: CheckpointRecords;
  private readonly ctx: AgentContext;
  private readonly http: AgentHttp;
  /** Aborts the work in flight once the shutdown grace period is over. */
  private readonly shutdownAbort = new AbortController();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(deps: AgentDeps, tls: TlsPair) {
    this.config = deps.config;
    this.metrics = deps.metrics ?? createMetrics();
    this.log = (deps.logger ?? createLogger("ms2m-agent")).child({ node: this.config.NODE_NAME });
    this.ctx = createContext({
      config: this.config,
      log: this.log,
      metrics: this.metrics,
      signal: this.shutdownAbort.signal,
      outboundToken: deps.outboundToken,
    });
    this.records = this.ctx.records;
    this.http = new AgentHttp(
      {
        routes: agentRoutes(this.ctx),
        auth: new Authenticator(deps.reviewer, this.config.NODE_NAME, {
          ttlMs: this.config.AGENT_AUTH_CACHE_SECONDS * 1000,
        }),
        metrics: this.metrics,
        log: this.log,
        maxConcurrent: () => this.config.AGENT_MAX_CONCURRENT_TRANSFERS,
      },
      tls,
    );
    this.server = this.http.server;
  }

  /** Sweeps leftovers of a previous (crashed) run, then listens. */
  async listen(): Promise<number> {
    await rm(this.ctx.tmpDir, { recursive: true, force: true });
    await mkdir(this.ctx.tmpDir, { recursive: true, mode: 0o700 });
    await this.records.init();
    await this.sweepExpired();
    const ttlMs = this.config.AGENT_CHECKPOINT_TTL_SECONDS * 1000;
    this.sweepTimer = setInterval(
      () => void this.sweepExpired(),
      Math.max(1000, Math.min(60_000, ttlMs / 2)),
    ).unref();
    const port = await this.http.listen(this.config.AGENT_PORT, this.config.AGENT_BIND_ADDRESS);
    this.log.info({ port }, "agent listening");
    return port;
  }

  /** Installs a re-issued certificate without dropping connections. */
  reloadTls(tls: TlsPair): void {
    this.http.reloadTls(tls);
  }

  /** Stops accepting, lets in-flight work finish for `graceMs`, then aborts it (cleaning up). */
  async shutdown(graceMs = this.config.AGENT_SHUTDOWN_GRACE_SECONDS * 1000): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.http.shutdown(graceMs, () => this.shutdownAbort.abort());
  }

  /** Transfers running now (each holds a concurrency slot). */
  get inFlightCount(): number {
    return this.http.inFlight;
  }

  /** What `DELETE /v1/checkpoints/{migration}` does (handlers/checkpoints.ts). */
  releaseMigration(
    migration: string,
    log: Logger = this.log,
    opts: { keepLoadedImages?: boolean } = {},
  ): Promise<ReleaseResponse> {
    return releaseMigration(this.ctx, migration, log, opts);
  }

  /** Releases migrations whose records are older than AGENT_CHECKPOINT_TTL_SECONDS. */
  sweepExpired(now = Date.now()): Promise<string[]> {
    return sweepExpired(this.ctx, now);
  }
}
