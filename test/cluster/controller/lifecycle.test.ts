// Checkpoint lifecycle on the real control plane (real StatefulSet controller and garbage
// collector), simulated nodes, the agents from config/'s DaemonSet and the controller binary with
// a short sweep TTL:
// - a StatefulSet deleted (`--cascade=orphan`) and recreated under the same name while its pod is
//   checkpointed: the migration is refused with WorkloadReplaced and rolled back, the pod (now
//   the new StatefulSet's) keeps consuming on its node, and nothing of the checkpoint is left on
//   either node;
// - the same with a normal (cascading) deletion, `kubectl delete sts` (propagationPolicy
//   Background), landing in Checkpointing: the garbage collector deletes the source pod with the
//   old StatefulSet and the new one creates its pod afresh from its template; the migration is
//   refused with WorkloadReplaced before the transfer and rolled back, the new pod is not restored
//   from the checkpoint, nothing of the migration is left on the nodes or the broker, and the
//   source's and the new pod's states together hold every message exactly once;
// - what a crashed run left on the agents (a recorded checkpoint on the source node, the image it
//   sent into the target node's store, for a migration that no longer exists) is swept once the
//   TTL has passed, not before.
import { randomUUID } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { LANDING_ATTEMPTS, MigrationWatch, untilLanded } from "../../harness/phase-fault.ts";
import { listStoredImages } from "../../../src/checkpoint/skopeo.ts";
import { AGENT_SERVER_NAME, AgentClient } from "../../../src/transfer/index.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";
import { account } from "../../../workload/accounting.ts";
import type { WorkloadState } from "../../../workload/state.ts";
import {
  ControllerProcess,
  SYSTEM_NS,
  checkpointCount,
  controllerTestEnv,
  createBarePod,
  createMigration,
  createNamespace,
  createStatefulSet,
  deployMs2m,
  finalAccounting,
  mergeStates,
  queueExists,
  serviceAccountToken,
  stopper,
  TestProducer,
  waitForConsumers,
  waitForPhase,
  workDir,
  workloadNames,
} from "./env.ts";

vi.setConfig({ testTimeout: 150_000 });
const env = controllerTestEnv();
const TTL_SECONDS = 6;
let work: string;
let controller: ControllerProcess;
let ns: string;
let agents: AgentClient;

beforeAll(async () => {
  work = await workDir("ctl-lifecycle");
  const { caFile } = await deployMs2m(env, work);
  controller = new ControllerProcess(env, work, caFile, {
    CHECKPOINT_TTL_SECONDS: String(TTL_SECONDS),
    CHECKPOINT_SWEEP_INTERVAL_SECONDS: "1",
  });
  await controller.start();
  ns = await createNamespace(env, "lc");
  const token = await serviceAccountToken(env.kc, SYSTEM_NS, "ms2m-controller", ["ms2m-agent"]);
  agents = new AgentClient({ ca: await readFile(caFile), servername: AGENT_SERVER_NAME, token: () => token });
});

afterFile(async (failed) => {
  for (const n of env.cluster.nodeNames()) await env.cluster.node(n).setLatencies({ checkpointMs: 0 });
  await agents?.close();
  await controller?.stop();
  if (ns) await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
  await removeTempDir(work, { keep: failed });
});

const agentUrl = (node: string) => `https://${env.cluster.node(node).ip}:9443`;
const held = async (node: string, migration: string) =>
  (await agents.inventory(agentUrl(node))).migrations.find((m) => m.migration === migration);
const archivesOf = async (node: string, pod: string) =>
  (await readdir(env.cluster.node(node).hostPath("/var/lib/kubelet/checkpoints")).catch(() => [])).filter(
    (n) => n.includes(pod),
  );
const checkpointImagesOn = async (node: string, uid: string) =>
  (await listStoredImages(env.cluster.node(node).storage)).filter((i) => i.includes(uid.slice(0, 8)));

/** `kubectl delete sts` (with this propagation), once it is gone the same StatefulSet applied again. */
async function recreateStatefulSet(
  w: ReturnType<typeof workloadNames>,
  propagationPolicy: "Orphan" | "Background",
): Promise<void> {
  await env.apps.deleteNamespacedStatefulSet({ namespace: ns, name: w.name, propagationPolicy });
  await waitFor(
    "old StatefulSet gone",
    async () =>
      (await env.apps.readNamespacedStatefulSet({ namespace: ns, name: w.name }).catch(() => undefined))
        ? undefined
        : true,
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  await createStatefulSet(env, ns, w, "node-a");
}

describe("a StatefulSet deleted and recreated under the same name mid-migration", () => {
  it("is refused (WorkloadReplaced) and rolled back: the pod keeps consuming, nothing is left behind", async () => {
    const w = workloadNames(ns, "lc-sts", work, true);
    await createStatefulSet(env, ns, w, "node-a");
    const [source] = await waitForConsumers(env, ns, w.name, 1);
    const pod = `${w.name}-0`;
    const oldSts = await env.apps.readNamespacedStatefulSet({ namespace: ns, name: w.name });
    const producer = new TestProducer(env, w, 30);
    await producer.start();
    await sleep(1_000);

    // A slow checkpoint: the window in which the StatefulSet is replaced.
    await env.cluster.node("node-a").setLatencies({ checkpointMs: 8_000 });
    const name = "m-replaced";
    const created = await createMigration(
      env,
      ns,
      name,
      { ...w, queue: `${w.queue}.${pod}` },
      { sourcePod: pod, targetNode: "node-b" },
    );
    const uid = created.metadata?.uid ?? "";
    await waitForPhase(env, ns, name, ["Checkpointing"]);

    // kubectl delete sts --cascade=orphan, then the same StatefulSet applied again: the garbage
    // collector orphans the pod, the new StatefulSet (another UID) adopts it.
    await recreateStatefulSet(w, "Orphan");
    const newSts = await env.apps.readNamespacedStatefulSet({ namespace: ns, name: w.name });
    expect(newSts.metadata?.uid).not.toBe(oldSts.metadata?.uid);
    await waitFor(
      "the pod adopted by the new StatefulSet",
      async () => {
        const p = await env.core.readNamespacedPod({ namespace: ns, name: pod });
        return p.metadata?.ownerReferences?.some((o) => o.controller && o.uid === newSts.metadata?.uid)
          ? true
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );

    const m = await waitForPhase(env, ns, name, ["Failed", "Completed"]);
    await env.cluster.node("node-a").setLatencies({ checkpointMs: 0 });
    expect(m.status?.phase).toBe("Failed");
    expect(m.status?.failure?.reason).toBe("WorkloadReplaced");
    expect(["Transferring", "Restoring"]).toContain(m.status?.failure?.phase);
    expect(m.status?.failure?.message).toContain(
      `StatefulSet ${w.name} was deleted and recreated during the migration (uid ${oldSts.metadata?.uid} ` +
        `when the checkpoint was taken, now ${newSts.metadata?.uid})`,
    );
    expect(m.status?.failure?.message).toContain("create a new StatefulMigration");
    expect(m.status?.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
    const warnings = await env.core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.name=${name},reason=WorkloadReplaced`,
    });
    expect(warnings.items.length).toBeGreaterThan(0);

    // The very same pod, on node-a, now the new StatefulSet's; no pod on node-b.
    const after = await env.core.readNamespacedPod({ namespace: ns, name: pod });
    expect(after.metadata?.uid).toBe(source?.metadata?.uid);
    expect(after.spec?.nodeName).toBe("node-a");
    expect(after.metadata?.deletionTimestamp).toBeUndefined();
    const pods = (await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` })).items;
    expect(pods.map((p) => p.metadata?.name)).toEqual([pod]);

    // Nothing of the checkpoint on either node: no record, no archive, no image.
    await waitFor(
      "the migration released on both agents",
      async () => ((await held("node-a", uid)) || (await held("node-b", uid)) ? undefined : true),
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    expect(await archivesOf("node-a", pod)).toEqual([]);
    expect(await checkpointImagesOn("node-b", uid)).toEqual([]);

    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "sts", w.name), pod);
    console.log("[lifecycle] replaced", JSON.stringify({ ...report, lost: report.lost.length }));
    expect(report.lost).toEqual([]);
    expect(report.appliedTwice).toEqual([]);
    expect(report.ok).toBe(true);
  });
});

describe("a StatefulSet deleted (cascading) and recreated under the same name mid-migration", () => {
  // `kubectl delete sts` (propagationPolicy Background: the garbage collector deletes the pod too)
  // and the same StatefulSet applied again, landing in Checkpointing (by the migration's
  // phaseTimings; else tried again with a fresh migration).
  it(
    "in Checkpointing: refused (WorkloadReplaced), rolled back, the new pod starts from its image, nothing left, zero lost",
    async () => {
      await env.cluster.node("node-a").setLatencies({ checkpointMs: 8_000 });
      try {
        await untilLanded("Checkpointing", (i) => cascadeOnce(i));
      } finally {
        await env.cluster.node("node-a").setLatencies({ checkpointMs: 0 });
      }
    },
    150_000 * LANDING_ATTEMPTS,
  );
});

async function cascadeOnce(attempt: number): Promise<{ landedIn: string }> {
  const w = workloadNames(ns, `lc-gc${attempt ? `-r${attempt}` : ""}`, work, true);
  await createStatefulSet(env, ns, w, "node-a");
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const pod = `${w.name}-0`;
  const oldSts = await env.apps.readNamespacedStatefulSet({ namespace: ns, name: w.name });
  const image = oldSts.spec?.template.spec?.containers[0]?.image;
  const producer = new TestProducer(env, w, 30);
  await producer.start();
  await sleep(1_000);

  const name = `m-${w.name}`;
  const watch = await MigrationWatch.start(env.kc, ns, name);
  try {
    const created = await createMigration(
      env,
      ns,
      name,
      { ...w, queue: `${w.queue}.${pod}` },
      { sourcePod: pod, targetNode: "node-b" },
    );
    const uid = created.metadata?.uid ?? "";
    const injection = await watch.inject("Checkpointing", async () => {
      // Once the kubelet has the request (the dump done, the slow part running): the checkpoint
      // is taken of the old incarnation. (A pod deleted before the kubelet saw the request fails
      // the migration in Checkpointing with SourcePodLost: the unit tests cover it.)
      await waitFor(
        "the checkpoint started on node-a",
        async () =>
          (await checkpointCount(env, "node-a", ns, pod, "checkpoint started")) > 0 ? true : undefined,
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      await sleep(300); // the process's own dump (milliseconds), before the slow part
      await recreateStatefulSet(w, "Background");
    });
    const m = await waitForPhase(env, ns, name, ["Failed", "Completed"]);
    const landedIn = await watch.landing(injection);
    console.log("[lifecycle] cascade", JSON.stringify({ attempt, landedIn, seen: watch.seen }));
    if (landedIn !== "Checkpointing") {
      // Not where the case claims (the migration went past Checkpointing first): tried again.
      await producer.stop();
      await env.apps.deleteNamespacedStatefulSet({ namespace: ns, name: w.name }).catch(() => undefined);
      return { landedIn };
    }
    const newSts = await env.apps.readNamespacedStatefulSet({ namespace: ns, name: w.name });
    expect(newSts.metadata?.uid).not.toBe(oldSts.metadata?.uid);

    // Refused before the transfer: the StatefulSet under the name is another incarnation.
    expect(m.status?.phase).toBe("Failed");
    expect(m.status?.failure?.reason).toBe("WorkloadReplaced");
    expect(m.status?.failure?.phase).toBe("Transferring");
    expect(m.status?.failure?.message).toContain(
      `StatefulSet ${w.name} was deleted and recreated during the migration (uid ${oldSts.metadata?.uid} ` +
        `when the checkpoint was taken, now ${newSts.metadata?.uid}): the checkpoint is of the previous ` +
        "incarnation and is not restored into the new one",
    );
    expect(m.status?.failure?.message).toContain("create a new StatefulMigration");
    expect(m.status?.conditions?.find((c) => c.type === "RolledBack")?.status).toBe("True");
    const warnings = await env.core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.name=${name},reason=WorkloadReplaced`,
    });
    expect(warnings.items.length).toBeGreaterThan(0);

    // The source went with the old StatefulSet (its final state written on SIGTERM); the new
    // StatefulSet's pod under the same name runs on node-a from its template's image, not from
    // the checkpoint, and is no migration's.
    const stateFile = join(w.stateDir, `${pod}.json`);
    await waitFor(
      "the source pod deleted by the garbage collector",
      async () => {
        const p = await env.core.readNamespacedPod({ namespace: ns, name: pod }).catch(() => undefined);
        return p?.metadata?.uid === source?.metadata?.uid ? undefined : true;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const sourceState = await waitFor(
      "the source's final state",
      async () => (JSON.parse(await readFile(stateFile, "utf8")) as { app: WorkloadState }).app ?? undefined,
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    const [fresh] = await waitForConsumers(env, ns, w.name, 1);
    expect(fresh?.metadata?.name).toBe(pod);
    expect(fresh?.metadata?.uid).not.toBe(source?.metadata?.uid);
    expect(fresh?.metadata?.ownerReferences?.find((o) => o.controller)?.uid).toBe(newSts.metadata?.uid);
    expect(fresh?.spec?.nodeName).toBe("node-a");
    expect(fresh?.spec?.containers.map((c) => c.image)).toEqual([image]);
    const ms2mKeys = Object.keys({ ...fresh?.metadata?.labels, ...fresh?.metadata?.annotations }).filter(
      (k) => k.includes("ms2m.io"),
    );
    expect(ms2mKeys).toEqual([]);
    const all = (await env.core.listNamespacedPod({ namespace: ns })).items;
    expect(all.filter((p) => p.metadata?.labels?.app === w.name).map((p) => p.metadata?.uid)).toEqual([
      fresh?.metadata?.uid,
    ]);
    expect(all.filter((p) => p.spec?.nodeName === "node-b").map((p) => p.metadata?.name)).toEqual([]);

    // Nothing of the migration on either node (no record, no archive, no image) nor on the broker.
    await waitFor(
      "the migration released on both agents",
      async () => ((await held("node-a", uid)) || (await held("node-b", uid)) ? undefined : true),
      { timeoutMs: 20_000, intervalMs: 250 },
    );
    expect(await archivesOf("node-a", pod)).toEqual([]);
    expect(await checkpointImagesOn("node-b", uid)).toEqual([]);
    expect(await queueExists(`ms2m.replay.${uid}`)).toBe(false);
    expect(await queueExists(`ms2m.status.${uid}`)).toBe(false);

    // Every published message applied exactly once: by the source before it was deleted, or by
    // the new pod from the workload's durable queue (it starts empty: a restore from the
    // checkpoint would apply the checkpointed messages twice).
    const alone = await finalAccounting(env, ns, w, producer, stopper(env, ns, "sts", w.name), pod);
    const freshState = (JSON.parse(await readFile(stateFile, "utf8")) as { app: WorkloadState }).app;
    const report = account(producer.confirmed, mergeStates([sourceState, freshState]));
    console.log(
      "[lifecycle] cascade",
      JSON.stringify({
        ...report,
        lost: report.lost.length,
        bySource: sourceState.count,
        byNewPod: freshState.count,
        newPodAloneLost: alone.lost.length,
      }),
    );
    expect(sourceState.count).toBeGreaterThan(0);
    expect(freshState.count).toBeGreaterThan(0);
    expect(report.lost).toEqual([]);
    expect(report.appliedTwice).toEqual([]);
    expect(report.ok).toBe(true);
    return { landedIn };
  } finally {
    watch.stop();
    await producer.stop().catch(() => undefined);
  }
}

describe("what a crashed run left behind", () => {
  it("is swept from the source and the target node once the TTL has passed, keeping an image a pod runs from", async () => {
    const w = workloadNames(ns, "lc-left", work);
    await createBarePod(env, ns, w, "node-a");
    await waitForConsumers(env, ns, w.name, 1);
    const pod = w.name;
    const live = await env.core.readNamespacedPod({ namespace: ns, name: pod });
    const workload = { kind: "Pod", name: pod, uid: live.metadata?.uid ?? "" };
    const ids = { namespace: ns, pod, container: "consumer" };
    // Two runs whose StatefulMigrations are gone (deleted while the controller was down): each
    // checkpointed on node-a and sent its checkpoint into node-b's store.
    const plant = async () => {
      const uid = randomUUID();
      const ck = await agents.checkpoint(agentUrl("node-a"), { migration: uid, ...ids, workload });
      const image = `localhost/ms2m/${ns}-${pod}-consumer:${uid.slice(0, 8)}`;
      await agents.send(agentUrl("node-a"), {
        migration: uid,
        ...ids,
        archive: ck.archive,
        destination: { type: "agent", url: agentUrl("node-b"), image },
        workload,
      });
      return { uid, ck, image };
    };
    const unused = await plant();
    const used = await plant();
    // A pod on node-b runs from the second image (as a restored target does): it must stay.
    await env.core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "lc-user" },
        spec: {
          ...live.spec!,
          nodeName: "node-b",
          containers: live.spec!.containers.map((c) => ({
            ...c,
            image: used.image,
            imagePullPolicy: "Never",
          })),
        },
      },
    });
    let newest = 0;
    for (const { uid, ck, image } of [unused, used]) {
      const onSource = await held("node-a", uid);
      const onTarget = await held("node-b", uid);
      expect(onSource).toMatchObject({ workloadUids: [workload.uid], records: 1, archives: [ck.archive] });
      expect(onTarget).toMatchObject({ workloadUids: [workload.uid], loadedImages: [image] });
      newest = Math.max(newest, Date.parse(onSource!.newest), Date.parse(onTarget!.newest));
    }
    const stored = await listStoredImages(env.cluster.node("node-b").storage);
    expect(stored).toEqual(expect.arrayContaining([unused.image, used.image]));

    // Younger than the TTL: kept through a few sweeps.
    await sleep(2_500);
    expect(Date.now() - newest).toBeLessThan(TTL_SECONDS * 1000);
    for (const { uid } of [unused, used]) {
      expect(await held("node-a", uid)).toBeDefined();
      expect(await held("node-b", uid)).toBeDefined();
    }

    const goneAt = await waitFor(
      "the leftovers swept",
      async () => {
        for (const { uid } of [unused, used])
          if ((await held("node-a", uid)) || (await held("node-b", uid))) return undefined;
        return Date.now();
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(goneAt - newest).toBeGreaterThanOrEqual(TTL_SECONDS * 1000);
    expect(await archivesOf("node-a", pod)).toEqual([]);
    const after = await listStoredImages(env.cluster.node("node-b").storage);
    expect(after).not.toContain(unused.image);
    expect(after).toContain(used.image);
    const log = await controller.log();
    expect(log).toContain("checkpoint artifacts swept");
    // The workload itself was never touched.
    const still = await env.core.readNamespacedPod({ namespace: ns, name: pod });
    expect(still.metadata?.uid).toBe(live.metadata?.uid);
    expect(still.metadata?.deletionTimestamp).toBeUndefined();
    await env.core.deleteNamespacedPod({ namespace: ns, name: "lc-user", gracePeriodSeconds: 0 });
  });
});
