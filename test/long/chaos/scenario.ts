// Shared by the chaos cases: one workload (Deployment for ShadowPod + Direct, one-replica
// StatefulSet for Sequential + Registry) under load, a migration, a fault, and the verdict:
// outcome, message accounting, and what was left behind (pods, replay queue, checkpoint
// archives on the nodes, checkpoint images in the nodes' containers-storage and the registry).
import { appendFileSync, mkdirSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { connect } from "node:net";
import type * as k8s from "@kubernetes/client-node";
import { expect } from "vitest";
import { readyCount } from "../../../tooling/broker/queues.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import {
  createDeployment,
  createMigration,
  createStatefulSet,
  finalAccounting,
  livePods,
  queueExists,
  setupFile,
  startRegistry,
  stopper,
  TestProducer,
  waitForConsumers,
  waitForPhase,
  workloadNames,
  type ControllerTestEnv,
  type Workload,
} from "../../cluster/controller/env.ts";
import type { StatefulMigration } from "../../../src/api/v1alpha1/index.ts";
import { MigrationWatch, untilLanded, type Injection } from "../../harness/phase-fault.ts";
import { RESULTS_DIR, RESULTS_FILE, type ChaosRow } from "./report.ts";

export { PHASES, spans } from "../../harness/phase-fault.ts";
export type Strategy = "ShadowPod" | "Sequential";
export const STRATEGIES: Strategy[] = ["ShadowPod", "Sequential"];
/** Stretches every phase so that each can be hit (as the cluster crash/cancel tests do). */
export const CHAOS_LATENCIES = { checkpointMs: 700, restoreMs: 700, containerStartMs: 300 };
const ZERO_LATENCIES = { checkpointMs: 0, restoreMs: 0, containerStartMs: 0, readinessMs: 0, imagePullMs: 0 };

export type FileSetup = Awaited<ReturnType<typeof setupFile>>;

/** ms2m deployed, the controller running, a namespace, the registry, the nodes' latencies set. */
export async function chaosSetup(env: ControllerTestEnv, prefix: string) {
  const registry = await startRegistry(env.hostIp);
  const setup = await setupFile(env, prefix).catch(async (err: unknown) => {
    await registry.stop();
    throw err;
  });
  for (const n of env.cluster.nodeNames()) await env.cluster.node(n).setLatencies(CHAOS_LATENCIES);
  return {
    ...setup,
    async teardown(failed: boolean) {
      for (const n of env.cluster.nodeNames()) {
        const node = env.cluster.node(n);
        await node.setLatencies(ZERO_LATENCIES).catch(() => undefined);
        await node.setReady(true).catch(() => undefined);
      }
      await setup.teardown(failed);
      await registry.stop();
    },
  };
}
export type ChaosSetup = Awaited<ReturnType<typeof chaosSetup>>;

export interface Run {
  env: ControllerTestEnv;
  ns: string;
  strategy: Strategy;
  w: Workload;
  kind: "deploy" | "sts";
  sourceName: string;
  sourceUid: string;
  producer: TestProducer;
  name: string;
  uid: string;
  started: number;
  /** Every write to the migration (stopped by chaosCase). */
  watch: MigrationWatch;
}

/** The workload on node-a under load, and its migration to node-b created. */
export async function startRun(
  env: ControllerTestEnv,
  setup: ChaosSetup,
  strategy: Strategy,
  label: string,
  rate = 30,
): Promise<Run> {
  const started = Date.now();
  const { ns, work } = setup;
  const sequential = strategy === "Sequential";
  const w = workloadNames(ns, label, work, sequential);
  if (sequential) await createStatefulSet(env, ns, w, "node-a", 1);
  else await createDeployment(env, ns, w, "node-a");
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const sourceName = source?.metadata?.name ?? "";
  const producer = new TestProducer(env, w, rate);
  await producer.start();
  await sleep(500);
  const name = `m-${label}`;
  const watch = await MigrationWatch.start(env.kc, ns, name);
  const m = await createMigration(
    env,
    ns,
    name,
    sequential ? { ...w, queue: `${w.queue}.${sourceName}` } : w,
    {
      sourcePod: sourceName,
      targetNode: "node-b",
      migrationStrategy: strategy,
      transferMode: sequential ? "Registry" : "Direct",
    },
  );
  return {
    env,
    ns,
    strategy,
    w,
    kind: sequential ? "sts" : "deploy",
    sourceName,
    sourceUid: source?.metadata?.uid ?? "",
    producer,
    name,
    uid: m.metadata.uid ?? "",
    started,
    watch,
  };
}

/** Completed or Failed (the migration object is kept). */
export async function settle(run: Run, timeoutMs = 150_000): Promise<StatefulMigration> {
  return waitForPhase(run.env, run.ns, run.name, ["Completed", "Failed"], timeoutMs, 100);
}

export function describeOutcome(m: StatefulMigration): string {
  if (m.status?.phase === "Completed") return "completed";
  const rolledBack = m.status?.conditions?.find((c) => c.type === "RolledBack")?.status === "True";
  return `failed (${m.status?.failure?.reason ?? "?"})${rolledBack ? ", rolled back" : ", NOT rolled back"}`;
}

/** Checkpoint images named in a node's containers-storage (vfs). */
async function nodeImages(env: ControllerTestEnv, node: string): Promise<string[]> {
  const { graphRoot, driver } = env.cluster.node(node).storage;
  const file = join(graphRoot, `${driver}-images`, "images.json");
  const list = JSON.parse(await readFile(file, "utf8").catch(() => "[]")) as { names?: string[] }[];
  return list.flatMap((i) => i.names ?? []);
}

async function registryTags(env: ControllerTestEnv): Promise<string[]> {
  const res = await fetch(`http://${env.registry}/v2/ms2m/checkpoints/tags/list`).catch(() => undefined);
  if (!res || res.status !== 200) return [];
  return ((await res.json()) as { tags?: string[] | null }).tags ?? [];
}

/**
 * What the migration left behind, once one pod serves: other pods of the workload or made by
 * the migration, its replay queue, archives of the source pod on any node, checkpoint images
 * not used by the serving pod (nodes' containers-storage, registry tags).
 */
export async function leftovers(run: Run): Promise<{ leftovers: string[]; serving?: k8s.V1Pod }> {
  const { env, ns, w } = run;
  const out: string[] = [];
  let serving: k8s.V1Pod | undefined;
  try {
    serving = await waitFor(
      "one pod of the workload serving, none terminating",
      async () => {
        const all = (await env.core.listNamespacedPod({ namespace: ns })).items.filter(
          (p) =>
            p.metadata?.labels?.["app"] === w.name ||
            (p.metadata?.name ?? "").startsWith(`${run.sourceName}-ms2m-`),
        );
        const live = all.filter((p) => !p.metadata?.deletionTimestamp);
        const ready = live.filter((p) =>
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
        );
        return all.length === 1 && ready.length === 1 ? ready[0] : undefined;
      },
      { timeoutMs: 45_000, intervalMs: 250 },
    );
  } catch {
    const all = (await env.core.listNamespacedPod({ namespace: ns })).items.filter(
      (p) =>
        p.metadata?.labels?.["app"] === w.name ||
        (p.metadata?.name ?? "").startsWith(`${run.sourceName}-ms2m-`),
    );
    out.push(
      `pods: ${all.map((p) => `${p.metadata?.name}@${p.spec?.nodeName}${p.metadata?.deletionTimestamp ? "(terminating)" : ""}`).join(" ") || "none serving"}`,
    );
  }
  if (run.uid && (await queueExists(`ms2m.replay.${run.uid}`)))
    out.push(`replay queue ms2m.replay.${run.uid}`);
  const inUse = new Set((serving?.spec?.containers ?? []).map((c) => c.image ?? ""));
  const uid12 = run.uid.replaceAll("-", "").slice(0, 12);
  for (const node of env.cluster.nodeNames()) {
    const dir = env.cluster.node(node).checkpointsDir;
    const archives = (await readdir(dir).catch(() => [] as string[])).filter((f) =>
      f.startsWith(`checkpoint-${run.sourceName}_${ns}-`),
    );
    if (archives.length) out.push(`${archives.length} archive(s) on ${node}`);
    const images = (await nodeImages(env, node)).filter(
      (n) => (n.includes(`ms2m-checkpoint/${ns}-${run.sourceName}:`) || n.includes(uid12)) && !inUse.has(n),
    );
    if (images.length) out.push(`image(s) on ${node}: ${images.join(" ")}`);
  }
  const tags = (await registryTags(env)).filter(
    (t) => t.includes(uid12) && !inUse.has(`${env.registry}/ms2m/checkpoints:${t}`),
  );
  if (tags.length) out.push(`registry tag(s) ${tags.join(" ")}`);
  return { leftovers: out, ...(serving ? { serving } : {}) };
}

/**
 * Stops the producer, lets the serving consumer empty its queue (up to 30 s: on a loaded machine
 * a consumer that caught up after a fault may still be behind by a fraction of a second, and what
 * is still queued is not lost), then stops the consumers and checks the accounting. A message
 * that stays queued past the wait is counted as lost.
 */
export async function account(run: Run) {
  const { env, ns, w } = run;
  await run.producer.stop();
  const queue = run.kind === "sts" ? `${w.queue}.${w.name}-0` : w.queue;
  await waitFor(
    "the workload's queue emptied",
    async () => ((await readyCount(queue)) ?? 0) === 0 || undefined,
    {
      timeoutMs: 30_000,
      intervalMs: 250,
    },
  ).catch(() => undefined);
  return finalAccounting(
    env,
    ns,
    w,
    run.producer,
    stopper(env, ns, run.kind, w.name),
    run.kind === "sts" ? `${w.name}-0` : undefined,
  );
}

export function record(row: ChaosRow): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  appendFileSync(RESULTS_FILE, `${JSON.stringify(row)}\n`);
  console.log("[chaos]", JSON.stringify(row));
}

/**
 * Runs one case: `inject` applies the fault to the running migration and returns either the
 * injection (`MigrationWatch.inject`: where it landed is then read from the migration's phaseTimings once it
 * has ended) or a description of the phases it covered; `settle` waits for the end state and
 * names the outcome. Always records a row.
 */
export async function chaosCase(
  env: ControllerTestEnv,
  setup: ChaosSetup,
  opts: {
    group: string;
    strategy: Strategy;
    fault: string;
    label: string;
    rate?: number;
    inject: (run: Run) => Promise<Injection | string>;
    /** Waits for the end state and names the outcome (default: Completed or Failed). */
    settle?: (run: Run, injected: Injection | string) => Promise<string>;
    /**
     * Checks of the end state while the serving pod still runs (before the accounting stops it):
     * returns what is wrong; anything returned fails the case (row.error).
     */
    verify?: (run: Run, serving: k8s.V1Pod | undefined) => Promise<string[]>;
  },
): Promise<ChaosRow> {
  const row: ChaosRow = {
    group: opts.group,
    strategy: opts.strategy,
    fault: opts.fault,
    landedIn: "?",
    outcome: "?",
    published: 0,
    lost: 0,
    twice: 0,
    leftovers: [],
    seconds: 0,
  };
  const t0 = Date.now();
  let run: Run | undefined;
  try {
    run = await startRun(env, setup, opts.strategy, opts.label, opts.rate);
    const injected = await opts.inject(run);
    if (typeof injected === "string") row.landedIn = injected;
    row.outcome = opts.settle ? await opts.settle(run, injected) : describeOutcome(await settle(run));
    if (typeof injected !== "string") row.landedIn = await run.watch.landing(injected);
    const left = await leftovers(run);
    row.leftovers = left.leftovers;
    if (left.serving) row.outcome += ` → serving on ${left.serving.spec?.nodeName}`;
    const problems = opts.verify ? await opts.verify(run, left.serving) : [];
    const report = await account(run);
    row.published = report.published;
    row.lost = report.lost.length;
    row.twice = report.appliedTwice.length;
    if (problems.length) row.error = `check: ${problems.join("; ")}`;
  } catch (err) {
    row.error = err instanceof Error ? err.message.split("\n")[0] : String(err);
    await run?.producer.stop().catch(() => undefined);
  } finally {
    run?.watch.stop();
    row.seconds = (Date.now() - t0) / 1000;
    record(row);
  }
  return row;
}

type CaseOptions = Parameters<typeof chaosCase>[2];

/**
 * A "fault in `phase`" case: `chaosCase` with a fresh migration (label suffixed -r1, -r2, …)
 * until the fault lands in `phase` by the migration's phaseTimings (or `accept`s where it
 * landed), at most LANDING_ATTEMPTS times. Every attempt must be clean (a fault that landed elsewhere is still a fault the
 * migration must survive); the last one landed in `phase`.
 */
export async function landedCase(
  env: ControllerTestEnv,
  setup: ChaosSetup,
  phase: string,
  opts: CaseOptions,
  accept?: (landedIn: string) => boolean,
): Promise<ChaosRow[]> {
  return untilLanded(
    phase,
    async (i) => {
      const row = await chaosCase(env, setup, { ...opts, label: i ? `${opts.label}-r${i}` : opts.label });
      expectClean([row]);
      return row;
    },
    accept ? { accept } : {},
  );
}

/** No error, nothing lost or applied twice, nothing left behind, in every row. */
export function expectClean(rows: ChaosRow[]): void {
  for (const row of rows) {
    expect(row.error, row.fault).toBeUndefined();
    expect(row.lost, row.fault).toBe(0);
    expect(row.twice, row.fault).toBe(0);
    expect(row.leftovers, row.fault).toEqual([]);
  }
}

/** Whether the shared broker accepts TCP connections on 127.0.0.1:5672 (never changed by the suite). */
export function brokerUp(timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(5672, "127.0.0.1");
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.end();
      resolve(true);
    });
    sock.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export { livePods };
