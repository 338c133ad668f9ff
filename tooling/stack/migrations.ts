// StatefulMigrations as a test or the demo drives them, and what they did (checkpoints, queues).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { queueStats } from "../broker/queues.ts";
import { sleep, waitFor } from "../exec.ts";
import type { StatefulMigration } from "../../src/api/v1alpha1/index.ts";
import { type ControllerTestEnv, GROUP, PLURAL, VERSION } from "./env.ts";
import { type Workload } from "./workload.ts";

export interface MigrationSpec {
  sourcePod: string;
  targetNode?: string;
  migrationStrategy?: "ShadowPod" | "Sequential";
  transferMode?: "Direct" | "Registry";
  checkpointImageRepository?: string;
  replayCutoffSeconds?: number;
  onRestoreFailure?: "Rollback" | "ColdStart";
  encryption?: {
    publicKeySecretRef: { name: string; key: string };
    privateKeySecretRef: { name: string; key: string };
  };
}

/** A MigrationPolicy for one workload's pods (selector `app=<name>`), its queue replayed. */
export async function createPolicy(
  env: ControllerTestEnv,
  ns: string,
  w: Workload,
  spec: Record<string, unknown> = {},
): Promise<void> {
  await env.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: "migrationpolicies",
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "MigrationPolicy",
      metadata: { name: w.name },
      spec: {
        selector: { matchLabels: { app: w.name } },
        transferMode: "Direct",
        messageQueueConfig: {
          queueName: w.queue,
          exchangeName: w.exchange,
          brokerSecretRef: { name: "broker", key: "url" },
        },
        ...spec,
      },
    },
  });
}

/** The StatefulMigrations evictions started in a namespace. */
export async function evictionMigrations(env: ControllerTestEnv, ns: string): Promise<StatefulMigration[]> {
  const list = (await env.custom.listNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    labelSelector: "migration.ms2m.io/trigger=eviction",
  })) as { items: StatefulMigration[] };
  return list.items;
}

export async function createMigration(
  env: ControllerTestEnv,
  ns: string,
  name: string,
  w: Workload | undefined,
  spec: MigrationSpec,
): Promise<StatefulMigration> {
  const body = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "StatefulMigration",
    metadata: { name },
    spec: {
      transferMode: "Direct",
      ...spec,
      ...(spec.transferMode === "Registry" && !spec.checkpointImageRepository
        ? { checkpointImageRepository: `${env.registry}/ms2m/checkpoints` }
        : {}),
      ...(w
        ? {
            messageQueueConfig: {
              queueName: w.queue,
              exchangeName: w.exchange,
              brokerSecretRef: { name: "broker", key: "url" },
            },
          }
        : {}),
    },
  };
  return (await env.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    body,
  })) as StatefulMigration;
}

export async function getMigration(
  env: ControllerTestEnv,
  ns: string,
  name: string,
): Promise<StatefulMigration | undefined> {
  try {
    return (await env.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: PLURAL,
      name,
    })) as StatefulMigration;
  } catch (err) {
    if ((err as { code?: number }).code === 404) return undefined;
    throw err;
  }
}

export async function deleteMigration(env: ControllerTestEnv, ns: string, name: string): Promise<void> {
  await env.custom.deleteNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name,
  });
}

export async function waitForPhase(
  env: ControllerTestEnv,
  ns: string,
  name: string,
  phases: string[],
  timeoutMs = 90_000,
  intervalMs = 50,
): Promise<StatefulMigration> {
  const deadline = Date.now() + timeoutMs;
  let last: StatefulMigration | undefined;
  for (;;) {
    last = await getMigration(env, ns, name).catch(() => last);
    const phase = last?.status?.phase ?? "";
    if (last && phases.includes(phase)) return last;
    if (phase === "Failed")
      throw new Error(`migration ${ns}/${name} failed: ${JSON.stringify(last?.status?.failure)}`);
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${ns}/${name} in ${phases.join("|")}; status ${JSON.stringify(last?.status)}`,
      );
    }
    await sleep(intervalMs);
  }
}

/** Waits until the migration is Failed|Completed, failing fast on Failed unless allowed. */
export async function waitForCompletion(
  env: ControllerTestEnv,
  ns: string,
  name: string,
  timeoutMs = 90_000,
) {
  return waitForPhase(env, ns, name, ["Completed"], timeoutMs, 100);
}

export async function waitForGone(
  read: () => Promise<unknown>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    `${what} gone`,
    async () => {
      try {
        await read();
        return undefined;
      } catch (err) {
        if ((err as { code?: number }).code === 404) return true;
        throw err;
      }
    },
    { timeoutMs, intervalMs: 100 },
  );
}

export const migrationGone = (env: ControllerTestEnv, ns: string, name: string) =>
  waitForGone(
    () => getMigration(env, ns, name).then((x) => x ?? Promise.reject({ code: 404 })),
    `migration ${name}`,
  );

/** The phase durations of a migration (ms), from status.phaseTimings. */
export function phaseMillis(m: StatefulMigration): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of m.status?.phaseTimings ?? []) {
    if (t.durationMillis !== undefined) out[t.phase] = t.durationMillis;
  }
  return out;
}

/**
 * How many checkpoints the node's runtime took of a pod: from the simulator's log, or on a real
 * node from CRI-O's ("Checkpointing container: <id>" / "Checkpointed container: <id>", matched
 * against the container IDs the pod has had).
 */
export async function checkpointCount(
  env: ControllerTestEnv,
  node: string,
  ns: string,
  pod: string,
  event: "checkpointed" | "checkpoint started" = "checkpointed",
): Promise<number> {
  if (env.cluster.runtime === "real") {
    const p = await env.core.readNamespacedPod({ namespace: ns, name: pod }).catch(() => undefined);
    const ids = (p?.status?.containerStatuses ?? [])
      .map((c) => c.containerID?.replace(/^cri-o:\/\//, ""))
      .filter((id): id is string => !!id);
    const log = await readFile(join(env.cluster.realNode(node).dir, "crio.log"), "utf8").catch(() => "");
    const word = event === "checkpointed" ? "Checkpointed container: " : "Checkpointing container: ";
    return log.split("\n").filter((l) => ids.some((id) => l.includes(`${word}${id}`))).length;
  }
  const log = await readFile(join(env.cluster.node(node).dir, "sim.log"), "utf8").catch(() => "");
  return log.split("\n").filter((l) => l.includes(`"msg":"${event}"`) && l.includes(`"pod":"${ns}/${pod}"`))
    .length;
}

/** Whether the broker still has a queue. */
export async function queueExists(name: string): Promise<boolean> {
  return (await queueStats(name)) !== undefined;
}
