import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { readFile } from "node:fs/promises";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import { mustSucceed, repoPath } from "../../../tooling/stack/manifests.ts";
import {
  AGENT_IMAGE,
  CONSUMER_IMAGE,
  ControllerProcess,
  SYSTEM_NS,
  controllerOf,
  controllerTestEnv,
  createDeployment,
  createMigration,
  createNamespace,
  deployMs2m,
  finalAccounting,
  getMigration,
  livePods,
  startRegistry,
  stopper,
  TestProducer,
  waitForConsumers,
  waitForPhase,
  workDir,
  workloadNames,
} from "./env.ts";

// The transfer Job fallback: the source node (node-c) runs no Ready ms2m-agent, so the controller
// checkpoints through the API server's node proxy (CHECKPOINT_MODE=auto with
// config/components/node-proxy-fallback) and sends the archive with a Job pinned to node-c that
// runs the agent image's `send` (MS2M_TRANSFER_RUNNER=auto): Direct into node-b's agent, or
// pushed to the registry. Whole ShadowPod migrations under load, zero lost, zero applied twice;
// a Job that fails with a refusal fails the migration with its reason and rolls back. Either way
// cleanup Jobs (the agent image's `cleanup`) then delete the archive from node-c and the image
// the send Job pushed from the registry, and no Job of the migration is left.
vi.setConfig({ testTimeout: 150_000 });
const env = controllerTestEnv();
const SOURCE = "node-c";
let work: string;
let controller: ControllerProcess;
let registry: { stop(): Promise<void> } | undefined;
let refusing: Server | undefined;
let refusingHost = "";
let ns: string;
let fallbackRbac = "";

beforeAll(async () => {
  work = await workDir("ctl-xferjob");
  registry = await startRegistry(env.hostIp);
  // A "registry" that refuses every push (403), for the failure case.
  refusing = createServer((_req, res) => {
    res.writeHead(403, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: [{ code: "DENIED", message: "push refused by test" }] }));
  });
  await new Promise<void>((resolve) => refusing!.listen(0, env.hostIp, resolve));
  const addr = refusing.address();
  refusingHost = `${env.hostIp}:${typeof addr === "object" && addr ? addr.port : 0}`;
  const { caFile } = await deployMs2m(env, work);
  fallbackRbac = await readFile(repoPath("config/components/node-proxy-fallback/role.yaml"), "utf8");
  mustSucceed(await env.kubectl(["apply", "-f", "-"], fallbackRbac), "apply node-proxy-fallback");
  // node-c: the DaemonSet's agent pod runs there but never serves (never Ready).
  await env.cluster.startNode(SOURCE, {
    images: {
      [AGENT_IMAGE]: { command: [process.execPath, repoPath("test/cluster/controller/no-agent-entry.ts")] },
      [CONSUMER_IMAGE]: { command: [process.execPath, repoPath("tooling/stack/workload-entry.ts")] },
    },
  });
  controller = new ControllerProcess(env, work, caFile, {
    CHECKPOINT_MODE: "auto",
    MS2M_TRANSFER_RUNNER: "auto",
    TRANSFER_JOB_IMAGE: AGENT_IMAGE,
    TRANSFER_JOB_INSECURE_REGISTRIES: `${env.registry},${refusingHost}`,
    // Finished cleanup Jobs are nobody's to delete: expired soon, so "no Job left" can be awaited.
    TRANSFER_JOB_CLEANUP_TTL_SECONDS: "2",
  });
  await controller.start();
  ns = await createNamespace(env, "xferjob");
});

afterFile(async (failed) => {
  await controller?.stop();
  await env.kubectl(["delete", "--ignore-not-found", "-f", "-"], fallbackRbac);
  if (ns) await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
  await env.cluster.stopNode(SOURCE).catch(() => undefined);
  await registry?.stop();
  await new Promise((resolve) => refusing?.close(resolve));
  await removeTempDir(work, { keep: failed });
});

async function transferJobs(uid: string) {
  const batch = env.kc.makeApiClient((await import("@kubernetes/client-node")).BatchV1Api);
  const jobs = await batch.listNamespacedJob({
    namespace: SYSTEM_NS,
    labelSelector: `migration.ms2m.io/migration-uid=${uid}`,
  });
  return jobs.items;
}

/** Waits until every Job of the migration is gone; fails at once on a failed cleanup Job. */
async function noJobLeft(uid: string): Promise<void> {
  await waitFor(
    "no transfer or cleanup Job left",
    async () => {
      const jobs = await transferJobs(uid);
      const failed = jobs.find(
        (j) =>
          j.metadata?.labels?.["app.kubernetes.io/component"] === "cleanup" && (j.status?.failed ?? 0) > 0,
      );
      if (failed)
        throw new Error(`cleanup Job ${failed.metadata?.name} failed: ${JSON.stringify(failed.status)}`);
      return jobs.length === 0 ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
}

/** The checkpoint archive on the source node (the kubelet's path in the node's folder). */
const archiveOnSource = (path: string | undefined) => env.cluster.node(SOURCE).hostPath(path ?? "/");

async function manifestStatus(image: string): Promise<number> {
  const [, host, repo, tag] = /^([^/]+)\/(.+):([^:]+)$/.exec(image) ?? [];
  const res = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: "HEAD",
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  return res.status;
}

/** The cleanup Jobs the migration's CheckpointCleanupJob Events name, sorted. */
const cleanupJobsIn = (events: string[]) =>
  [
    ...new Set(
      events.flatMap((e) =>
        e.startsWith("CheckpointCleanupJob:") ? [/Job (ms2m-cleanup-\S+)/.exec(e)?.[1] ?? e] : [],
      ),
    ),
  ].sort();

async function jobEvents(name: string): Promise<string[]> {
  const events = await env.core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: `involvedObject.name=${name}`,
  });
  return events.items.map((e) => `${e.reason}: ${e.message}`);
}

async function start(
  label: string,
  spec: { transferMode: "Direct" | "Registry"; checkpointImageRepository?: string },
) {
  const w = workloadNames(ns, label, work);
  await createDeployment(env, ns, w, SOURCE);
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const producer = new TestProducer(env, w, 40);
  await producer.start();
  await sleep(1_000);
  const name = `m-${label}`;
  const created = await createMigration(env, ns, name, w, {
    sourcePod: source?.metadata?.name ?? "",
    targetNode: "node-b",
    ...spec,
  });
  return { w, name, producer, source: source!, uid: created.metadata.uid ?? "" };
}

describe("source node without an agent", () => {
  it.each(["Direct", "Registry"] as const)(
    "%s: a transfer Job sends the archive; completes, zero lost, no Job left",
    async (mode) => {
      const run = await start(`job-${mode.toLowerCase()}`, { transferMode: mode });
      const m = await waitFor(
        "completed",
        async () => {
          const x = await getMigration(env, ns, run.name);
          if (x?.status?.phase === "Failed") throw new Error(JSON.stringify(x.status.failure));
          return x?.status?.phase === "Completed" ? x : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 100 },
      );
      console.log(
        `[timings] transfer Job ${mode}`,
        JSON.stringify(m.status?.phaseTimings),
        m.status?.duration,
      );
      const c = m.status?.containers?.[0];
      expect(c?.checkpointVia).toBe("NodeProxy");
      expect(c?.transferred).toBe(true);
      expect(c?.checkpointDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
      if (mode === "Direct") expect(c?.checkpointImage).toMatch(/^localhost\/ms2m-checkpoint\//);
      else expect(c?.checkpointImage).toContain(`${env.registry}/ms2m/checkpoints:`);
      const events = await jobEvents(run.name);
      expect(events.some((e) => e.startsWith("TransferJobStarted:") && e.includes(SOURCE))).toBe(true);
      const target = await env.core.readNamespacedPod({ namespace: ns, name: m.status?.targetPod ?? "" });
      expect(target.spec?.nodeName).toBe("node-b");
      expect(controllerOf(target)?.kind).toBe("ReplicaSet");
      // The send Job is deleted by the controller once read (Background propagation: its pod
      // follows); the cleanup Jobs delete what it left behind, then expire.
      await noJobLeft(run.uid);
      expect(existsSync(archiveOnSource(c?.checkpointPath))).toBe(false);
      if (mode === "Registry") expect(await manifestStatus(c?.checkpointImage ?? "")).toBe(404);
      const after = await jobEvents(run.name);
      expect(cleanupJobsIn(after)).toEqual(
        mode === "Registry"
          ? [expect.stringMatching(/^ms2m-cleanup-[a-z0-9]{12}$/), expect.stringMatching(/-node-c$/)]
          : [expect.stringMatching(/-node-c$/)],
      );
      expect(after.some((e) => e.includes(`ms2m-cleanup-`) && e.includes(SOURCE))).toBe(true);
      expect(after.filter((e) => e.startsWith("CheckpointArtifactKept:"))).toEqual([]);
      const report = await finalAccounting(
        env,
        ns,
        run.w,
        run.producer,
        stopper(env, ns, "deploy", run.w.name),
      );
      console.log(
        `[accounting] transfer Job ${mode}`,
        JSON.stringify({ ...report, lost: report.lost.length }),
      );
      expect(report.lost).toEqual([]);
      expect(report.appliedTwice).toEqual([]);
      expect(report.ok).toBe(true);
    },
  );

  it("a Job that fails (registry refuses the push) fails the migration with its reason, rolls back, no Job left", async () => {
    const run = await start("job-refused", {
      transferMode: "Registry",
      checkpointImageRepository: `${refusingHost}/ms2m/checkpoints`,
    });
    const m = await waitForPhase(env, ns, run.name, ["Failed", "Completed"], 90_000, 100).catch(
      async () => (await getMigration(env, ns, run.name))!,
    );
    expect(m.status?.phase).toBe("Failed");
    expect(m.status?.failure?.phase).toBe("Transferring");
    expect(m.status?.failure?.reason).toBe("TransferFailed");
    expect(m.status?.failure?.message).toMatch(
      /transfer Job ms2m-transfer-[a-z0-9]+-consumer on node-c failed: Forbidden/,
    );
    expect(m.status?.failure?.message).toContain("403");
    expect(m.status?.conditions?.find((x) => x.type === "RolledBack")?.status).toBe("True");
    // The archive the refused send left on node-c is deleted by a cleanup Job (nothing was pushed).
    const archive = m.status?.containers?.[0]?.checkpointPath;
    expect(archive).toMatch(/^\/var\/lib\/kubelet\/checkpoints\/checkpoint-/);
    await noJobLeft(run.uid);
    expect(existsSync(archiveOnSource(archive))).toBe(false);
    const events = await jobEvents(run.name);
    expect(cleanupJobsIn(events)).toEqual([expect.stringMatching(/-node-c$/)]);
    expect(events.filter((e) => e.startsWith("CheckpointArtifactKept:"))).toEqual([]);
    const pods = await waitFor("source alone", async () => {
      const live = await livePods(env, ns, run.w.name);
      return live.length === 1 ? live : undefined;
    });
    expect(pods[0]?.metadata?.uid).toBe(run.source.metadata?.uid);
    const report = await finalAccounting(
      env,
      ns,
      run.w,
      run.producer,
      stopper(env, ns, "deploy", run.w.name),
    );
    expect(report.lost).toEqual([]);
    expect(report.appliedTwice).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
