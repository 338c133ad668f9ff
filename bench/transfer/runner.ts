// Where the send side runs: the source node's ms2m-agent vs a transfer Job, side by side on one
// local cluster (real control plane with kube-controller-manager's Job controller, simulated
// node-a and node-b, ms2m deployed from config/), the same archive, interleaved per repetition.
//
//   node bench/transfer/runner.ts [--sizes 1,64] [--reps 5] [--modes Direct,Registry]
//
// Each measurement is what the controller's Transferring phase waits for, made with the
// controller's own adapters: AgentTransfer (POST /v1/send to node-a's agent) and JobTransfer (a
// Job pinned to node-a running the agent image's `send`, created, polled every 50 ms as the
// controller's Job watch would see it, result read from the termination message, Job deleted).
// "transfer starts" = the adapter is called; "image usable" = Direct: loaded and verified in
// node-b's containers-storage; Registry: pushed (the target pulls in Restoring either way).
// Both read the same archive bytes: a CRI-O-shaped archive in node-a's checkpoints folder, hard
// linked under a fresh kubelet name per agent send (the agent deletes archives it did not record).
// Run twice: simulated kubelet latencies 0 (pure mechanism) and REAL_CLUSTER_LATENCIES (image
// pull 1.5 s, container start 0.6 s, as measured on bare metal): the Job pays the container start
// on every transfer; the agent image is already on the node (the first Job on a node that never
// ran the agent would also pay the image pull).
import { linkSync, mkdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { REAL_CLUSTER_LATENCIES, type Latencies } from "../../sim/config.ts";
import { writeFakeCheckpointArchive } from "../../src/checkpoint/fake-archive.ts";
import { AgentLocator, AgentTransfer } from "../../src/controller/adapters/agent.ts";
import { JobTransfer } from "../../src/controller/adapters/transfer-job/transfer.ts";
import type { TransferRequest } from "../../src/controller/ports.ts";
import { TransferInProgress } from "../../src/controller/adapters/transfer-job/jobs.ts";
import { AGENT_SERVER_NAME, AgentClient } from "../../src/transfer/client.ts";
import { startLocalCluster } from "../../tooling/cluster/local-cluster.ts";
import { sleep } from "../../tooling/exec.ts";
import {
  AGENT_IMAGE,
  SYSTEM_NS,
  deployMs2m,
  serviceAccountToken,
  stackEnv,
  startRegistry,
  workDir,
} from "../../tooling/stack/index.ts";

const { values: args } = parseArgs({
  options: {
    sizes: { type: "string", default: "1,64" },
    reps: { type: "string", default: "5" },
    modes: { type: "string", default: "Direct,Registry" },
  },
});
const sizes = args.sizes.split(",").map(Number);
const reps = Number(args.reps);
const modes = args.modes.split(",") as ("Direct" | "Registry")[];
if (sizes.some((s) => !(s > 0)) || !(reps >= 1) || modes.some((m) => m !== "Direct" && m !== "Registry"))
  throw new Error("usage: --sizes 1,64 --reps 5 --modes Direct,Registry");
const MB = 1024 * 1024;
const NS = "bench";
const POD = "consumer-0";
const CONTAINER = "app";

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const stamp = (i: number) =>
  new Date(Date.UTC(2025, 0, 1, 0, 0, 0) + i * 1000).toISOString().replace(".000Z", "Z");
const archiveName = (i: number) => `checkpoint-${POD}_${NS}-${CONTAINER}-${stamp(i)}.tar`;

const cleanups: (() => Promise<void>)[] = [];
async function cleanup(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => console.error("cleanup:", e));
}
let stopping = false;
process.on("SIGINT", () => {
  stopping = true;
  void cleanup().then(() => process.exit(130));
});

try {
  const t0 = Date.now();
  process.stderr.write("starting the local control plane, node-a and node-b…\n");
  const local = await startLocalCluster();
  cleanups.push(() => local.stop());
  const { cluster } = local;
  const env = { ...stackEnv(cluster.info), cluster };
  const registry = await startRegistry(env.hostIp);
  cleanups.push(() => registry.stop());
  const work = await workDir("bench-runner");
  const { caFile } = await deployMs2m(env, work);
  process.stderr.write(`cluster and ms2m ready in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);

  const token = await serviceAccountToken(env.kc, SYSTEM_NS, "ms2m-controller", ["ms2m-agent"]);
  const client = new AgentClient({
    ca: readFileSync(caFile),
    servername: AGENT_SERVER_NAME,
    token: () => token,
  });
  const locator = new AgentLocator(env.kc, {
    namespace: SYSTEM_NS,
    labelSelector: "app.kubernetes.io/name=ms2m-agent",
    port: 9443,
  });
  const viaAgent = new AgentTransfer(client, locator);
  const viaJob = new JobTransfer(
    env.kc,
    {
      namespace: SYSTEM_NS,
      image: AGENT_IMAGE,
      serviceAccountName: "ms2m-transfer",
      caSecretName: "ms2m-agent-tls",
      insecureRegistries: [env.registry],
      ttlSecondsAfterFinished: 600,
      backoffLimit: 0,
      activeDeadlineSeconds: 300,
      checkpointsDir: "/var/lib/kubelet/checkpoints",
    },
    locator,
  );
  const checkpoints = cluster.node("node-a").hostPath("/var/lib/kubelet/checkpoints");
  mkdirSync(checkpoints, { recursive: true });

  let serial = 0;
  const rows: string[] = [];
  const latencies = {
    zero: { imagePullMs: 0, containerStartMs: 0, readinessMs: 0, restoreMs: 0, checkpointMs: 0 },
    real: REAL_CLUSTER_LATENCIES,
  } satisfies Record<string, Partial<Latencies>>;
  type LatencyName = keyof typeof latencies;
  interface Series {
    agent: number[];
    job: number[];
    // The Job's stages, seconds after the transfer started: its pod exists, its container
    // runs, its container has exited (the rest is the Job controller + our read and delete).
    created: number[];
    running: number[];
    exited: number[];
  }
  const newSeries = (): Series => ({ agent: [], job: [], created: [], running: [], exited: [] });

  /** One transfer through the runner; returns seconds (and the Job's stages). */
  async function once(
    runner: "agent" | "job",
    mode: "Direct" | "Registry",
    original: string,
    tag: string,
    out: Series,
  ): Promise<void> {
    const image =
      mode === "Direct"
        ? `localhost/ms2m-bench/${NS}-${POD}:${tag}`
        : `${env.registry}/ms2m-bench/ckpt:${tag}`;
    // A fresh kubelet name for the agent (it removes an archive it did not record); the Job only
    // reads (its mount is read-only), so it gets the same file each time.
    let archive = original;
    if (runner === "agent") {
      archive = join(checkpoints, archiveName(serial++));
      linkSync(original, archive);
    }
    const req: TransferRequest = {
      mode,
      namespace: NS,
      pod: POD,
      container: CONTAINER,
      sourceNode: "node-a",
      targetNode: "node-b",
      archivePath: `/var/lib/kubelet/checkpoints/${archive.slice(checkpoints.length + 1)}`,
      image,
      // A migration UID per send: one Job name each, as in separate migrations.
      key: `${crypto.randomUUID()}/${CONTAINER}`,
    };
    if (stopping) throw new Error("interrupted");
    const started = performance.now();
    if (runner === "agent") {
      await viaAgent.transfer(req);
      out.agent.push((performance.now() - started) / 1000);
      return;
    }
    const seen: { created?: number; running?: number; exited?: number } = {};
    const uid = req.key.split("/")[0]!;
    for (;;) {
      try {
        await viaJob.transfer(req);
        break;
      } catch (err) {
        if (!(err instanceof TransferInProgress)) throw err;
      }
      const pods = await env.core.listNamespacedPod({
        namespace: SYSTEM_NS,
        labelSelector: `migration.ms2m.io/migration-uid=${uid}`,
      });
      const now = (performance.now() - started) / 1000;
      const state = pods.items[0]?.status?.containerStatuses?.[0]?.state;
      if (pods.items.length > 0) seen.created ??= now;
      if (state?.running || state?.terminated) seen.running ??= now;
      if (state?.terminated) seen.exited ??= now;
      await sleep(50);
    }
    out.job.push((performance.now() - started) / 1000);
    for (const k of ["created", "running", "exited"] as const)
      if (seen[k] !== undefined) out[k].push(seen[k]);
  }

  for (const size of sizes) {
    const original = join(checkpoints, archiveName(serial++));
    await writeFakeCheckpointArchive(original, { size: size * MB, containerName: CONTAINER, seed: serial });
    for (const mode of modes) {
      const series: Record<LatencyName, Series> = { zero: newSeries(), real: newSeries() };
      // Interleaved: latency setting and runner order alternate per repetition, so the drift of
      // a shared machine's load hits every column alike.
      for (let rep = 0; rep < reps; rep++) {
        const lats: LatencyName[] = rep % 2 ? ["real", "zero"] : ["zero", "real"];
        for (const [i, lat] of lats.entries()) {
          for (const n of cluster.nodeNames()) await cluster.node(n).setLatencies(latencies[lat]);
          const runners = (rep + i) % 2 ? (["job", "agent"] as const) : (["agent", "job"] as const);
          for (const runner of runners) {
            await once(
              runner,
              mode,
              original,
              `${runner}-${lat}-${size}-${mode.toLowerCase()}-${rep}`,
              series[lat],
            );
          }
        }
      }
      for (const lat of ["zero", "real"] as const) {
        const x = series[lat];
        const a = median(x.agent);
        const j = median(x.job);
        const st = (k: "created" | "running" | "exited") => (x[k].length ? median(x[k]).toFixed(2) : "–");
        const row = `| ${lat === "zero" ? "0 (mechanism only)" : "REAL_CLUSTER_LATENCIES"} | ${mode} | ${size} MB | ${a.toFixed(2)} s | ${j.toFixed(2)} s | +${(j - a).toFixed(2)} s | ${(j / a).toFixed(1)}x | ${st("created")} / ${st("running")} / ${st("exited")} | ${x.agent.map((v) => v.toFixed(2)).join(" ")} | ${x.job.map((v) => v.toFixed(2)).join(" ")} |`;
        rows.push(row);
        process.stderr.write(`${row}\n`);
      }
    }
  }
  console.log(
    `\nsend side: agent vs transfer Job, ${reps} repetitions each (interleaved), medians; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(" ")}\n`,
  );
  console.log(
    "| kubelet latencies | mode | archive | agent (median) | Job (median) | Job − agent | Job / agent | Job pod created / running / exited at (median s) | agent runs (s) | Job runs (s) |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) console.log(r);
} finally {
  await cleanup();
}
