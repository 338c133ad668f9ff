// What a phase handler works with: the migration as last written, the ports, and helpers that
// write status and move between phases. Every write returns the stored object, which becomes
// `ctx.m`: the next step always starts from what the API server has, never from a cache. The
// exceptions are held in memory until the next write on purpose: reports (defer()) and a lazy
// phase change (transition()); each write is guarded by the resourceVersion of the last one.
import type { Logger } from "../common/logger.ts";
import type { ControllerMetrics } from "./metrics.ts";
import type { Phase, StatefulMigration } from "../api/v1alpha1/index.ts";
import type {
  BaseImagePort,
  CheckpointPort,
  Clock,
  ClusterPort,
  EventRecorder,
  EventType,
  MessagingPort,
  RuntimePort,
  TransferPort,
} from "./ports.ts";
import { nextPhase, type ActivePhase } from "./phase-order.ts";
import { strategyFor, type Strategy } from "./strategies/index.ts";
import { transportFor, type Transport } from "./transfer-modes/index.ts";
import { activeTrace, type MigrationTrace } from "./timeline/trace.ts";
import { timelineSummary } from "./timeline/summary.ts";
import {
  CONDITION_PROGRESSING,
  CONDITION_SUCCEEDED,
  cloneMigration,
  endPhaseTiming,
  formatDuration,
  iso,
  setCondition,
  startPhaseTiming,
  timingOf,
} from "./status.ts";

export type { ActivePhase } from "./phase-order.ts";

export interface ControllerSettings {
  /** Deadline of each phase in ms (Replaying: added to the migration's replay cutoff). */
  phaseTimeoutMs: Record<ActivePhase, number>;
  /** Deadline for a rollback before the migration is marked Failed regardless. */
  rollbackTimeoutMs: number;
  /** Grace period for deleting a source pod (short: the target is ready to take over by then). */
  sourceGraceSeconds: number;
  /**
   * Re-check of the replay queue when no PROGRESS report arrived (reports drive Replaying; the SDK
   * sends one at least every second while it replays).
   */
  replayRecheckMs: number;
  /** Passed to the kubelet checkpoint API. */
  checkpointTimeoutSeconds: number;
  /**
   * The source node needs a Ready agent anyway (CHECKPOINT_MODE=agent or
   * MS2M_TRANSFER_RUNNER=agent): the runtime preflight waits for one instead of skipping.
   */
  sourceAgentRequired: boolean;
}

export const defaultSettings: ControllerSettings = {
  phaseTimeoutMs: {
    Pending: 60_000,
    Checkpointing: 120_000,
    Transferring: 300_000,
    Restoring: 300_000,
    Replaying: 60_000,
    Finalizing: 120_000,
  },
  rollbackTimeoutMs: 120_000,
  sourceGraceSeconds: 1,
  replayRecheckMs: 5000,
  checkpointTimeoutSeconds: 60,
  sourceAgentRequired: true,
};

export interface PhaseDeps {
  cluster: ClusterPort;
  checkpointer: CheckpointPort;
  transfer: TransferPort;
  /** Pending's preflight of the nodes' container runtimes. */
  runtime: RuntimePort;
  /** Base images on the target node before the restore (absent: not checked). */
  baseImages?: BaseImagePort;
  messaging: MessagingPort;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  metrics?: ControllerMetrics;
  settings: ControllerSettings;
  /** One-shot messages this process has sent (re-sent once after a restart; idempotent). */
  sent: Set<string>;
  /**
   * Broker URLs read from Secrets, by `<migration uid>/<secret>/<key>`, reused for a short while
   * (shared.ts replayRef); entries of finished migrations are dropped. Absent: read every time.
   */
  brokerUrls?: Map<string, { url: string; at: number }>;
  /** Where a finished migration's spans go (OTLP; absent: nowhere). */
  traceExporter?: TraceExporter;
}

export interface TraceExporter {
  /** Fire and forget: an unreachable tracing backend never affects a migration. */
  export(m: StatefulMigration, trace: MigrationTrace): void;
}

/** What a handler tells the reconciler. */
export type Outcome =
  /** The phase changed (ctx.m holds the new object): run the next handler now. */
  | { type: "next" }
  /** Waiting for a watch event; `afterMs` bounds the wait (deadline or a poll). */
  | { type: "wait"; afterMs?: number }
  /** Nothing more to do for this object. */
  | { type: "done" };

export const next = (): Outcome => ({ type: "next" });
export const wait = (afterMs?: number): Outcome => ({
  type: "wait",
  ...(afterMs !== undefined ? { afterMs } : {}),
});
export const done = (): Outcome => ({ type: "done" });

export class PhaseContext {
  m: StatefulMigration;
  readonly deps: PhaseDeps;
  /** This reconcile's logger: the migration's key, its uid and the reconcile id on every line. */
  readonly log: Logger;

  constructor(m: StatefulMigration, deps: PhaseDeps, log: Logger = deps.log) {
    this.m = m;
    this.deps = deps;
    this.log = log;
  }

  /** The strategy Pending resolved (status.strategy); handlers after Pending only. */
  get strategy(): Strategy {
    const name = this.m.status?.strategy;
    if (!name) throw new Error("strategy not resolved yet (Pending resolves it)");
    return strategyFor(name);
  }

  /** The transfer mode Pending recorded (status.transferMode; the spec's before that). */
  get transport(): Transport {
    return transportFor(this.m.status?.transferMode ?? this.m.spec.transferMode, {
      encrypted: this.m.spec.encryption !== undefined,
    });
  }

  get now(): number {
    return this.deps.clock.now();
  }
  get namespace(): string {
    return this.m.metadata.namespace ?? "default";
  }
  get name(): string {
    return this.m.metadata.name ?? "";
  }

  event(type: EventType, reason: string, message: string): void {
    this.deps.events.event(this.m, type, reason, message);
  }

  /** Status changes that ride along with the next write (see defer()). */
  private deferred: ((m: StatefulMigration) => void)[] = [];
  /** `m` holds a phase change not written yet (transition with `lazy`). */
  private unwritten = false;
  /** A write started by storeBeside(), not waited for yet. */
  private inflight: Promise<void> | undefined;

  /**
   * Writes status after `mutate` (on a copy), with the deferred changes; Conflict propagates and
   * the key is requeued. Waits for a write storeBeside() started first (writes go one by one).
   */
  async update(mutate: (m: StatefulMigration) => void): Promise<StatefulMigration> {
    await this.settle();
    return this.write(mutate);
  }

  private async write(mutate: (m: StatefulMigration) => void): Promise<StatefulMigration> {
    const copy = cloneMigration(this.m);
    copy.status ??= {};
    // What is held goes with this write; held again if it fails. Changes deferred while it is
    // on its way wait for the next one.
    const held = this.deferred;
    const unwritten = this.unwritten;
    this.deferred = [];
    this.unwritten = false;
    try {
      for (const d of held) d(copy);
      mutate(copy);
      if (copy.metadata.generation !== undefined) copy.status.observedGeneration = copy.metadata.generation;
      this.m = await this.deps.cluster.updateMigrationStatus(copy);
    } catch (err) {
      this.deferred = [...held, ...this.deferred];
      this.unwritten ||= unwritten;
      throw err;
    }
    return this.m;
  }

  /**
   * A status change that only reports (a condition, a timestamp nothing decides on): written with
   * the next update or transition, or by flush() when the reconcile ends. Never for an intent
   * that must be stored before its action (those use update()): a crash loses deferred changes,
   * and the handler that made them makes them again.
   */
  defer(mutate: (m: StatefulMigration) => void): void {
    this.deferred.push(mutate);
  }

  /** Writes what was deferred or a lazy phase change, if anything (end of a reconcile). */
  async flush(): Promise<void> {
    await this.settle();
    if (this.dirty) await this.write(() => undefined);
  }

  /**
   * Starts writing what is held (a lazy phase change, reports) without waiting for it: beside
   * work that does not depend on it being stored (an idempotent action a restart in the previous
   * phase would repeat, reads). The next write, transition, flush() or settle() waits for it and
   * throws its error. Nothing may change `m` meanwhile but through those.
   */
  storeBeside(): void {
    if (this.inflight || !this.dirty) return;
    const writing = this.write(() => undefined).then(() => undefined);
    // Its failure is thrown by whoever waits for it (settle()), not reported as unhandled.
    writing.catch(() => undefined);
    this.inflight = writing;
  }

  /** Waits for the write storeBeside() started, if any; throws its error. */
  async settle(): Promise<void> {
    const writing = this.inflight;
    if (!writing) return;
    try {
      await writing;
    } finally {
      if (this.inflight === writing) this.inflight = undefined;
    }
  }

  /** Something is held in memory that the next write (or flush()) stores. */
  get dirty(): boolean {
    return this.deferred.length > 0 || this.unwritten;
  }

  /**
   * Ends the current phase and starts `to` in one status write; records Event and metrics.
   * `lazy`: the change is made to `m` only and written with the next write of the next phase's
   * handler (or by flush()): one status write less. Only where that handler does nothing before
   * its first write that a restart in the previous phase would not redo safely (a crash loses
   * the change, and the previous phase runs again).
   */
  async transition(
    to: Phase,
    mutate?: (m: StatefulMigration) => void,
    message?: string,
    opts: { lazy?: boolean } = {},
  ): Promise<void> {
    // On top of what is stored: a write storeBeside() started lands first.
    await this.settle();
    const from = this.m.status?.phase;
    const now = this.now;
    let endedMs: number | undefined;
    const trace = activeTrace.getStore();
    const change = (m: StatefulMigration) => {
      const status = (m.status ??= {});
      endedMs = endPhaseTiming(m, now);
      const ended = from ? timingOf(status, from) : undefined;
      if (trace && ended && endedMs !== undefined)
        ended.breakdown = trace.breakdown(Date.parse(ended.startTime), now);
      mutate?.(m);
      status.phase = to;
      if (to === "Completed" || to === "Failed") {
        status.completionTime = iso(now);
        if (status.startTime) status.duration = formatDuration(status.startTime, now);
        setCondition(m, now, {
          type: CONDITION_PROGRESSING,
          status: "False",
          reason: to,
          message: message ?? to,
        });
        setCondition(m, now, {
          type: CONDITION_SUCCEEDED,
          status: to === "Completed" ? "True" : "False",
          reason: to === "Completed" ? "Completed" : (status.failure?.reason ?? "Failed"),
          message:
            message ?? (to === "Completed" ? "migration completed" : (status.failure?.message ?? "failed")),
        });
      } else {
        startPhaseTiming(m, to, now);
        setCondition(m, now, {
          type: CONDITION_PROGRESSING,
          status: "True",
          reason: to,
          message: message ?? `phase ${to}`,
        });
      }
    };
    if (opts.lazy && to !== "Completed" && to !== "Failed") {
      // What was deferred goes into `m` as well: the next phase reads it (a checkpoint's result).
      const copy = cloneMigration(this.m);
      copy.status ??= {};
      for (const d of this.deferred) d(copy);
      this.deferred = [];
      change(copy);
      this.m = copy;
      this.unwritten = true;
    } else await this.update(change);
    const status = this.m.status ?? {};
    const labels = {
      strategy: status.strategy ?? "unknown",
      transfer_mode: status.transferMode ?? "unknown",
    };
    if (from && endedMs !== undefined) {
      this.deps.metrics?.phaseDuration.observe({ phase: from, ...labels }, endedMs / 1000);
      const own = timingOf(status, from)?.breakdown?.controllerMillis;
      if (own !== undefined) this.deps.metrics?.phaseControllerDuration.observe({ phase: from }, own / 1000);
    }
    if ((to === "Completed" || to === "Failed") && status.startTime) {
      const result =
        to === "Completed" ? "succeeded" : status.failure?.reason === "Cancelled" ? "cancelled" : "failed";
      this.deps.metrics?.migrationsTotal.inc({ result });
      this.deps.metrics?.migrationDuration.observe(
        { ...labels, result },
        (now - Date.parse(status.startTime)) / 1000,
      );
    }
    const text = message ?? (from ? `${from} -> ${to}` : to);
    this.event(to === "Failed" ? "Warning" : "Normal", to, text);
    if (to === "Completed" || to === "Failed") {
      const summary = timelineSummary(status);
      if (summary) this.event("Normal", "Timeline", summary);
    }
    this.log.info({ from, to, durationMs: endedMs }, "phase change");
  }

  /** Ends the current phase and starts the next one in the phase table (phase-order.ts). */
  advance(
    mutate?: (m: StatefulMigration) => void,
    message?: string,
    opts: { lazy?: boolean } = {},
  ): Promise<void> {
    const phase = (this.m.status?.phase ?? "Pending") as ActivePhase;
    return this.transition(nextPhase(phase), mutate, message, opts);
  }

  /** Milliseconds left before the current phase's deadline. */
  remainingMs(extraMs = 0): number {
    const phase = this.m.status?.phase as ActivePhase | undefined;
    if (!phase) return Infinity;
    const start = this.m.status?.phaseTimings?.find((t) => t.phase === phase)?.startTime;
    if (!start) return Infinity;
    const limit = this.deps.settings.phaseTimeoutMs[phase] + extraMs;
    return Date.parse(start) + limit - this.now;
  }
}
