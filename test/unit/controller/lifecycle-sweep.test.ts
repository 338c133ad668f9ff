// The checkpoint lifecycle sweep: what it releases, what it never touches, and that it is
// idempotent and stateless (a second round, or a new leader, finds nothing left to do).
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { StatefulMigration } from "../../../src/api/v1alpha1/index.ts";
import {
  CheckpointSweeper,
  decide,
  type InventoryEntry,
  type SweepPorts,
} from "../../../src/controller/lifecycle/sweep.ts";
import type { CheckpointInventory, ReleaseResponse } from "../../../src/transfer/types.ts";

const NOW = Date.parse("2026-12-02T12:00:00Z");
const TTL = 3600_000;
const ago = (ms: number) => new Date(NOW - ms).toISOString();

function entry(migration: string, over: Partial<InventoryEntry> = {}): InventoryEntry {
  return {
    migration,
    workloadUids: ["sts-uid"],
    newest: ago(2 * TTL),
    records: 1,
    archives: [`checkpoint-db-0_default-app-x.tar`],
    registryImages: [],
    loadedImages: [],
    busy: false,
    ...over,
  };
}

function migration(
  uid: string,
  phase: string | undefined,
  over: { completedAgo?: number; rolledBack?: "True" | "False" } = {},
): StatefulMigration {
  return {
    apiVersion: "migration.ms2m.io/v1alpha1",
    kind: "StatefulMigration",
    metadata: { name: `m-${uid}`, namespace: "default", uid },
    spec: { sourcePod: "db-0" },
    status: {
      ...(phase ? { phase } : {}),
      ...(over.completedAgo !== undefined ? { completionTime: ago(over.completedAgo) } : {}),
      ...(over.rolledBack
        ? {
            conditions: [
              {
                type: "RolledBack",
                status: over.rolledBack,
                reason: "x",
                message: "",
                lastTransitionTime: ago(0),
              },
            ],
          }
        : {}),
    },
  } as unknown as StatefulMigration;
}

describe("decide", () => {
  const none = new Set<string>();
  it("keeps what is in flight: a migration not finished, or a request running on the agent", () => {
    expect(decide(entry("a"), migration("a", "Transferring"), NOW, TTL, none).action).toBe("keep");
    expect(decide(entry("a"), migration("a", undefined), NOW, TTL, none).action).toBe("keep");
    expect(decide(entry("a", { busy: true }), undefined, NOW, TTL, none).action).toBe("keep");
  });

  it("a migration that is gone: released once its newest record is older than the TTL", () => {
    expect(decide(entry("a", { newest: ago(TTL - 1000) }), undefined, NOW, TTL, none)).toMatchObject({
      action: "keep",
    });
    expect(decide(entry("a", { newest: ago(TTL) }), undefined, NOW, TTL, none)).toEqual({
      action: "release",
      why: "migration gone",
      keepLoadedImages: false,
    });
  });

  it("a finished migration: released the TTL after its completion, not after its records", () => {
    const recent = migration("a", "Failed", { completedAgo: 1000, rolledBack: "True" });
    expect(decide(entry("a"), recent, NOW, TTL, none).action).toBe("keep");
    const old = migration("a", "Failed", { completedAgo: TTL + 1, rolledBack: "True" });
    expect(decide(entry("a"), old, NOW, TTL, none)).toMatchObject({
      action: "release",
      keepLoadedImages: false,
    });
  });

  it("never removes the image a Completed target runs from, nor an image a pod on the node uses", () => {
    const done = migration("a", "Completed", { completedAgo: TTL + 1 });
    const loaded = entry("a", { loadedImages: ["localhost/ms2m/x:y"] });
    expect(decide(loaded, done, NOW, TTL, none)).toMatchObject({ action: "release", keepLoadedImages: true });
    // The StatefulMigration deleted since, but the restored pod still runs from the image.
    expect(decide(loaded, undefined, NOW, TTL, new Set(["localhost/ms2m/x:y"]))).toMatchObject({
      action: "release",
      keepLoadedImages: true,
    });
    expect(decide(loaded, undefined, NOW, TTL, new Set(["other"]))).toMatchObject({
      keepLoadedImages: false,
    });
  });

  it("keeps the checkpoint of a migration that failed without rolling back while it exists", () => {
    const kept = migration("a", "Failed", { completedAgo: 10 * TTL, rolledBack: "False" });
    expect(decide(entry("a"), kept, NOW, TTL, none)).toMatchObject({ action: "keep" });
  });
});

/** Agents holding migrations in memory; release removes them as the agent's release does. */
class FakeAgents implements SweepPorts {
  held = new Map<string, Map<string, InventoryEntry>>();
  live: StatefulMigration[] = [];
  released: { node: string; migration: string; keep: boolean }[] = [];
  inUse = new Map<string, Set<string>>();
  down = new Set<string>();
  migrationsFail = false;
  async agents() {
    return [...this.held.keys()].map((node) => ({ node, url: `https://${node}:9443` }));
  }
  async inventory(url: string): Promise<CheckpointInventory> {
    const node = new URL(url).hostname;
    if (this.down.has(node)) throw new Error(`agent ${node} unreachable`);
    return { node, migrations: [...(this.held.get(node)?.values() ?? [])] };
  }
  async release(url: string, migration: string, keep: boolean): Promise<ReleaseResponse> {
    const node = new URL(url).hostname;
    this.released.push({ node, migration, keep });
    const had = this.held.get(node)?.get(migration);
    this.held.get(node)?.delete(migration);
    return { migration, records: had?.records ?? 0, archives: had?.archives.length ?? 0, registryImages: [] };
  }
  async migrations() {
    if (this.migrationsFail) throw new Error("API server unavailable");
    return this.live;
  }
  async imagesInUse(node: string) {
    return this.inUse.get(node) ?? new Set<string>();
  }
  hold(node: string, e: InventoryEntry) {
    if (!this.held.has(node)) this.held.set(node, new Map());
    this.held.get(node)!.set(e.migration, e);
  }
}

function sweeper(agents: FakeAgents) {
  return new CheckpointSweeper({
    ports: agents,
    settings: { ttlMs: TTL, intervalMs: 1000 },
    log: pino({ level: "silent" }),
    now: () => NOW,
  });
}

describe("CheckpointSweeper", () => {
  it("releases leftovers on every agent, keeps what is in flight, and a second round does nothing", async () => {
    const agents = new FakeAgents();
    agents.hold("node-a", entry("gone-old"));
    agents.hold("node-a", entry("gone-young", { newest: ago(1000) }));
    agents.hold("node-a", entry("running"));
    agents.hold("node-b", entry("gone-old", { loadedImages: ["localhost/ms2m/a:1"], archives: [] }));
    agents.hold("node-b", entry("done", { loadedImages: ["localhost/ms2m/d:1"], archives: [] }));
    agents.live = [
      migration("running", "Restoring"),
      migration("done", "Completed", { completedAgo: TTL * 2 }),
    ];
    const s = sweeper(agents);
    const first = await s.sweep();
    expect(first.errors).toEqual([]);
    expect(agents.released).toEqual([
      { node: "node-a", migration: "gone-old", keep: false },
      { node: "node-b", migration: "gone-old", keep: false },
      { node: "node-b", migration: "done", keep: true },
    ]);
    expect([...agents.held.get("node-a")!.keys()]).toEqual(["gone-young", "running"]);
    const second = await s.sweep();
    expect(second.released).toEqual([]);
    expect(agents.released).toHaveLength(3);
  });

  it("an unreachable agent is skipped (the others are swept); an unreadable migration list sweeps nothing", async () => {
    const agents = new FakeAgents();
    agents.hold("node-a", entry("gone"));
    agents.hold("node-b", entry("gone"));
    agents.down.add("node-a");
    const report = await sweeper(agents).sweep();
    expect(report.errors).toEqual([expect.stringContaining("node-a: agent node-a unreachable")]);
    expect(agents.released).toEqual([{ node: "node-b", migration: "gone", keep: false }]);

    const blind = new FakeAgents();
    blind.hold("node-a", entry("gone"));
    blind.migrationsFail = true;
    await expect(sweeper(blind).sweep()).rejects.toThrow("API server unavailable");
    expect(blind.released).toEqual([]);
  });

  it("start runs a round at once and then every interval until stop", async () => {
    const agents = new FakeAgents();
    agents.hold("node-a", entry("gone"));
    const s = new CheckpointSweeper({
      ports: agents,
      settings: { ttlMs: TTL, intervalMs: 20 },
      log: pino({ level: "silent" }),
      now: () => NOW,
    });
    s.start();
    await new Promise((r) => setTimeout(r, 30));
    agents.hold("node-a", entry("gone-later"));
    await new Promise((r) => setTimeout(r, 80));
    await s.stop();
    expect(agents.released.map((r) => r.migration)).toEqual(["gone", "gone-later"]);
    const n = agents.released.length;
    agents.hold("node-a", entry("after-stop"));
    await new Promise((r) => setTimeout(r, 60));
    expect(agents.released).toHaveLength(n);
  });
});
