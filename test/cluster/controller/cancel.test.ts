import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import {
  controllerTestEnv,
  createDeployment,
  createMigration,
  deleteMigration,
  finalAccounting,
  isReady,
  livePods,
  migrationGone,
  queueExists,
  setupFile,
  stopper,
  TestProducer,
  waitForConsumers,
  waitForPhase,
  workloadNames,
} from "./env.ts";
import { LANDING_ATTEMPTS, MigrationWatch, PHASES, untilLanded } from "../../harness/phase-fault.ts";

// Deleting the StatefulMigration in each phase cancels it: the source keeps serving (zero
// lost), the pods and the replay queue the migration made are gone. In Finalizing the cutover
// may have moved the primary queue to the target already: the migration rolls forward.
vi.setConfig({ testTimeout: 120_000 * LANDING_ATTEMPTS });
const env = controllerTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;
const outcomes: Record<string, string> = {};

beforeAll(async () => {
  setup = await setupFile(env, "cancel");
  for (const n of env.cluster.nodeNames()) {
    await env.cluster.node(n).setLatencies({ checkpointMs: 700, restoreMs: 700, containerStartMs: 300 });
  }
});

afterFile(async (failed) => {
  console.log("[cancel] outcomes", JSON.stringify(outcomes));
  for (const n of env.cluster.nodeNames()) {
    await env.cluster
      .node(n)
      .setLatencies({ checkpointMs: 0, restoreMs: 0, containerStartMs: 0 })
      .catch(() => undefined);
  }
  await setup?.teardown(failed);
});

it.each(PHASES)("delete in %s: rolled back, source serving, nothing left", async (phase) => {
  // The deletion must land in the phase the case names (by the migration's phaseTimings, as its
  // last write before removal shows them); else it is tried again with a fresh migration.
  await untilLanded(phase, (i) => cancelOnce(phase, i));
});

async function cancelOnce(phase: string, attempt: number): Promise<{ landedIn: string }> {
  const { ns, work } = setup;
  const w = workloadNames(ns, `x-${phase.toLowerCase()}${attempt ? `-r${attempt}` : ""}`, work);
  await createDeployment(env, ns, w, "node-a");
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const producer = new TestProducer(env, w, 30);
  await producer.start();
  await sleep(500);

  const name = `m-${w.name}`;
  const watch = await MigrationWatch.start(env.kc, ns, name);
  try {
    const created = await createMigration(env, ns, name, w, {
      sourcePod: source?.metadata?.name ?? "",
      targetNode: "node-b",
    });
    const injection = await watch.inject(phase, () => deleteMigration(env, ns, name));
    if (!injection.applied) {
      // Past the phase before the deletion: let it complete, then delete it (nothing to cancel).
      await waitForPhase(env, ns, name, ["Completed"], 90_000, 100);
      await deleteMigration(env, ns, name);
    }
    await migrationGone(env, ns, name);
    const landedIn = await watch.landing(injection);
    const last = watch.last;
    // Completed: rolled forward (the target may already consume the primary queue); Failed:
    // rolled back.
    const handedOver = last?.status?.phase === "Completed";
    outcomes[`${phase}${attempt ? ` #${attempt + 1}` : ""}`] =
      `deleted in ${landedIn}: ${handedOver ? "rolled forward, target serves" : "rolled back"}`;
    if (landedIn === phase) {
      // Only a deletion in Finalizing rolls forward; before it, the migration is cancelled.
      expect(handedOver).toBe(phase === "Finalizing");
      // Cancelled: Failed with reason Cancelled. Only in Pending may the deletion come before the
      // controller's finalizer is on: the object then goes at once, still Pending, with nothing
      // made that would need undoing.
      const removedUnheld = phase === "Pending" && last?.status?.phase === "Pending";
      if (!handedOver && !removedUnheld) expect(last?.status?.failure?.reason).toBe("Cancelled");
    }

    const pods = await waitFor(
      "one pod left",
      async () => {
        const live = await livePods(env, ns, w.name);
        const all = await env.core.listNamespacedPod({ namespace: ns });
        const terminating = all.items.some((p) => p.metadata?.deletionTimestamp);
        return live.length === 1 && !terminating ? live : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const pod = pods[0];
    if (!handedOver) {
      expect(pod?.metadata?.uid).toBe(source?.metadata?.uid);
      expect(pod?.spec?.nodeName).toBe("node-a");
      expect(pod?.metadata?.annotations?.["controller.kubernetes.io/pod-deletion-cost"]).toBeUndefined();
    }
    expect(pod && isReady(pod)).toBe(true);
    expect(await queueExists(`ms2m.replay.${created.metadata?.uid}`)).toBe(false);

    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
    expect(report.lost).toEqual([]);
    expect(report.appliedTwice).toEqual([]);
    expect(report.ok).toBe(true);
    return { landedIn };
  } finally {
    watch.stop();
  }
}
