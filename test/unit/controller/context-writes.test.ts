// PhaseContext's held writes (issue 15): a lazy phase change rides with the next write, or is
// written beside work that does not depend on it (storeBeside); writes stay one by one.
import { describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { PhaseContext } from "../../../src/controller/context.ts";
import { makeWorld } from "./fakes.ts";

async function started() {
  const w = makeWorld();
  w.cluster.addMigration("mig", { sourcePod: "p", checkpointImageRepository: "r/c" });
  const ctx = new PhaseContext((await w.cluster.getMigration("default", "mig"))!, w.deps);
  await ctx.transition("Checkpointing");
  return { w, ctx, writes: () => w.cluster.faults.count("updateMigrationStatus") };
}

describe("PhaseContext: held writes", () => {
  it("a lazy phase change is in `m` at once (with what was deferred) and stored with the next write", async () => {
    const { w, ctx, writes } = await started();
    ctx.defer((m) => {
      m.status!.sourceNode = "node-a";
    });
    await ctx.advance(undefined, undefined, { lazy: true });
    expect(writes()).toBe(1);
    expect(ctx.m.status?.phase).toBe("Transferring");
    expect(ctx.m.status?.sourceNode).toBe("node-a");
    expect(w.cluster.migration("mig").status?.phase).toBe("Checkpointing");
    await ctx.update((m) => {
      m.status!.targetNode = "node-b";
    });
    expect(writes()).toBe(2);
    const stored = w.cluster.migration("mig").status!;
    expect([stored.phase, stored.sourceNode, stored.targetNode]).toEqual([
      "Transferring",
      "node-a",
      "node-b",
    ]);
    expect(stored.phaseTimings?.map((t) => [t.phase, t.endTime !== undefined])).toEqual([
      ["Checkpointing", true],
      ["Transferring", false],
    ]);
  });

  it("storeBeside writes without waiting; the next write waits for it, and changes deferred meanwhile go with that one", async () => {
    const { w, ctx, writes } = await started();
    await ctx.advance(undefined, undefined, { lazy: true });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const update = w.cluster.updateMigrationStatus.bind(w.cluster);
    w.cluster.updateMigrationStatus = async (m) => {
      await gate;
      return update(m);
    };
    ctx.storeBeside();
    ctx.defer((m) => {
      m.status!.targetNode = "node-b";
    });
    const next = ctx.update(() => undefined);
    await Promise.resolve();
    expect(writes()).toBe(1);
    release();
    await next;
    expect(writes()).toBe(3);
    expect(w.cluster.migration("mig").status?.phase).toBe("Transferring");
    expect(w.cluster.migration("mig").status?.targetNode).toBe("node-b");
    expect(ctx.dirty).toBe(false);
  });

  it("a write beside that fails is thrown by whoever waits for it, and what it carried is held again", async () => {
    const { w, ctx } = await started();
    await ctx.advance(undefined, undefined, { lazy: true });
    w.cluster.faults.inject("updateMigrationStatus", new Ms2mError("Conflict", "modified"));
    ctx.storeBeside();
    await expect(ctx.settle()).rejects.toThrow("modified");
    expect(ctx.dirty).toBe(true);
    await ctx.flush();
    expect(w.cluster.migration("mig").status?.phase).toBe("Transferring");
  });
});
