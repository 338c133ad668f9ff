// The real tier: the shared control plane with real nodes (kubelet + CRI-O + runc + CRIU) of
// vitest's global setup (test/harness/global-setup-real.ts), the project's images in the
// cluster's registry, and the stack helpers bound to it.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { waitFor } from "../../tooling/exec.ts";
import { clusterContext } from "../harness/context.ts";
import { stackEnv, type StackEnv } from "../../tooling/stack/index.ts";

export * from "../../tooling/stack/index.ts";

export function realTestEnv() {
  const ctx = clusterContext();
  if (ctx.cluster.runtime !== "real")
    throw new Error("the real project needs real nodes (global-setup-real.ts)");
  return { ...ctx, ...stackEnv(ctx.cluster) };
}
export type RealTestEnv = ReturnType<typeof realTestEnv>;

/** The CRI-O container ID of a pod's container (containerStatuses[].containerID). */
export async function containerId(
  env: StackEnv,
  ns: string,
  pod: string,
  container: string,
): Promise<string> {
  const p = await env.core.readNamespacedPod({ namespace: ns, name: pod });
  const id = p.status?.containerStatuses?.find((c) => c.name === container)?.containerID;
  if (!id?.startsWith("cri-o://"))
    throw new Error(`${ns}/${pod}/${container} has no CRI-O container (${id})`);
  return id.slice("cri-o://".length);
}

/**
 * When CRI-O restored this container from a checkpoint (its status info `checkpointedAt`), or
 * undefined for a container it started fresh: the runtime's own word that the process is the
 * checkpointed one, not a cold start.
 */
export async function restoredFromCheckpointAt(
  env: StackEnv,
  node: string,
  id: string,
): Promise<Date | undefined> {
  const out = JSON.parse(await env.cluster.realNode(node).crictl(["inspect", id])) as {
    info?: { checkpointedAt?: string };
  };
  const at = out.info?.checkpointedAt;
  if (!at || at.startsWith("0001-01-01")) return undefined;
  return new Date(at);
}

/** How many times CRI-O on `node` checkpointed the container `id` (its "Checkpointed container" log lines). */
export async function crioCheckpoints(env: StackEnv, node: string, id: string): Promise<number> {
  const log = await readFile(join(env.cluster.realNode(node).dir, "crio.log"), "utf8").catch(() => "");
  return log.split("\n").filter((l) => l.includes(`Checkpointed container: ${id}`)).length;
}

/** Lines of a container's log, as pino JSON objects (other lines skipped). */
export async function jsonLog(
  env: StackEnv,
  node: string,
  ns: string,
  pod: string,
  container: string,
): Promise<Record<string, unknown>[]> {
  const text = await env.cluster.realNode(node).containerLog(ns, pod, container);
  return text.split("\n").flatMap((l) => {
    try {
      const v = JSON.parse(l) as unknown;
      return v && typeof v === "object" ? [v as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

export function expectNoLoss(report: {
  lost: number[];
  appliedTwice: number[];
  checksumOk: boolean;
  published: number;
  processed: number;
}) {
  expect(report.lost).toEqual([]);
  expect(report.appliedTwice).toEqual([]);
  expect(report.checksumOk).toBe(true);
  expect(report.processed).toBe(report.published);
}

/** Waits until the workload's pods (terminating ones included) are exactly `names`. */
export async function waitForPodsExactly(
  env: StackEnv,
  ns: string,
  app: string,
  names: string[],
): Promise<void> {
  await waitFor(
    `pods of ${app} = ${names.join(", ")}`,
    async () => {
      const list = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
      const got = list.items.map((p) => p.metadata?.name ?? "").sort();
      return JSON.stringify(got) === JSON.stringify([...names].sort()) ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}
