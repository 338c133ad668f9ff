import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { phaseAt } from "../../harness/phase-fault.ts";
import { sleep } from "../../../tooling/exec.ts";
import { REAL_CLUSTER_LATENCIES } from "../../../sim/config.ts";
import {
  controllerTestEnv,
  createDeployment,
  createMigration,
  downtime,
  finalAccounting,
  readAppliedLogs,
  setupFile,
  startRegistry,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workloadNames,
} from "./env.ts";

// ShadowPod's promise: the source keeps consuming until the target, restored and replayed, takes
// over, so the consumer's downtime is the cut-over, not the migration. Measured as the demo and
// the real-node test measure it: every consumer appends "<ms> <seq>" per applied message
// (APPLIED_LOG_DIR), and the downtime is the longest gap in processing, over source and target,
// from the migration's start to the producer's stop (tooling/stack/accounting.ts `downtime`).
// The nodes take the real nodes' latencies (REAL_CLUSTER_LATENCIES: a 2.9 s checkpoint, a 1.9 s
// container start), so the migration itself lasts several seconds.
//
// The bound: on the 2-core test machine, beside other sessions' runs (2026-12-02), at 20 msg/s
// (a message every 50 ms before the migration), this test measured a longest gap of 105 ms
// (Direct, in Finalizing) and 87 ms (Registry, in Replaying) in migrations of 8.4 s and 8.2 s,
// of which Checkpointing + Transferring + Restoring took 6.5–6.9 s. BOUND_MS = 1.5 s leaves a
// loaded machine over ten times the measured gap, and still fails a source that stopped
// consuming from its checkpoint until the target took over (a gap of the whole ~6.5 s). A
// Sequential migration has no such bound (the source stops before the target starts) and is
// not asserted here; the real-node test (test/real/migration.test.ts) bounds ShadowPod at 3 s.
vi.setConfig({ testTimeout: 180_000 });
const env = controllerTestEnv();
let setup: Awaited<ReturnType<typeof setupFile>>;
let registry: { stop(): Promise<void> } | undefined;
const RATE = 20;
const BOUND_MS = 1_500;

beforeAll(async () => {
  registry = await startRegistry(env.hostIp);
  setup = await setupFile(env, "downtime");
  for (const n of env.cluster.nodeNames()) await env.cluster.node(n).setLatencies(REAL_CLUSTER_LATENCIES);
});

afterFile(async (failed) => {
  for (const n of env.cluster.nodeNames()) {
    await env.cluster
      .node(n)
      .setLatencies({ imagePullMs: 0, containerStartMs: 0, readinessMs: 0, restoreMs: 0, checkpointMs: 0 })
      .catch(() => undefined);
  }
  await setup?.teardown(failed);
  await registry?.stop();
});

describe.each(["Direct", "Registry"] as const)("ShadowPod, %s", (mode) => {
  it(`the consumer's longest gap in processing stays under ${BOUND_MS} ms, zero lost`, async () => {
    const { ns, work } = setup;
    const label = `dt-${mode.toLowerCase()}`;
    const w = { ...workloadNames(ns, label, work), appliedLogDir: `${work}/${label}-applied` };
    await createDeployment(env, ns, w, "node-a");
    const [source] = await waitForConsumers(env, ns, w.name, 1);
    const producer = new TestProducer(env, w, RATE);
    await producer.start();
    await sleep(3_000); // the normal pace, before the migration
    const from = Date.now();
    await createMigration(env, ns, `m-${label}`, w, {
      sourcePod: source?.metadata?.name ?? "",
      targetNode: "node-b",
      migrationStrategy: "ShadowPod",
      transferMode: mode,
    });
    const m = await waitForCompletion(env, ns, `m-${label}`, 120_000);
    await sleep(2_000); // the target's own pace after the cut-over
    const to = Date.now();

    const gap = downtime(await readAppliedLogs(w.appliedLogDir), from, to);
    console.log(
      `[downtime] ShadowPod/${mode}: longest gap ${gap.gapMs} ms in ${phaseAt(m, gap.gapStart)} ` +
        `(normal ${gap.normalGapMs} ms; migration ${m.status?.duration}, phases ` +
        `${JSON.stringify(Object.fromEntries((m.status?.phaseTimings ?? []).map((t) => [t.phase, t.durationMillis])))})`,
    );
    // Measured, not assumed: messages were applied before the migration at the producer's pace.
    expect(gap.normalGapMs).toBeGreaterThan(0);
    expect(gap.normalGapMs).toBeLessThan(4 * (1000 / RATE));
    expect(gap.gapMs).toBeLessThan(BOUND_MS);

    const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
    expect(report.lost).toEqual([]);
    expect(report.appliedTwice).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
