import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";
import {
  ControllerProcess,
  consumerTemplate,
  controllerTestEnv,
  createBarePod,
  createDeployment,
  createMigration,
  createNamespace,
  createStatefulSet,
  deleteMigration,
  deployMs2m,
  finalAccounting,
  getMigration,
  phaseMillis,
  startRegistry,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  waitForGone,
  waitForPhase,
  workDir,
  workloadNames,
} from "./env.ts";
import { sleep } from "../../../tooling/exec.ts";
import { mustSucceed } from "../../../tooling/stack/manifests.ts";

// Whole migrations on the real control plane (real Deployment/ReplicaSet/StatefulSet
// controllers), the agents run by the simulated nodes from config/'s DaemonSet, the controller
// binary as its ServiceAccount, the reference consumer under load: zero lost, zero applied
// twice, and the final ownership checked object by object.
vi.setConfig({ testTimeout: 120_000 });
const env = controllerTestEnv();
let work: string;
let controller: ControllerProcess;
let registry: { stop(): Promise<void> } | undefined;
let ns: string;

beforeAll(async () => {
  work = await workDir("ctl-migration");
  registry = await startRegistry(env.hostIp);
  const { caFile } = await deployMs2m(env, work);
  controller = new ControllerProcess(env, work, caFile);
  await controller.start();
  ns = await createNamespace(env, "mig");
});

afterFile(async (failed) => {
  await controller?.stop();
  await registry?.stop();
  if (ns) await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
  await removeTempDir(work, { keep: failed });
});

const controllerRef = (p: {
  metadata?: { ownerReferences?: { controller?: boolean; kind: string; name: string }[] };
}) => p.metadata?.ownerReferences?.find((o) => o.controller);

describe("strategy detection", () => {
  it.each([
    ["Deployment", "ShadowPod"],
    ["StatefulSet", "Sequential"],
    ["bare pod", "ShadowPod"],
  ])("%s -> %s", async (kind, strategy) => {
    const w = workloadNames(ns, `det-${kind.replace(" ", "").toLowerCase()}`, work);
    let pod: string;
    if (kind === "Deployment") {
      await createDeployment(env, ns, w, "node-a");
      pod = (await waitForConsumers(env, ns, w.name, 1))[0]?.metadata?.name ?? "";
    } else if (kind === "StatefulSet") {
      await createStatefulSet(env, ns, w, "node-a");
      pod = `${w.name}-0`;
      await waitForConsumers(env, ns, w.name, 1);
    } else {
      await createBarePod(env, ns, w, "node-a");
      pod = w.name;
      await waitForConsumers(env, ns, w.name, 1);
    }
    // No message queue: detection only; delete it right after Pending (cancellation).
    await createMigration(env, ns, `det-${w.name}`, w, { sourcePod: pod, targetNode: "node-b" });
    const m = await waitForPhase(env, ns, `det-${w.name}`, [
      "Checkpointing",
      "Transferring",
      "Restoring",
      "Replaying",
      "Finalizing",
      "Completed",
    ]);
    expect(m.status?.strategy).toBe(strategy);
    expect(m.status?.sourceNode).toBe("node-a");
    await deleteMigration(env, ns, `det-${w.name}`);
    await waitForGone(
      () => getMigration(env, ns, `det-${w.name}`).then((x) => x ?? Promise.reject({ code: 404 })),
      "migration",
    );
  });
});

describe("strategy detection: other owners", () => {
  it("ReplicaSet without a Deployment -> ShadowPod", async () => {
    const w = workloadNames(ns, "det-rs", work);
    const template = consumerTemplate(w, env, "node-a");
    await env.apps.createNamespacedReplicaSet({
      namespace: ns,
      body: {
        metadata: { name: w.name },
        spec: { replicas: 1, selector: { matchLabels: { app: w.name } }, template },
      },
    });
    const pod = (await waitForConsumers(env, ns, w.name, 1))[0]?.metadata?.name ?? "";
    await createMigration(env, ns, `det-${w.name}`, w, { sourcePod: pod, targetNode: "node-b" });
    const m = await waitForPhase(env, ns, `det-${w.name}`, [
      "Checkpointing",
      "Transferring",
      "Restoring",
      "Replaying",
      "Finalizing",
      "Completed",
    ]);
    expect(m.status?.strategy).toBe("ShadowPod");
    expect(m.status?.owner).toMatchObject({ kind: "ReplicaSet", name: w.name });
    expect(m.status?.owner?.workloadKind).toBeUndefined();
    await deleteMigration(env, ns, `det-${w.name}`);
    await waitForGone(
      () => getMigration(env, ns, `det-${w.name}`).then((x) => x ?? Promise.reject({ code: 404 })),
      "migration",
    );
  });

  it("a Job's pod is refused in Pending (UnsupportedOwner) and left as it was", async () => {
    const w = workloadNames(ns, "det-job", work);
    const template = consumerTemplate(w, env, "node-a");
    mustSucceed(
      await env.kubectl(
        ["-n", ns, "apply", "-f", "-"],
        JSON.stringify({
          apiVersion: "batch/v1",
          kind: "Job",
          metadata: { name: w.name },
          spec: {
            backoffLimit: 0,
            template: { ...template, spec: { ...template.spec, restartPolicy: "Never" } },
          },
        }),
      ),
      "create Job",
    );
    const [pod] = await waitForConsumers(env, ns, w.name, 1);
    await createMigration(env, ns, `det-${w.name}`, w, {
      sourcePod: pod?.metadata?.name ?? "",
      targetNode: "node-b",
    });
    const m = await waitForPhase(env, ns, `det-${w.name}`, ["Failed"]).catch(
      async () => (await getMigration(env, ns, `det-${w.name}`))!,
    );
    expect(m.status?.phase).toBe("Failed");
    expect(m.status?.failure).toMatchObject({ phase: "Pending", reason: "UnsupportedOwner" });
    expect(m.status?.failure?.message).toContain("Job");
    const after = await env.core.readNamespacedPod({ namespace: ns, name: pod?.metadata?.name ?? "" });
    expect(after.metadata?.uid).toBe(pod?.metadata?.uid);
    expect(after.metadata?.labels).toEqual(pod?.metadata?.labels);
    expect(after.metadata?.finalizers ?? []).toEqual(pod?.metadata?.finalizers ?? []);
    mustSucceed(await env.kubectl(["-n", ns, "delete", "job", w.name, "--wait=false"]), "delete Job");
  });
});

describe("ShadowPod (Deployment)", () => {
  it.each(["Direct", "Registry"] as const)(
    "%s: completes, zero lost, owned by the ReplicaSet",
    async (mode) => {
      const w = workloadNames(ns, `dep-${mode.toLowerCase()}`, work);
      await createDeployment(env, ns, w, "node-a");
      const [source] = await waitForConsumers(env, ns, w.name, 1);
      const sourceName = source?.metadata?.name ?? "";
      const rs = controllerRef(source ?? {});
      expect(rs?.kind).toBe("ReplicaSet");
      const producer = new TestProducer(env, w, 50);
      await producer.start();
      await sleep(1_000);

      const name = `m-${w.name}`;
      await createMigration(env, ns, name, w, {
        sourcePod: sourceName,
        targetNode: "node-b",
        transferMode: mode,
      });
      const m = await waitForCompletion(env, ns, name);
      console.log(`[timings] ShadowPod ${mode}`, JSON.stringify(phaseMillis(m)), m.status?.duration);
      expect(m.status?.strategy).toBe("ShadowPod");

      // Object by object: the target runs on node-b, owned by the same ReplicaSet; the source is gone.
      const target = await env.core.readNamespacedPod({ namespace: ns, name: m.status?.targetPod ?? "" });
      expect(target.spec?.nodeName).toBe("node-b");
      expect(controllerRef(target)).toMatchObject({ kind: "ReplicaSet", name: rs?.name });
      await waitForGone(() => env.core.readNamespacedPod({ namespace: ns, name: sourceName }), "source pod");
      const dep = await env.apps.readNamespacedDeployment({ namespace: ns, name: w.name });
      expect(dep.spec?.replicas).toBe(1);
      await sleep(1_500); // no fresh pod appears
      const pods = (await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` }))
        .items;
      expect(pods.map((p) => p.metadata?.name)).toEqual([target.metadata?.name]);

      // Deleting the migration leaves the workload untouched.
      await deleteMigration(env, ns, name);
      await waitForGone(
        () => getMigration(env, ns, name).then((x) => x ?? Promise.reject({ code: 404 })),
        "migration",
      );
      await sleep(1_000);
      const after = await env.core.readNamespacedPod({ namespace: ns, name: target.metadata?.name ?? "" });
      expect(after.metadata?.deletionTimestamp).toBeUndefined();
      expect(after.metadata?.uid).toBe(target.metadata?.uid);

      const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
      console.log(`[accounting] ShadowPod ${mode}`, JSON.stringify({ ...report, lost: report.lost.length }));
      expect(report.lost).toEqual([]);
      expect(report.appliedTwice).toEqual([]);
      expect(report.ok).toBe(true);
      expect(report.published).toBeGreaterThan(50);
    },
  );
});

describe("Sequential (StatefulSet)", () => {
  it("Registry: ordinal 0 moves under its own name, ordinal 1 untouched, zero lost", async () => {
    const w = workloadNames(ns, "sts", work, true);
    await createStatefulSet(env, ns, w, "node-a", 2);
    await waitForConsumers(env, ns, w.name, 2);
    const source = await env.core.readNamespacedPod({ namespace: ns, name: `${w.name}-0` });
    const other = await env.core.readNamespacedPod({ namespace: ns, name: `${w.name}-1` });
    const sts = controllerRef(source);
    expect(sts?.kind).toBe("StatefulSet");
    const producer = new TestProducer(env, w, 50);
    await producer.start();
    await sleep(1_000);

    const name = "m-sts";
    await createMigration(
      env,
      ns,
      name,
      { ...w, queue: `${w.queue}.${w.name}-0` },
      {
        sourcePod: `${w.name}-0`,
        targetNode: "node-b",
        transferMode: "Registry",
      },
    );
    const m = await waitForCompletion(env, ns, name);
    console.log("[timings] Sequential Registry", JSON.stringify(phaseMillis(m)), m.status?.duration);
    expect(m.status?.strategy).toBe("Sequential");

    const target = await env.core.readNamespacedPod({ namespace: ns, name: `${w.name}-0` });
    expect(target.metadata?.uid).not.toBe(source.metadata?.uid);
    expect(target.spec?.nodeName).toBe("node-b");
    expect(controllerRef(target)).toMatchObject({ kind: "StatefulSet", name: w.name });
    expect(target.metadata?.labels?.["app"]).toBe(w.name);
    const otherAfter = await env.core.readNamespacedPod({ namespace: ns, name: `${w.name}-1` });
    expect(otherAfter.metadata?.uid).toBe(other.metadata?.uid);
    expect(otherAfter.spec?.nodeName).toBe("node-a");
    const set = await env.apps.readNamespacedStatefulSet({ namespace: ns, name: w.name });
    expect(set.spec?.replicas).toBe(2);
    await sleep(1_500);
    const pods = (await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` })).items;
    expect(pods.map((p) => p.metadata?.uid).sort()).toEqual(
      [target.metadata?.uid, other.metadata?.uid].sort(),
    );

    await deleteMigration(env, ns, name);
    await waitForGone(
      () => getMigration(env, ns, name).then((x) => x ?? Promise.reject({ code: 404 })),
      "migration",
    );
    await sleep(1_000);
    const kept = await env.core.readNamespacedPod({ namespace: ns, name: `${w.name}-0` });
    expect(kept.metadata?.uid).toBe(target.metadata?.uid);
    expect(kept.metadata?.deletionTimestamp).toBeUndefined();

    const report = await finalAccounting(
      env,
      ns,
      w,
      producer,
      stopper(env, ns, "sts", w.name),
      `${w.name}-0`,
    );
    console.log("[accounting] Sequential Registry", JSON.stringify({ ...report, lost: report.lost.length }));
    expect(report.lost).toEqual([]);
    expect(report.appliedTwice).toEqual([]);
    expect(report.ok).toBe(true);
  });
});

describe("bare pod", () => {
  it("ShadowPod Direct: ends as a bare pod on the target, zero lost", async () => {
    const w = workloadNames(ns, "bare", work);
    await createBarePod(env, ns, w, "node-a");
    await waitForConsumers(env, ns, w.name, 1);
    const producer = new TestProducer(env, w, 50);
    await producer.start();
    await sleep(1_000);
    const name = "m-bare";
    await createMigration(env, ns, name, w, { sourcePod: w.name, targetNode: "node-b" });
    const m = await waitForCompletion(env, ns, name);
    console.log("[timings] bare ShadowPod Direct", JSON.stringify(phaseMillis(m)), m.status?.duration);
    const target = await env.core.readNamespacedPod({ namespace: ns, name: m.status?.targetPod ?? "" });
    expect(target.spec?.nodeName).toBe("node-b");
    expect(target.metadata?.ownerReferences ?? []).toEqual([]);
    expect(target.metadata?.labels?.["app"]).toBe(w.name);
    await waitForGone(() => env.core.readNamespacedPod({ namespace: ns, name: w.name }), "source pod");
    await deleteMigration(env, ns, name);
    await waitForGone(
      () => getMigration(env, ns, name).then((x) => x ?? Promise.reject({ code: 404 })),
      "migration",
    );
    const kept = await env.core.readNamespacedPod({ namespace: ns, name: target.metadata?.name ?? "" });
    expect(kept.metadata?.deletionTimestamp).toBeUndefined();
    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "pod", w.name));
    expect(report.lost).toEqual([]);
    expect(report.appliedTwice).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
