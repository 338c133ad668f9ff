// Faults "in phase X" that prove where they landed (chaos, crash and cancel cases).
//
// A case watches its migration, applies the fault as soon as the watch shows the target phase
// (not at all if the migration went past it first), and once the migration has ended reads where
// the fault fell from the migration's own phaseTimings: the whole fault, from the moment it was
// applied to the moment the call returned, must lie inside [startTime, endTime) of the target
// phase. The controller stamps those times (same machine, same clock) when it enters and leaves a
// phase, before the status write the watch sees, so a fault the controller met after it had
// already left the phase shows as landing in the next one. A case that did not land where it
// claims is run again with a fresh migration, a bounded number of times (`untilLanded`), and
// fails if none landed. Use: `const watch = await MigrationWatch.start(kc, ns, name)` before
// creating the migration, `watch.inject(phase, fault)`, and once it ended `watch.landing(...)`.
import * as k8s from "@kubernetes/client-node";
import { GROUP, PLURAL, VERSION } from "../../tooling/stack/env.ts";
import type { StatefulMigration } from "../../src/api/v1alpha1/index.ts";

export const PHASES = ["Pending", "Checkpointing", "Transferring", "Restoring", "Replaying", "Finalizing"];
/** Fresh migrations a "fault in phase X" case may use before it fails for never landing in X. */
export const LANDING_ATTEMPTS = 4;
const ORDER = [...PHASES, "Completed", "Failed"];

/** Every write to one StatefulMigration, the last one before it was deleted included. */
export class MigrationWatch {
  /** The object as of the latest event (kept after deletion: the DELETED event carries it). */
  last: StatefulMigration | undefined;
  gone = false;
  /** Phases in the order the watch saw them. */
  readonly seen: string[] = [];
  private abort: AbortController | undefined;
  private stopped = false;
  private waiters = new Set<() => void>();

  private readonly kc: k8s.KubeConfig;
  readonly ns: string;
  readonly name: string;

  private constructor(kc: k8s.KubeConfig, ns: string, name: string) {
    this.kc = kc;
    this.ns = ns;
    this.name = name;
  }

  /** Starts watching (before the migration exists is fine: its creation is an event). */
  static async start(kc: k8s.KubeConfig, ns: string, name: string): Promise<MigrationWatch> {
    const w = new MigrationWatch(kc, ns, name);
    await w.connect();
    return w;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.abort = await new k8s.Watch(this.kc).watch(
      `/apis/${GROUP}/${VERSION}/namespaces/${this.ns}/${PLURAL}`,
      { fieldSelector: `metadata.name=${this.name}` },
      (type: string, obj: StatefulMigration) => {
        if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED") return;
        this.last = obj;
        this.gone = type === "DELETED";
        const phase = obj.status?.phase;
        if (phase && this.seen.at(-1) !== phase) this.seen.push(phase);
        for (const wake of this.waiters) wake();
      },
      () => {
        // A watch ends now and then (timeouts, restarts): start over, the list brings the state.
        if (!this.stopped) setTimeout(() => void this.connect().catch(() => undefined), 100);
      },
    );
  }

  get phase(): string {
    return this.gone ? "(gone)" : (this.last?.status?.phase ?? "");
  }

  /** Resolves with `probe`'s first defined value, checked on every event. */
  until<T>(what: string, probe: () => T | undefined, timeoutMs = 90_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      const check = () => {
        const v = probe();
        if (v === undefined) return;
        done();
        resolve(v);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for ${what} (seen ${this.seen.join("→")})`),
        );
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /**
   * The object as last written once the migration has ended: Completed or Failed, or deleted
   * (the DELETED event's copy). Waits up to `timeoutMs` for the watch to catch up.
   */
  async final(timeoutMs = 15_000): Promise<StatefulMigration | undefined> {
    await this.until(
      `${this.ns}/${this.name} ended or deleted`,
      () => this.gone || ["Completed", "Failed"].includes(this.phase) || undefined,
      timeoutMs,
    ).catch(() => undefined);
    return this.last;
  }

  /**
   * Waits for `phase` (or anything after it) and applies `fault` at once if the migration is in
   * `phase`; otherwise applies nothing.
   */
  async inject(
    phase: string,
    fault: () => Promise<void>,
    { timeoutMs = 90_000, delayMs = 0 } = {},
  ): Promise<Injection> {
    const at = ORDER.indexOf(phase);
    const now = await this.until(
      `${this.ns}/${this.name} in ${phase} or later`,
      () => {
        const p = this.phase;
        return p === "(gone)" || ORDER.indexOf(p) >= at ? p : undefined;
      },
      timeoutMs,
    );
    if (now !== phase) return { applied: false, why: `the migration was in ${now} before the fault` };
    // A fault meant to start late in the phase (it need not land in it then: see `spans`).
    if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const from = Date.now();
    await fault();
    return { applied: true, phase, window: { from, to: Date.now() } };
  }

  /** Where `injection` landed (`landing`), once the migration has ended or was deleted. */
  async landing(injection: Injection): Promise<string> {
    return landing(injection, await this.final());
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    this.waiters.clear();
  }
}

/** When a fault was applied: from the call to its return (epoch ms, this machine's clock). */
export interface FaultWindow {
  from: number;
  to: number;
}

/** A fault applied, or why not: the migration had gone past the phase before it could be. */
export type Injection =
  { applied: true; phase: string; window: FaultWindow } | { applied: false; why: string };

/** The phase whose [startTime, endTime) holds `t` (an open phase ends at +∞), by the timings. */
export function phaseAt(m: StatefulMigration | undefined, t: number): string {
  const timings = m?.status?.phaseTimings ?? [];
  const first = timings.reduce((a, x) => Math.min(a, Date.parse(x.startTime)), Infinity);
  if (!timings.length || t < first) return "before the migration started";
  for (const x of timings) {
    const start = Date.parse(x.startTime);
    const end = x.endTime ? Date.parse(x.endTime) : Infinity;
    if (t >= start && t < end) return x.phase;
  }
  const end = m?.status?.completionTime ? Date.parse(m.status.completionTime) : Infinity;
  return t >= end ? (m?.status?.phase ?? "ended") : "between phases";
}

/**
 * Where an injection landed, read from the migration's phaseTimings once they are final (after
 * the migration ended, or from the watch's last object if it was deleted): the target phase if
 * the whole window lies inside it, else what it straddled or why the fault was not applied.
 */
export function landing(injection: Injection, m: StatefulMigration | undefined): string {
  if (!injection.applied) return `not applied: ${injection.why}`;
  const a = phaseAt(m, injection.window.from);
  const b = phaseAt(m, injection.window.to);
  return a === b ? a : `${a}→${b}`;
}

/**
 * Whether a landing (`landing`'s "A" or "A→B") covers `phase`: it started in `phase` or before
 * it and ended in it or after it (a fault meant to span a phase, such as an outage).
 */
export function spans(landedIn: string, phase: string): boolean {
  const [a = "", b = a] = landedIn.split("→");
  const [i, j, k] = [ORDER.indexOf(a), ORDER.indexOf(phase), ORDER.indexOf(b)];
  return i >= 0 && k >= 0 && i <= j && j <= k;
}

/**
 * Runs `attempt` (each with a fresh migration) until one's fault landed where the case claims
 * (`landedIn === phase`, or `accept`), at most `attempts` (LANDING_ATTEMPTS) times. Returns
 * every attempt's result, the landed one last; fails saying where each attempt landed if none did.
 */
export async function untilLanded<R extends { landedIn: string }>(
  phase: string,
  attempt: (i: number) => Promise<R>,
  { attempts = LANDING_ATTEMPTS, accept = (l: string) => l === phase } = {},
): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < attempts; i++) {
    const r = await attempt(i);
    results.push(r);
    if (accept(r.landedIn)) return results;
    console.log(`[phase-fault] attempt ${i + 1}/${attempts} missed ${phase}: landed ${r.landedIn}`);
  }
  throw new Error(
    `no attempt's fault landed in ${phase} (${attempts} attempts: ${results.map((r) => r.landedIn).join("; ")})`,
  );
}
