// The checkpoint lifecycle sweep: what a crashed or interrupted run left on the agents — records,
// archives in the kubelet's checkpoints folder, registry images the sends pushed, images loaded
// into a node's containers-storage — is released once nobody can need it any more.
//
// A periodic task of the leader (start/stop, like the certificate managers): every
// `intervalMs` it asks each Ready agent what it holds (`GET /v1/checkpoints`, per migration UID),
// reads the StatefulMigrations live, and releases (`DELETE /v1/checkpoints/{uid}`, the same
// idempotent release as at the end of a migration) each migration that
// - no longer exists, and whose newest record is older than the TTL, or
// - finished (Completed, or Failed and rolled back) longer than the TTL ago.
// Never released: a migration that exists and has not finished (in flight), one the agent is
// working on right now (`busy`), and one that failed past the point of no return without
// rolling back (RolledBack=False: its checkpoint may be the only copy of the state) while it
// exists. Images a pod on the node runs from (a Completed target runs from its checkpoint image)
// are kept: the release is asked with `keepLoadedImages`, so only the records go. Stateless, so a
// restarted (or newly elected) controller simply sweeps again; every action is idempotent.
import type { StatefulMigration } from "../../api/v1alpha1/index.ts";
import { describeError } from "../../common/errors.ts";
import type { Logger } from "../../common/logger.ts";
import type { CheckpointInventory, ReleaseResponse } from "../../transfer/types.ts";
import { CONDITION_ROLLED_BACK, getCondition } from "../status.ts";

export type InventoryEntry = CheckpointInventory["migrations"][number];

/** What the sweep needs of the cluster and the agents (real: ./kube.ts; tests: fakes). */
export interface SweepPorts {
  /** Every Ready agent: its node and URL. */
  agents(): Promise<{ node: string; url: string }[]>;
  inventory(url: string): Promise<CheckpointInventory>;
  release(url: string, migration: string, keepLoadedImages: boolean): Promise<ReleaseResponse>;
  /** Every StatefulMigration, read live (a failed read skips the round: nothing is guessed). */
  migrations(): Promise<StatefulMigration[]>;
  /** The images the pods bound to `node` run (spec and status). */
  imagesInUse(node: string): Promise<Set<string>>;
}

export interface SweepSettings {
  /** How long after a migration finished (or, gone, after its newest record) its artifacts go. */
  ttlMs: number;
  /** How often the sweep runs. */
  intervalMs: number;
}

export type SweepDecision =
  { action: "keep"; why: string } | { action: "release"; why: string; keepLoadedImages: boolean };

const finishedAt = (m: StatefulMigration): number | undefined => {
  const t = m.status?.completionTime;
  const ms = t ? Date.parse(t) : NaN;
  return Number.isFinite(ms) ? ms : undefined;
};

/**
 * The decision for one migration on one agent. `migration` is the live object with that UID
 * (undefined: deleted), `inUse` the images pods on the agent's node run.
 */
export function decide(
  entry: InventoryEntry,
  migration: StatefulMigration | undefined,
  now: number,
  ttlMs: number,
  inUse: ReadonlySet<string>,
): SweepDecision {
  if (entry.busy) return { action: "keep", why: "a request of the migration is running on the agent" };
  const newest = Date.parse(entry.newest);
  const keepLoadedImages = entry.loadedImages.some((i) => inUse.has(i));
  if (!migration) {
    const age = now - (Number.isFinite(newest) ? newest : 0);
    if (age < ttlMs) return { action: "keep", why: "migration gone, artifacts younger than the TTL" };
    return { action: "release", why: "migration gone", keepLoadedImages };
  }
  const phase = migration.status?.phase;
  if (phase !== "Completed" && phase !== "Failed") return { action: "keep", why: "migration in flight" };
  if (phase === "Failed" && getCondition(migration.status, CONDITION_ROLLED_BACK)?.status !== "True")
    return { action: "keep", why: "failed without rolling back: the checkpoint may hold the only state" };
  const done = finishedAt(migration) ?? newest;
  if (now - done < ttlMs) return { action: "keep", why: "finished less than the TTL ago" };
  return {
    action: "release",
    why: `${phase} longer than the TTL ago`,
    // The restored pod of a completed migration runs from its image.
    keepLoadedImages: keepLoadedImages || phase === "Completed",
  };
}

export interface SweepReport {
  released: { node: string; migration: string; why: string; keepLoadedImages: boolean }[];
  kept: number;
  errors: string[];
}

export class CheckpointSweeper {
  private readonly ports: SweepPorts;
  private readonly settings: SweepSettings;
  private readonly log: Logger;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private running: Promise<unknown> = Promise.resolve();

  constructor(opts: { ports: SweepPorts; settings: SweepSettings; log: Logger; now?: () => number }) {
    this.ports = opts.ports;
    this.settings = opts.settings;
    this.log = opts.log.child({ component: "checkpoint-sweep" });
    this.now = opts.now ?? Date.now;
  }

  /** Sweeps now and then every `intervalMs` until `stop`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const tick = async () => {
      await this.sweep().catch((err: unknown) =>
        this.log.warn({ err: describeError(err) }, "checkpoint sweep failed"),
      );
      if (!this.stopped)
        this.timer = setTimeout(() => void (this.running = tick()), this.settings.intervalMs).unref();
    };
    this.running = tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running.catch(() => undefined);
  }

  /** One round over every agent. An agent that cannot be asked is skipped (next round). */
  async sweep(): Promise<SweepReport> {
    const report: SweepReport = { released: [], kept: 0, errors: [] };
    const agents = await this.ports.agents();
    // Read after the agents' lists would be better for a migration created in between, but a
    // migration's records exist only after it was created: read once, before, is safe too.
    const byUid = new Map<string, StatefulMigration>();
    for (const m of await this.ports.migrations()) if (m.metadata?.uid) byUid.set(m.metadata.uid, m);
    for (const agent of agents) {
      let inv: CheckpointInventory;
      try {
        inv = await this.ports.inventory(agent.url);
      } catch (err) {
        report.errors.push(`${agent.node}: ${describeError(err)}`);
        continue;
      }
      let inUse: Set<string> | undefined;
      for (const entry of inv.migrations) {
        const needsImages = entry.loadedImages.length > 0;
        if (needsImages && !inUse) {
          try {
            inUse = await this.ports.imagesInUse(agent.node);
          } catch (err) {
            report.errors.push(`${agent.node}: pods: ${describeError(err)}`);
            break; // without knowing what runs there, nothing loaded on the node is released
          }
        }
        const d = decide(
          entry,
          byUid.get(entry.migration),
          this.now(),
          this.settings.ttlMs,
          inUse ?? new Set(),
        );
        if (d.action === "keep") {
          report.kept++;
          continue;
        }
        try {
          const res = await this.ports.release(agent.url, entry.migration, d.keepLoadedImages);
          report.released.push({
            node: agent.node,
            migration: entry.migration,
            why: d.why,
            keepLoadedImages: d.keepLoadedImages,
          });
          this.log.info(
            {
              node: agent.node,
              migration: entry.migration,
              why: d.why,
              records: res.records,
              archives: res.archives,
              registryImages: res.registryImages,
              loadedImages: res.loadedImages,
            },
            "checkpoint artifacts swept",
          );
        } catch (err) {
          report.errors.push(`${agent.node}: release ${entry.migration}: ${describeError(err)}`);
        }
      }
    }
    if (report.errors.length > 0) this.log.warn({ errors: report.errors }, "checkpoint sweep incomplete");
    return report;
  }
}
