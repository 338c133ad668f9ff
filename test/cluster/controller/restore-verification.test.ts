import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";
import {
  ControllerProcess,
  consumerTemplate,
  controllerTestEnv,
  createMigration,
  createNamespace,
  deployMs2m,
  finalAccounting,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  waitForPhase,
  workDir,
  workloadNames,
  type Workload,
} from "./env.ts";
import { sleep } from "../../../tooling/exec.ts";
import { ANNOTATION_RESTORE_AS_FRESH_START } from "../../../sim/pod-worker.ts";

// Restore verification: a migration completes only when the target runs the checkpointed
// process. The simulated node's fault annotation makes the restore of the checkpoint image
// start a fresh process instead (what a runtime that silently falls back to a cold start does);
// the target's SDK then reports no restore, and the controller rolls back (default) or, with
// onRestoreFailure: ColdStart, keeps the fresh target and says so.
vi.setConfig({ testTimeout: 120_000 });
const env = controllerTestEnv();
let work: string;
let controller: ControllerProcess;
let ns: string;

beforeAll(async () => {
  work = await workDir("ctl-restore-verify");
  const { caFile } = await deployMs2m(env, work);
  controller = new ControllerProcess(env, work, caFile);
  await controller.start();
  ns = await createNamespace(env, "rv");
});

afterFile(async (failed) => {
  await controller?.stop();
  if (ns) await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
  await removeTempDir(work, { keep: failed });
});

/** The reference consumer on node-a whose restores the simulated runtime turns into fresh starts. */
async function coldRestoringDeployment(w: Workload): Promise<string> {
  const template = consumerTemplate(w, env, "node-a");
  template.metadata = { ...template.metadata, annotations: { [ANNOTATION_RESTORE_AS_FRESH_START]: "true" } };
  await env.apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: { replicas: 1, selector: { matchLabels: { app: w.name } }, template },
    },
  });
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  return source?.metadata?.name ?? "";
}

describe("a restore that became a fresh start", () => {
  it("is detected and rolled back by default: the source keeps serving, nothing is lost or left", async () => {
    const w = workloadNames(ns, "rv-rollback", work);
    const source = await coldRestoringDeployment(w);
    const producer = new TestProducer(env, w, 40);
    await producer.start();
    await sleep(1_000);
    await createMigration(env, ns, "rv-rollback", w, { sourcePod: source, targetNode: "node-b" });
    const m = await waitForPhase(env, ns, "rv-rollback", ["Failed", "Completed"]);
    expect(m.status?.phase).toBe("Failed");
    expect(m.status?.failure).toMatchObject({ phase: "Replaying", reason: "RestoreNotVerified" });
    expect(m.status?.failure?.message).toContain("started fresh instead of being restored");
    expect(m.status?.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");

    // Rolled back: only the source pod, on node-a, still consuming.
    await sleep(1_500);
    const pods = (await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` })).items;
    expect(pods.map((p) => [p.metadata?.name, p.spec?.nodeName])).toEqual([[source, "node-a"]]);
    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
    console.log("[restore-verification] rollback", JSON.stringify({ ...report, lost: report.lost.length }));
    expect(report.lost).toEqual([]);
    expect(report.appliedTwice).toEqual([]);
    expect(report.ok).toBe(true);
  });

  it("with onRestoreFailure: ColdStart, completes with RestoreVerified=False: no message after the checkpoint is lost", async () => {
    const w = workloadNames(ns, "rv-cold", work);
    const source = await coldRestoringDeployment(w);
    const producer = new TestProducer(env, w, 40);
    await producer.start();
    await sleep(1_000);
    await createMigration(env, ns, "rv-cold", w, {
      sourcePod: source,
      targetNode: "node-b",
      onRestoreFailure: "ColdStart",
    });
    const m = await waitForCompletion(env, ns, "rv-cold");
    const verified = m.status?.conditions?.find((c) => c.type === "RestoreVerified");
    expect(verified).toMatchObject({ status: "False", reason: "ColdStart" });
    const events = await env.core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.name=rv-cold,reason=ColdStart`,
    });
    expect(events.items.length).toBe(1);

    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
    console.log("[restore-verification] cold start", JSON.stringify({ ...report, lost: report.lost.length }));
    // The fresh target lost the source's in-memory state (what it applied before the checkpoint),
    // and nothing else: the "lost" sequence numbers are a prefix, every later one was applied once.
    const first = Math.min(...producer.confirmed);
    expect(report.lost.length).toBeGreaterThan(0);
    expect(report.lost).toEqual(Array.from({ length: report.lost.length }, (_, i) => first + i));
    expect(report.appliedTwice).toEqual([]);
    expect(report.published).toBeGreaterThan(report.lost.length);
  });
});
