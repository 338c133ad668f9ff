// The StatefulMigration reconciler (the engine's Reconciler): reads the migration live, handles
// deletion (cancellation), failure (rollback) and the phase state machine. A phase that
// completes synchronously hands the object its write returned to the next phase within the
// same reconcile; the phase order is phase-order.ts's table.
import { describeError, isMs2mError } from "../common/errors.ts";
import type { CachedReads } from "./adapters/cached-reads.ts";
import type { StatefulMigration } from "../api/v1alpha1/index.ts";
import {
  RetryAfter,
  type ReconcileScope,
  type Reconciler,
  type Request,
  type Result,
} from "../engine/reconciler.ts";
import { PhaseContext, type ActivePhase, type Outcome, type PhaseDeps } from "./context.ts";
import { MigrationFailure } from "./failures.ts";
import { FINALIZER } from "./names.ts";
import { checkpointing } from "./phases/checkpointing.ts";
import { finalizing } from "./phases/finalizing.ts";
import { pending } from "./phases/pending.ts";
import { replaying } from "./phases/replaying.ts";
import { restoring } from "./phases/restoring.ts";
import { rollback } from "./phases/rollback.ts";
import { rollForward } from "./phases/rollforward.ts";
import { transferring } from "./phases/transferring.ts";
import { pastNoReturnLive } from "./point-of-no-return.ts";
import { recordFailure } from "./status.ts";
import { tracedDeps } from "./timeline/instrument.ts";
import { activeTrace, MigrationTrace } from "./timeline/trace.ts";

export { RetryAfter };

export const handlers: Record<ActivePhase, (ctx: PhaseContext) => Promise<Outcome>> = {
  Pending: pending,
  Checkpointing: checkpointing,
  Transferring: transferring,
  Restoring: restoring,
  Replaying: replaying,
  Finalizing: finalizing,
};

const MAX_STEPS = 16;
/** A phase that keeps failing on the same error this long is said to be retrying (a Warning). */
const RETRY_REPORT_AFTER_MS = 5000;

interface Retrying {
  phase: ActivePhase;
  /** The error's Status reason (or its name): a new reason is a new report. */
  reason: string;
  message: string;
  since: number;
  reported: boolean;
}

export class StatefulMigrationReconciler implements Reconciler {
  readonly deps: PhaseDeps;
  /** Spans of the migrations in flight, by namespace/name (timeline/trace.ts). */
  private readonly traces = new Map<string, MigrationTrace>();
  /**
   * The error each migration's phase is being retried on, by UID: a Warning once it persists, and
   * the reason a phase deadline gives (otherwise "did not finish in time" says nothing of why).
   * Kept in memory only: a restarted controller learns it again on its next retry.
   */
  private readonly retrying = new Map<string, Retrying>();

  constructor(deps: PhaseDeps) {
    // Every port call a handler makes becomes a span of the migration being reconciled.
    this.deps = tracedDeps(deps);
  }

  private preciseNow(): number {
    const clock = this.deps.clock;
    return clock.precise ? clock.precise() : clock.now();
  }

  async reconcile(req: Request, scope?: ReconcileScope): Promise<Result> {
    const key = `${req.namespace}/${req.name}`;
    const started = this.preciseNow();
    // Answered without a request when the watch shows the object as this controller last wrote it.
    const held = (this.deps.cluster as Partial<CachedReads>).holds?.(
      "StatefulMigration",
      req.namespace,
      req.name,
    );
    const m = await this.deps.cluster.getMigration(req.namespace, req.name);
    if (!m) {
      this.traces.delete(key);
      return {};
    }
    const trace = this.traceOf(key, m);
    if (!trace) return this.reconcileTraced(m, scope);
    trace.reconcileStarted(scope?.admission, started);
    if (!held) trace.record("kube.getMigration", "api", started, this.preciseNow());
    let waiting = true;
    try {
      const result = await activeTrace.run(trace, () => this.reconcileTraced(m, scope));
      waiting = result.requeueAfterMs !== 0;
      return result;
    } finally {
      // Until the next reconcile the controller waits: for an event, a timer or its queue.
      if (this.traces.get(key) === trace) trace.reconcileEnded(waiting, this.preciseNow());
    }
  }

  /** The migration's trace; none for one that has ended (nothing more to record). */
  private traceOf(key: string, m: StatefulMigration): MigrationTrace | undefined {
    const uid = m.metadata.uid ?? "";
    const phase = m.status?.phase;
    if (phase === "Completed" || phase === "Failed") {
      this.traces.delete(key);
      return undefined;
    }
    let trace = this.traces.get(key);
    if (trace?.uid !== uid) {
      trace = new MigrationTrace(uid, () => this.preciseNow());
      this.traces.set(key, trace);
    }
    return trace;
  }

  private async reconcileTraced(m: StatefulMigration, scope?: ReconcileScope): Promise<Result> {
    const req = { namespace: m.metadata.namespace ?? "", name: m.metadata.name ?? "" };
    const log = (scope?.log ?? this.deps.log.child({ migration: `${req.namespace}/${req.name}` })).child({
      uid: m.metadata.uid,
    });
    const ctx = new PhaseContext(m, this.deps, log);
    // In Finalizing the cutover may already have moved the primary queue to the target (which
    // then holds acknowledged state no other pod has): a deletion there rolls forward to
    // Completed; the finalizer goes after that. The same holds for a Sequential migration whose
    // source was deleted (its state exists only in the checkpoint): past that point of no return
    // a cancellation finishes forward (phases/rollforward.ts).
    const active = m.status?.phase !== "Completed" && m.status?.phase !== "Failed" && !m.status?.failure;
    if (m.metadata.deletionTimestamp) {
      const finishing = active && (m.status?.phase === "Finalizing" || (await pastNoReturnLive(ctx)));
      if (!finishing) return this.cancel(ctx);
    }
    const result = await this.drive(ctx);
    const phase = ctx.m.status?.phase;
    if (phase === "Completed" || phase === "Failed") this.forget(ctx);
    return result;
  }

  private async drive(ctx: PhaseContext): Promise<Result> {
    for (let step = 0; step < MAX_STEPS; step++) {
      const phase = ctx.m.status?.phase ?? "Pending";
      if (phase === "Completed" || phase === "Failed") return {};
      if (ctx.m.status?.failure) {
        await rollback(ctx);
        continue;
      }
      const remaining = ctx.remainingMs(this.extraMs(ctx.m, phase));
      if (remaining <= 0) {
        const last = this.retrying.get(ctx.m.metadata.uid ?? "");
        const why = last?.phase === phase ? `; it was retrying on: ${last.message}` : "";
        await this.failWith(
          ctx,
          phase,
          new MigrationFailure(`${phase}Timeout`, `${phase} did not finish in time${why}`),
        );
        continue;
      }
      let outcome: Outcome;
      try {
        outcome = await handlers[phase](ctx);
      } catch (err) {
        if (err instanceof MigrationFailure) {
          await this.failWith(ctx, phase, err);
          continue;
        }
        if (isMs2mError(err) && !err.retriable && err.reason !== "NotFound") {
          // Refused requests (403, 422, ...) do not get better by retrying.
          await this.failWith(
            ctx,
            phase,
            new MigrationFailure(err.reason, describeError(err), { cause: err }),
          );
          continue;
        }
        // What is held for the next write (reports, a lazy phase change) is stored before a
        // request that failed is retried, so the retried phase keeps its deadline; best effort
        // (a crash loses it as well, and the handlers are written for that).
        if (isMs2mError(err)) await ctx.flush().catch(() => undefined);
        else await ctx.settle().catch(() => undefined);
        this.noteRetry(ctx, phase, err);
        throw new RetryAfter(err, remaining, busy(err) ? { backoffCapMs: busyBackoffCapMs(ctx.m) } : {});
      }
      if (outcome.type === "next") continue;
      await ctx.flush();
      if (outcome.type === "done") return {};
      const after = Math.min(outcome.afterMs ?? remaining, remaining);
      return Number.isFinite(after) ? { requeueAfterMs: Math.max(0, after) } : {};
    }
    await ctx.flush();
    return { requeueAfterMs: 0 };
  }

  /**
   * Remembers the error a phase is retried on; once the same phase has failed with the same
   * reason for RETRY_REPORT_AFTER_MS, one Warning `Retrying` says so (a one-off conflict or reset
   * is not worth one).
   */
  private noteRetry(ctx: PhaseContext, phase: ActivePhase, err: unknown): void {
    const uid = ctx.m.metadata.uid ?? "";
    const reason = isMs2mError(err) ? err.reason : err instanceof Error ? err.name : "Error";
    const message = describeError(err).slice(0, 500);
    const now = ctx.now;
    let r = this.retrying.get(uid);
    if (r?.phase !== phase || r.reason !== reason) {
      r = { phase, reason, message, since: now, reported: false };
      this.retrying.set(uid, r);
    }
    r.message = message;
    if (!r.reported && now - r.since >= RETRY_REPORT_AFTER_MS) {
      r.reported = true;
      ctx.event(
        "Warning",
        "Retrying",
        `${phase}: ${message} (failing for ${Math.round((now - r.since) / 1000)} s; retried until the phase's deadline)`,
      );
    }
  }

  /** Drops what this process kept about a migration that has ended (its trace goes to the exporter). */
  private forget(ctx: PhaseContext): void {
    this.retrying.delete(ctx.m.metadata.uid ?? "");
    const key = `${ctx.namespace}/${ctx.name}`;
    const trace = this.traces.get(key);
    this.traces.delete(key);
    if (trace && trace.uid === ctx.m.metadata.uid) this.deps.traceExporter?.export(ctx.m, trace);
    const prefix = `${ctx.m.metadata.uid}/`;
    for (const k of this.deps.brokerUrls?.keys() ?? [])
      if (k.startsWith(prefix)) this.deps.brokerUrls?.delete(k);
  }

  private extraMs(m: StatefulMigration, phase: ActivePhase): number {
    return phase === "Replaying" ? m.spec.replayCutoffSeconds * 1000 : 0;
  }

  private async failWith(ctx: PhaseContext, phase: ActivePhase, err: MigrationFailure): Promise<void> {
    // Past the point of no return a failure rolls forward while there is something to try.
    if (err.reason !== "Cancelled" && (await rollForward(ctx, phase, err))) return;
    const now = ctx.now;
    await ctx.update((m) => recordFailure(m, now, { phase, reason: err.reason, message: err.message }));
    ctx.event("Warning", err.reason, `${phase}: ${err.message}`);
    ctx.log.warn({ phase, reason: err.reason, err: err.message }, "migration failed");
  }

  /** Deletion: a migration in flight is cancelled with a rollback; then the finalizer goes. */
  private async cancel(ctx: PhaseContext): Promise<Result> {
    const phase = ctx.m.status?.phase;
    if (
      phase !== "Completed" &&
      phase !== "Failed" &&
      (ctx.m.metadata.finalizers ?? []).includes(FINALIZER)
    ) {
      if (!ctx.m.status?.failure) {
        await this.failWith(
          ctx,
          (phase ?? "Pending") as ActivePhase,
          new MigrationFailure("Cancelled", "the StatefulMigration was deleted"),
        );
      }
      await rollback(ctx);
    }
    this.forget(ctx);
    if ((ctx.m.metadata.finalizers ?? []).includes(FINALIZER)) {
      await this.deps.cluster.removeMigrationFinalizer(ctx.m, FINALIZER);
    }
    return {};
  }
}

/** An agent or the API server refused for now (429: transfers in flight, flow control). */
const busy = (err: unknown) => isMs2mError(err) && err.reason === "TooManyRequests";

/**
 * The longest a migration refused by a busy peer waits before it asks again: 4–6 s, spread by its
 * UID so that a drain's migrations do not all ask at the same instant. Each attempt costs two
 * status writes (a checkpoint's intent, withdrawn on 429): a cap of a second had a hundred
 * waiting migrations write 200 times a second.
 */
export function busyBackoffCapMs(m: StatefulMigration): number {
  let h = 0;
  for (const ch of m.metadata.uid ?? m.metadata.name ?? "") h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return 4000 + (h % 2000);
}
