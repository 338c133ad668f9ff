// What every operation of the agent works with, passed explicitly to the handlers.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../common/logger.ts";
import type { StorageConfig } from "../checkpoint/skopeo.ts";
import type { AgentConfig } from "./config.ts";
import { InFlight, KeyedLock } from "./inflight.ts";
import type { AgentMetrics } from "./metrics.ts";
import { CheckpointRecords } from "./records.ts";

export interface AgentContext {
  /** Read on every use (never copied): tests change some settings of a running agent. */
  readonly config: AgentConfig;
  /** The agent's logger (bound to the node); requests log through their own child. */
  readonly log: Logger;
  readonly metrics: AgentMetrics;
  readonly records: CheckpointRecords;
  /** This node's containers-storage. */
  readonly store: StorageConfig;
  /** Per-request OCI layouts live in `<tmpDir>/<uuid>`; swept at startup. */
  readonly tmpDir: string;
  readonly inflight: InFlight;
  /** Serializes read-modify-write of one checkpoint record (key `<migration>/<container>`). */
  readonly recordLocks: KeyedLock;
  /** Aborted when the shutdown grace period is over: long work stops and cleans up. */
  readonly signal: AbortSignal;
  /** Token presented to other agents. */
  readonly outboundToken: () => Promise<string>;
}

export function createContext(deps: {
  config: AgentConfig;
  log: Logger;
  metrics: AgentMetrics;
  signal: AbortSignal;
  outboundToken?: (() => Promise<string>) | undefined;
}): AgentContext {
  const { config } = deps;
  return {
    config,
    log: deps.log,
    metrics: deps.metrics,
    records: new CheckpointRecords(config.AGENT_WORK_DIR, config.AGENT_CHECKPOINTS_DIR),
    store: {
      driver: config.AGENT_STORAGE_DRIVER,
      graphRoot: config.AGENT_STORAGE_GRAPHROOT,
      runRoot: config.AGENT_STORAGE_RUNROOT,
    },
    tmpDir: join(config.AGENT_WORK_DIR, "tmp"),
    inflight: new InFlight(),
    recordLocks: new KeyedLock(),
    signal: deps.signal,
    // Projected tokens rotate: read per use.
    outboundToken:
      deps.outboundToken ?? (async () => (await readFile(config.AGENT_TOKEN_FILE, "utf8")).trim()),
  };
}
