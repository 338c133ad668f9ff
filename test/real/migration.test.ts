import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../harness/after-file.ts";
import { sleep } from "../../tooling/exec.ts";
import {
  containerId,
  crioCheckpoints,
  createDeployment,
  createMigration,
  createStatefulSet,
  downtime,
  expectNoLoss,
  finalAccounting,
  jsonLog,
  livePods,
  phaseMillis,
  readAppliedLogs,
  realTestEnv,
  waitForPodsExactly,
  restoredFromCheckpointAt,
  setupFile,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
} from "./env.ts";

// Live migration of a real process on real nodes: the reference consumer (the project's workload
// image, pulled by CRI-O from the cluster's registry) runs on node-a under a producer; the
// controller checkpoints it through the agent and the kubelet (CRIU), ships the archive (Direct:
// agent to agent; Registry: through the registry), CRI-O restores it on node-b, the replay
// queue is drained, the target takes over. The process is the same one: CRI-O says it was
// restored from the checkpoint, the SDK noticed its new pod by itself, and the messages it had
// applied before the migration (which exist nowhere else) are still in its state.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 300_000 });
const env = realTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;

beforeAll(async () => {
  setup = await setupFile(env, "real-mig");
});
afterFile(async (failed) => {
  await setup?.teardown(failed);
});

describe.each([
  { kind: "Deployment", strategy: "ShadowPod", mode: "Direct" },
  { kind: "StatefulSet", strategy: "Sequential", mode: "Registry" },
] as const)("$kind + $strategy + $mode", ({ kind, strategy, mode }) => {
  it("moves a real process with its memory: 0 lost, 0 applied twice, restored by CRI-O", async () => {
    const { ns, work } = setup;
    const name = kind === "Deployment" ? "dep" : "sts";
    const w = { ...workloadNames(ns, name, work), appliedLogDir: `${work}/${name}-applied` };
    if (kind === "Deployment") await createDeployment(env, ns, w, "node-a");
    else await createStatefulSet(env, ns, w, "node-a");
    const [source] = await waitForConsumers(env, ns, w.name, 1);
    const sourcePod = source!.metadata!.name!;
    const sourceId = await containerId(env, ns, sourcePod, "consumer");

    const producer = new TestProducer(env, w, 20);
    await producer.start();
    await sleep(3_000); // ~60 messages applied that only the source's memory holds
    const migrationStart = Date.now();
    await createMigration(env, ns, `${name}-to-b`, w, {
      sourcePod,
      targetNode: "node-b",
      transferMode: mode,
    });
    const m = await waitForCompletion(env, ns, `${name}-to-b`, 180_000);
    await sleep(2_000);
    const producerStop = Date.now();

    expect(m.status?.strategy).toBe(strategy);
    expect(m.status?.transferMode).toBe(mode);
    const target = m.status!.targetPod!;
    if (strategy === "Sequential") expect(target).toBe(sourcePod);
    const container = m.status!.containers![0]!;
    // A real CRIU image of a Node.js process: tens of MB, not a simulated few KB.
    expect(container.checkpointBytes).toBeGreaterThan(5 * 1024 * 1024);
    expect(container.baseImage).toBe(env.cluster.info.images!.workload);
    const timings = phaseMillis(m);
    console.log(
      `[real] ${kind}/${strategy}/${mode}: total ${m.status?.duration}, archive ` +
        `${((container.checkpointBytes ?? 0) / 1048576).toFixed(1)} MiB, phases ${JSON.stringify(timings)}`,
    );

    // One checkpoint, taken by CRI-O on node-a of the source's container.
    expect(await crioCheckpoints(env, "node-a", sourceId)).toBe(1);
    // The target runs on node-b, restored by CRI-O from the checkpoint (not started afresh).
    const pods = await livePods(env, ns, w.name);
    expect(pods.map((p) => `${p.metadata?.name}@${p.spec?.nodeName}`)).toEqual([`${target}@node-b`]);
    const targetId = await containerId(env, ns, target, "consumer");
    expect(targetId).not.toBe(sourceId);
    const restoredAt = await restoredFromCheckpointAt(env, "node-b", targetId);
    expect(restoredAt?.getTime()).toBeGreaterThanOrEqual(migrationStart - 1_000);
    // The same process: no start since the migration began (CRI-O restores the container's log
    // with it, so the source's start is in there), but its SDK noticed the new pod by itself.
    const log = (await jsonLog(env, "node-b", ns, target, "consumer")).filter(
      (l) => Date.parse(String(l.time)) >= migrationStart,
    );
    expect(log.filter((l) => l.msg === "consumer started")).toEqual([]);
    const restored = log.filter((l) => l.msg === "consumer restored");
    expect(restored).toHaveLength(1);
    expect(restored[0]).toMatchObject({ previousPod: sourcePod, pod: target });

    const applied = await readAppliedLogs(w.appliedLogDir);
    const gap = downtime(applied, migrationStart, producerStop);
    console.log(`[real] ${kind}: longest gap in processing ${gap.gapMs} ms (normal ${gap.normalGapMs} ms)`);
    if (strategy === "ShadowPod") expect(gap.gapMs).toBeLessThan(3_000);

    await waitForPodsExactly(env, ns, w.name, [target]); // the source has stopped
    // Only the target's state is left, and it holds every message since the start: the ones
    // the source applied before the checkpoint came with its memory.
    const report = await finalAccounting(
      env,
      ns,
      w,
      producer,
      stopper(env, ns, kind === "Deployment" ? "deploy" : "sts", w.name),
    );
    expectNoLoss(report);
    expect(report.published).toBeGreaterThan(60);
  });
});
