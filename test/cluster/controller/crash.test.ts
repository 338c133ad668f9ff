import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import {
  checkpointCount,
  controllerOf,
  controllerTestEnv,
  createDeployment,
  createMigration,
  createStatefulSet,
  finalAccounting,
  getMigration,
  livePods,
  setupFile,
  startRegistry,
  stopper,
  TestProducer,
  waitForConsumers,
  waitForPhase,
  workloadNames,
  type ControllerTestEnv,
  type Workload,
} from "./env.ts";
import {
  LANDING_ATTEMPTS,
  MigrationWatch,
  PHASES,
  untilLanded,
  type Injection,
} from "../../harness/phase-fault.ts";

// The controller binary killed (SIGKILL) in each phase of a ShadowPod (Deployment, Direct) and
// a Sequential (StatefulSet, Registry) migration and started again: the migration resumes to
// completion, the source was checkpointed once, one pod serves, zero lost. Node latencies
// stretch the phases so that each one can be hit. A last case kills the controller exactly
// between a checkpoint request and its answer.
vi.setConfig({ testTimeout: 120_000 * LANDING_ATTEMPTS });
const env = controllerTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;
let registry: { stop(): Promise<void> } | undefined;
const outcomes: Record<string, string> = {};
const LATENCIES = { checkpointMs: 700, restoreMs: 700, containerStartMs: 300 };

beforeAll(async () => {
  registry = await startRegistry(env.hostIp);
  setup = await setupFile(env, "crash");
  for (const n of env.cluster.nodeNames()) await env.cluster.node(n).setLatencies(LATENCIES);
});

afterFile(async (failed) => {
  console.log("[crash] outcomes", JSON.stringify(outcomes));
  for (const n of env.cluster.nodeNames()) {
    await env.cluster
      .node(n)
      .setLatencies({ checkpointMs: 0, restoreMs: 0, containerStartMs: 0 })
      .catch(() => undefined);
  }
  await setup?.teardown(failed);
  await registry?.stop();
});

type Strategy = "ShadowPod" | "Sequential";

interface Run {
  w: Workload;
  name: string;
  sourceName: string;
  sourceUid: string;
  producer: TestProducer;
  kind: "deploy" | "sts";
  /** Every write to the migration (stopped by the case). */
  watch: MigrationWatch;
}

/** The workload on node-a under load and its migration to node-b created. */
async function start(e: ControllerTestEnv, strategy: Strategy, label: string): Promise<Run> {
  const { ns, work } = setup;
  const sequential = strategy === "Sequential";
  const w = workloadNames(ns, label, work, sequential);
  if (sequential) await createStatefulSet(e, ns, w, "node-a", 1);
  else await createDeployment(e, ns, w, "node-a");
  const [source] = await waitForConsumers(e, ns, w.name, 1);
  const sourceName = source?.metadata?.name ?? "";
  const producer = new TestProducer(e, w, 30);
  await producer.start();
  await sleep(500);
  const name = `m-${w.name}`;
  const watch = await MigrationWatch.start(e.kc, ns, name);
  await createMigration(e, ns, name, sequential ? { ...w, queue: `${w.queue}.${sourceName}` } : w, {
    sourcePod: sourceName,
    targetNode: "node-b",
    migrationStrategy: strategy,
    transferMode: sequential ? "Registry" : "Direct",
  });
  return {
    w,
    name,
    sourceName,
    sourceUid: source?.metadata?.uid ?? "",
    producer,
    kind: sequential ? "sts" : "deploy",
    watch,
  };
}

/** Completed, checkpointed once, the migrated pod alone on node-b under the workload, zero lost. */
async function verdict(
  e: ControllerTestEnv,
  strategy: Strategy,
  run: Run,
  key: string,
  kill: string | Injection,
): Promise<string> {
  const { ns } = setup;
  const m = await waitForPhase(e, ns, run.name, ["Completed", "Failed"], 90_000, 100);
  // Where the kill landed, by the migration's final phaseTimings.
  const killedIn = typeof kill === "string" ? kill : await run.watch.landing(kill);
  outcomes[key] =
    `killed in ${killedIn}: ${m.status?.phase}${m.status?.failure ? ` (${m.status.failure.reason})` : ""}`;
  expect(m.status?.failure).toBeUndefined();
  expect(m.status?.phase).toBe("Completed");
  expect(await checkpointCount(e, "node-a", ns, run.sourceName)).toBe(1);

  const target = await e.core.readNamespacedPod({ namespace: ns, name: m.status?.targetPod ?? "" });
  expect(target.spec?.nodeName).toBe("node-b");
  expect(target.metadata?.uid).not.toBe(run.sourceUid);
  if (strategy === "Sequential") {
    expect(target.metadata?.name).toBe(run.sourceName);
    expect(controllerOf(target)).toMatchObject({ kind: "StatefulSet", name: run.w.name });
  } else {
    expect(controllerOf(target)?.kind).toBe("ReplicaSet");
  }
  await sleep(1_000);
  const pods = await waitFor("one pod", async () => {
    const live = await livePods(e, ns, run.w.name);
    return live.length === 1 ? live : undefined;
  });
  expect(pods.map((p) => p.metadata?.uid)).toEqual([target.metadata?.uid]);

  const report = await finalAccounting(
    e,
    ns,
    run.w,
    run.producer,
    stopper(e, ns, run.kind, run.w.name),
    strategy === "Sequential" ? run.sourceName : undefined,
  );
  expect(report.lost).toEqual([]);
  expect(report.appliedTwice).toEqual([]);
  expect(report.ok).toBe(true);
  return killedIn;
}

describe.each<Strategy>(["ShadowPod", "Sequential"])("%s", (strategy) => {
  // The kill must land in the phase the case names (by the migration's phaseTimings); a kill
  // that came too late (or not at all: the migration was past the phase first) is tried again
  // with a fresh migration. Every attempt must resume to completion.
  it.each(PHASES)("SIGKILL in %s: resumes, one checkpoint, one pod, zero lost", async (phase) => {
    const { controller } = setup;
    await untilLanded(phase, async (i) => {
      const label = `${strategy === "Sequential" ? "s" : "c"}-${phase.toLowerCase()}${i ? `-r${i}` : ""}`;
      const run = await start(env, strategy, label);
      try {
        let killed = false;
        let injection: Injection;
        try {
          injection = await run.watch.inject(phase, async () => {
            killed = true;
            await controller.kill();
          });
        } finally {
          if (killed) {
            await sleep(300);
            await controller.start();
          }
        }
        const key = `${strategy}/${phase}${i ? ` #${i + 1}` : ""}`;
        return { landedIn: await verdict(env, strategy, run, key, injection) };
      } finally {
        run.watch.stop();
      }
    });
  });
});

it("SIGKILL between the checkpoint request and its answer: the outcome is looked up, not repeated", async () => {
  const { ns, controller } = setup;
  // A slow checkpoint: the controller has written its intent and is waiting for the agent.
  await env.cluster.node("node-a").setLatencies({ ...LATENCIES, checkpointMs: 4_000 });
  try {
    const run = await start(env, "ShadowPod", "c-inflight");
    const intent = await waitFor(
      "checkpoint intent recorded",
      async () => {
        const m = await getMigration(env, ns, run.name);
        const c = m?.status?.containers?.[0];
        return c?.checkpointRequestedAt && !c.checkpointPath ? m : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 10 },
    );
    await controller.kill();
    // Killed with the request in flight: intent recorded, no answer, the kubelet not done yet.
    const atKill = await getMigration(env, ns, run.name);
    expect(atKill?.status?.phase).toBe("Checkpointing");
    expect(atKill?.status?.containers?.[0]?.checkpointRequestedAt).toBe(
      intent.status?.containers?.[0]?.checkpointRequestedAt,
    );
    expect(atKill?.status?.containers?.[0]?.checkpointPath).toBeUndefined();
    expect(await checkpointCount(env, "node-a", ns, run.sourceName)).toBe(0);
    await sleep(300);
    await controller.start();
    await verdict(env, "ShadowPod", run, "between request and answer", "Checkpointing (request in flight)");
    run.watch.stop();
  } finally {
    await env.cluster.node("node-a").setLatencies(LATENCIES);
  }
});
