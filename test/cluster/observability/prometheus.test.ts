import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";
import {
  ControllerProcess,
  controllerTestEnv,
  createDeployment,
  createMigration,
  createNamespace,
  deployMs2m,
  stopper,
  TestProducer,
  waitForCompletion,
  waitForConsumers,
  workDir,
  workloadNames,
} from "../controller/env.ts";
import { freePort, sleep, waitFor } from "../../../tooling/exec.ts";
import { ManagedProcess } from "../../../tooling/process.ts";

// The real Prometheus (Debian's binary) scraping the controller's /metrics and the agents'
// /metrics (HTTPS 9443 in the node namespaces, verified with the agents' CA) during a real
// migration; its HTTP API must then hold the phase histograms with their labels, the migration
// counter and the agents' transfer metrics.
vi.setConfig({ testTimeout: 120_000 });
const env = controllerTestEnv();
let work: string;
let controller: ControllerProcess;
let prometheus: ManagedProcess;
let promUrl: string;
let promPort: number;
let ns: string;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(q: string): Promise<Sample[]> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = (await res.json()) as { status: string; data: { result: Sample[] } };
  if (body.status !== "success") throw new Error(`query ${q}: ${JSON.stringify(body)}`);
  return body.data.result;
}

/** Waits until the query has a result for which `ok` holds (Prometheus scrapes every second). */
const queryUntil = (q: string, ok: (r: Sample[]) => boolean) =>
  waitFor(
    `prometheus: ${q}`,
    async () => {
      const r = await query(q);
      return ok(r) ? r : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 500 },
  );

beforeAll(async () => {
  work = await workDir("prometheus");
  const { caFile } = await deployMs2m(env, work);
  controller = new ControllerProcess(env, work, caFile);
  await controller.start();
  ns = await createNamespace(env, "prom");

  const agents = env.cluster.info.nodes.map((n) => `${n.ip}:9443`);
  const config = [
    "global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }",
    "scrape_configs:",
    "  - job_name: ms2m-controller",
    `    static_configs: [{ targets: ["127.0.0.1:${controller.metricsPort}"] }]`,
    "  - job_name: ms2m-agent",
    "    scheme: https",
    `    tls_config: { ca_file: ${caFile} }`,
    `    static_configs: [{ targets: ${JSON.stringify(agents)} }]`,
    "",
  ].join("\n");
  await mkdir(join(work, "prometheus"), { recursive: true });
  await writeFile(join(work, "prometheus.yml"), config);
  promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  prometheus = new ManagedProcess("prometheus", join(work, "prometheus.log"));
  await prometheus.start(
    "prometheus",
    [
      `--config.file=${join(work, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(work, "prometheus")}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      "--log.level=warn",
    ],
    join(work, "pids"),
  );
  await waitFor(
    "prometheus ready",
    async () => {
      if (!prometheus.running) throw new Error(`prometheus exited:\n${await prometheus.tail()}`);
      const res = await fetch(`${promUrl}/-/ready`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
});

afterFile(async (failed) => {
  await prometheus?.stop();
  await controller?.stop();
  if (ns) await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
  await removeTempDir(work, { keep: failed });
});

it("listens on 127.0.0.1 only", async () => {
  const onBridge = await fetch(`http://${env.hostIp}:${promPort}/-/ready`).then(
    () => "reachable",
    () => "refused",
  );
  expect(onBridge).toBe("refused");
});

it("scrapes the controller and every agent (HTTPS, agent CA)", async () => {
  const up = await queryUntil(
    "up",
    (r) => r.length === 1 + env.cluster.info.nodes.length && r.every((s) => s.value[1] === "1"),
  );
  expect(up.map((s) => s.metric.job).sort()).toEqual(["ms2m-agent", "ms2m-agent", "ms2m-controller"]);
});

it("has the phase histograms, the migration counter and the agents' transfer metrics after a migration", async () => {
  const w = workloadNames(ns, "prom-dep", work);
  await createDeployment(env, ns, w, "node-a");
  const [source] = await waitForConsumers(env, ns, w.name, 1);
  const producer = new TestProducer(env, w, 20);
  await producer.start();
  await sleep(1_000);
  await createMigration(env, ns, "m-prom", w, {
    sourcePod: source?.metadata?.name ?? "",
    targetNode: "node-b",
    transferMode: "Direct",
  });
  await waitForCompletion(env, ns, "m-prom");
  await producer.stop();
  await stopper(env, ns, "deploy", w.name)();

  const phases = ["Pending", "Checkpointing", "Transferring", "Restoring", "Replaying", "Finalizing"];
  const hist = await queryUntil(
    'ms2m_phase_duration_seconds_count{strategy="ShadowPod",transfer_mode="Direct"}',
    (r) => phases.every((p) => r.some((s) => s.metric.phase === p && Number(s.value[1]) >= 1)),
  );
  for (const s of hist) {
    expect(s.metric).toMatchObject({
      job: "ms2m-controller",
      strategy: "ShadowPod",
      transfer_mode: "Direct",
    });
    expect(phases).toContain(s.metric.phase);
  }
  // Every phase also has its _sum and _bucket series (the histogram, not just a counter).
  const sums = await query('ms2m_phase_duration_seconds_sum{strategy="ShadowPod",transfer_mode="Direct"}');
  expect(
    sums
      .filter((s) => Number(s.value[1]) > 0)
      .map((s) => s.metric.phase)
      .sort(),
  ).toEqual([...phases].sort());
  const inf = await query(
    'ms2m_phase_duration_seconds_bucket{phase="Transferring",strategy="ShadowPod",transfer_mode="Direct",le="+Inf"}',
  );
  expect(Number(inf[0]?.value[1])).toBeGreaterThanOrEqual(1);

  // The result label is "succeeded" (src/common/metrics.ts: succeeded, failed, cancelled).
  const total = await queryUntil('ms2m_migrations_total{result="succeeded"}', (r) => r.length === 1);
  expect(Number(total[0]?.value[1])).toBeGreaterThanOrEqual(1);
  const duration = await query(
    'ms2m_migration_duration_seconds_count{strategy="ShadowPod",transfer_mode="Direct",result="succeeded"}',
  );
  expect(Number(duration[0]?.value[1])).toBeGreaterThanOrEqual(1);

  // The agents: the source sent the checkpoint directly, the target received it.
  const nodeB = env.cluster.node("node-b").ip;
  const nodeA = env.cluster.node("node-a").ip;
  const received = await queryUntil(
    'ms2m_agent_transfer_bytes_total{job="ms2m-agent",operation="receive"}',
    (r) => r.some((s) => Number(s.value[1]) > 0),
  );
  expect(received.some((s) => s.metric.instance === `${nodeB}:9443` && Number(s.value[1]) > 0)).toBe(true);
  const sent = await query(
    'ms2m_agent_transfer_duration_seconds_count{job="ms2m-agent",operation="send_direct"}',
  );
  expect(sent.some((s) => s.metric.instance === `${nodeA}:9443` && Number(s.value[1]) >= 1)).toBe(true);
});
