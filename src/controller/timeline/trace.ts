// Spans of one migration, as this controller process saw it: every call through a port (API
// server, agents, kubelets, broker), every wait between reconciles (for a watch event, a timer,
// the work queue). A phase's breakdown is computed from them when it ends and written to status;
// the whole trace can be exported over OTLP (otlp.ts). Kept in memory only: a restarted
// controller starts a new trace and marks the phases it did not see from the start as partial.
import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import type { PhaseBreakdown } from "../../api/v1alpha1/index.ts";

/** What a span waited on. Kinds in EXTERNAL_KINDS are other components' time. */
export type SpanKind =
  | "api"
  | "checkpoint"
  | "transfer"
  | "runtime"
  | "images"
  | "broker"
  | "watch"
  | "timer"
  | "queue"
  | "reconcile";

export const EXTERNAL_KINDS: ReadonlySet<SpanKind> = new Set([
  "checkpoint",
  "transfer",
  "runtime",
  "images",
  "broker",
  "watch",
]);

export interface Span {
  name: string;
  kind: SpanKind;
  /** Epoch milliseconds, sub-millisecond precision. */
  start: number;
  end: number;
  spanId: string;
  error?: string;
}

/** Epoch milliseconds with sub-millisecond precision (monotonic within the process). */
export const nowMs = (): number => performance.timeOrigin + performance.now();

/** Spans kept per migration; older ones are dropped (and counted) beyond it. */
const MAX_SPANS = 4000;

export class MigrationTrace {
  /** The migration's metadata.uid. */
  readonly uid: string;
  /** The migration's UID without dashes: 32 hex digits, an OTLP trace id. */
  readonly traceId: string;
  /** When this process first saw the migration (phases that started before are partial). */
  readonly since: number;
  readonly spans: Span[] = [];
  dropped = 0;
  /** Set when a reconcile ended waiting (for an event or a timer). */
  waitingSince: number | undefined;

  /** The trace's clock (epoch ms): precise in production, the fake clock in unit tests. */
  readonly now: () => number;

  constructor(uid: string, now: () => number = nowMs) {
    this.uid = uid;
    this.traceId = uid.replaceAll("-", "").padEnd(32, "0").slice(0, 32);
    this.now = now;
    this.since = now();
  }

  record(name: string, kind: SpanKind, start: number, end: number, error?: string): void {
    if (this.spans.length >= MAX_SPANS) {
      this.spans.shift();
      this.dropped++;
    }
    this.spans.push({
      name,
      kind,
      start,
      end: Math.max(start, end),
      spanId: randomBytes(8).toString("hex"),
      ...(error ? { error } : {}),
    });
  }

  /** Runs `fn` as a span (awaited if it returns a promise). */
  async span<T>(name: string, kind: SpanKind, fn: () => Promise<T> | T): Promise<T> {
    const start = this.now();
    try {
      const value = await fn();
      this.record(name, kind, start, this.now());
      return value;
    } catch (err) {
      this.record(name, kind, start, this.now(), err instanceof Error ? err.message : String(err));
      throw err;
    }
  }

  /**
   * A reconcile starts: closes the wait that the previous one ended with. Until `queuedAt` the
   * controller waited for the world (an event) or for its own timer; from then on, for its queue.
   * Tentative until reconcileEnded(): a reconcile that changes nothing (an event that was not the
   * one awaited, say a pod's intermediate status) does not end the wait.
   */
  reconcileStarted(admission: { queuedAt: number; byTimer: boolean } | undefined, at = this.now()): void {
    this.#tentative = [];
    this.#mutationsAtStart = this.mutations;
    const since = this.waitingSince;
    if (since === undefined || !admission) return;
    const queued = Math.min(Math.max(admission.queuedAt, since), at);
    const before = this.spans.length;
    if (queued > since) {
      if (admission.byTimer) this.record("wait.timer", "timer", since, queued);
      else this.record("wait.event", "watch", since, queued);
    }
    if (at > queued) this.record("workqueue", "queue", queued, at);
    this.#tentative = this.spans.slice(before);
  }

  /**
   * A reconcile ends. If it acted (a write, an agent or broker call), the next wait starts now.
   * If it only read and went back to waiting, the wait it interrupted goes on: its wait and queue
   * spans are dropped, the next reconcile records one wait from the original start, and this
   * reconcile's reads fall inside that wait (the controller was not on the migration's path).
   */
  reconcileEnded(waiting: boolean, at = this.now()): void {
    const acted = this.mutations > this.#mutationsAtStart;
    if (waiting && !acted && this.waitingSince !== undefined) {
      for (const t of this.#tentative) {
        const i = this.spans.lastIndexOf(t);
        if (i >= 0) this.spans.splice(i, 1);
      }
    } else this.waitingSince = waiting ? at : undefined;
    this.#tentative = [];
  }

  /** Calls that change something (writes, agent and broker actions): see reconcileEnded(). */
  mutations = 0;
  #mutationsAtStart = 0;
  #tentative: Span[] = [];

  /** What the spans say about [start, end): per kind, overlapping spans counted once. */
  breakdown(start: number, end: number): PhaseBreakdown {
    const byKind = new Map<SpanKind, [number, number][]>();
    const external: [number, number][] = [];
    let apiCalls = 0;
    for (const s of this.spans) {
      const a = Math.max(s.start, start);
      const b = Math.min(s.end, end);
      if (s.kind === "api" && s.start >= start && s.start < end) apiCalls++;
      if (b <= a) continue;
      const list = byKind.get(s.kind) ?? [];
      list.push([a, b]);
      byKind.set(s.kind, list);
      if (EXTERNAL_KINDS.has(s.kind)) external.push([a, b]);
    }
    const duration = Math.max(0, end - start);
    const externalMillis = Math.min(duration, unionLength(external));
    const ms = (kind: SpanKind) => Math.round(unionLength(byKind.get(kind) ?? []));
    const out: PhaseBreakdown = {
      controllerMillis: Math.round(duration - externalMillis),
      externalMillis: Math.round(externalMillis),
      apiCalls,
    };
    const fields: [keyof PhaseBreakdown, SpanKind][] = [
      ["apiMillis", "api"],
      ["checkpointMillis", "checkpoint"],
      ["transferMillis", "transfer"],
      ["runtimeMillis", "runtime"],
      ["imagesMillis", "images"],
      ["brokerMillis", "broker"],
      ["watchMillis", "watch"],
      ["timerMillis", "timer"],
      ["queueMillis", "queue"],
    ];
    for (const [field, kind] of fields) {
      const v = ms(kind);
      if (v > 0) (out as Record<string, unknown>)[field] = v;
    }
    if (start < this.since - 1 || this.dropped > 0) out.partial = true;
    return out;
  }
}

/** Total length of a set of intervals, overlaps counted once. */
export function unionLength(intervals: readonly (readonly [number, number])[]): number {
  const sorted = [...intervals].sort((x, y) => x[0] - y[0]);
  let total = 0;
  let curStart = -Infinity;
  let curEnd = -Infinity;
  for (const [a, b] of sorted) {
    if (a > curEnd) {
      if (curEnd > curStart) total += curEnd - curStart;
      curStart = a;
      curEnd = b;
    } else if (b > curEnd) curEnd = b;
  }
  if (curEnd > curStart) total += curEnd - curStart;
  return total;
}

/** The trace of the migration being reconciled on this async path (ports record into it). */
export const activeTrace = new AsyncLocalStorage<MigrationTrace>();
