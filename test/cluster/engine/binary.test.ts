import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, sleep, waitFor } from "../../../tooling/exec.ts";
import { mustSucceed, repoPath } from "../../../tooling/stack/manifests.ts";
import { SYSTEM_NS, controllerKubeConfig, engineEnv, installApi, randomSuffix } from "./env.ts";

// The real binary, `node cmd/ms2m-controller/main.ts`, acting as the ms2m-controller ServiceAccount
// with leader election on: two replicas, health/readiness/metrics, SIGTERM.
const env = engineEnv();
const LEASE = `engine-bin-${randomSuffix()}`;
let dir: string;
let kubeconfig: string;

interface Replica {
  name: string;
  child: ChildProcess;
  health: number;
  metrics: number;
  output: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  spawnedAt: number;
}
const replicas: Replica[] = [];

async function startReplica(name: string): Promise<Replica> {
  const health = await freePort();
  const metrics = await freePort();
  const spawnedAt = Date.now();
  const child = spawn(process.execPath, [repoPath("cmd/ms2m-controller/main.ts")], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      KUBECONFIG: kubeconfig,
      POD_NAMESPACE: SYSTEM_NS,
      POD_NAME: name,
      LEADER_ELECT: "true",
      LEADER_ELECTION_LEASE_NAME: LEASE,
      HEALTH_PORT: String(health),
      METRICS_PORT: String(metrics),
      CHECKPOINT_MODE: "disabled",
      MANAGE_AGENT_TLS: "false",
      LOG_LEVEL: "info",
    },
  });
  const r: Replica = {
    name,
    child,
    health,
    metrics,
    output: "",
    spawnedAt,
    exited: new Promise((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal, at: Date.now() })),
    ),
  };
  const keep = (d: Buffer) => (r.output = (r.output + d.toString()).slice(-20_000));
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  replicas.push(r);
  return r;
}

const running = (r: Replica) => r.child.exitCode === null && r.child.signalCode === null;

async function status(port: number, path: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`).catch(() => undefined);
  await res?.body?.cancel();
  return res?.status;
}

/** Time from spawn to /readyz 200, and the answers /readyz gave before. */
async function waitReady(r: Replica): Promise<{ ms: number; before: Set<number> }> {
  const before = new Set<number>();
  await waitFor(
    `${r.name} ready`,
    async () => {
      if (!running(r)) throw new Error(`${r.name} exited:\n${r.output}`);
      const code = await status(r.health, "/readyz");
      if (code === 200) return true;
      if (code !== undefined) before.add(code);
      return undefined;
    },
    // Generous: on a loaded 2-core machine the informers' first lists alone have taken 30 s.
    { timeoutMs: 90_000, intervalMs: 10 },
  );
  return { ms: Date.now() - r.spawnedAt, before };
}

async function holder(): Promise<string> {
  const res = await env.kubectl([
    "-n",
    SYSTEM_NS,
    "get",
    "lease",
    LEASE,
    "-o",
    "jsonpath={.spec.holderIdentity}",
  ]);
  return res.code === 0 ? res.stdout : "";
}

const identity = (r: Replica) => `${r.name}_${r.child.pid}`;

beforeAll(async () => {
  await installApi(env);
  dir = await mkdtemp(join(tmpdir(), "ms2m-engine-bin-"));
  kubeconfig = join(dir, "controller.kubeconfig");
  await writeFile(kubeconfig, (await controllerKubeConfig(env)).exportConfig(), { mode: 0o600 });
});

afterAll(async () => {
  for (const r of replicas) if (running(r)) r.child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
  await env.coordination.deleteNamespacedLease({ name: LEASE, namespace: SYSTEM_NS }).catch(() => undefined);
});

describe("the controller binary", () => {
  it("becomes ready and leads, serves health and metrics, hands the Lease over on SIGTERM", async () => {
    const a = await startReplica("engine-a");
    // The HTTP server is up before the informers: /readyz says 503 until their caches synced.
    const { ms: readyMs, before } = await waitReady(a);
    expect([...before]).toEqual([503]);
    const leadMs =
      (await waitFor("engine-a to lead", async () => ((await holder()) === identity(a) ? true : undefined), {
        timeoutMs: 15_000,
        intervalMs: 50,
      })) && Date.now() - a.spawnedAt;
    console.log(`[engine] controller binary: start to ready ${readyMs} ms, start to leading ${leadMs} ms`);
    expect(a.output).toContain("informers synced");
    expect(a.output).toContain("became leader");

    expect(await status(a.health, "/healthz")).toBe(200);
    expect(await status(a.health, "/metrics")).toBe(404);
    const body = await (await fetch(`http://127.0.0.1:${a.metrics}/metrics`)).text();
    for (const name of [
      "workqueue_depth",
      "workqueue_adds_total",
      "workqueue_retries_total",
      "controller_runtime_reconcile_total",
      "controller_runtime_reconcile_time_seconds",
      "controller_runtime_reconcile_errors_total",
      "ms2m_phase_duration_seconds",
      "ms2m_migrations_total",
      "ms2m_migrations_in_flight",
    ])
      expect(body, name).toContain(`# TYPE ${name} `);

    // A second replica is ready (caches synced) but does not lead.
    const b = await startReplica("engine-b");
    await waitReady(b);
    await sleep(2500);
    expect(await holder()).toBe(identity(a));
    expect(b.output).not.toContain("became leader");

    // SIGTERM: a exits 0 within a few seconds, releases the Lease, b takes over at once.
    const t0 = Date.now();
    a.child.kill("SIGTERM");
    const exit = await Promise.race([a.exited, sleep(10_000).then(() => undefined)]);
    expect(exit, `a did not exit:\n${a.output}`).toBeDefined();
    const exitMs = exit!.at - t0;
    expect(exit!.code).toBe(0);
    expect(a.output).toContain("shutting down");
    expect(a.output).not.toContain("could not release the lease");
    await waitFor("engine-b to lead", async () => ((await holder()) === identity(b) ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    const takeoverMs = Date.now() - t0;
    console.log(
      `[engine] SIGTERM: exited after ${exitMs} ms, the other replica leads ${takeoverMs} ms after it`,
    );
    expect(exitMs).toBeLessThan(5000);
    // Well under the 15 s lease duration: the lease was released, not left to expire.
    expect(takeoverMs).toBeLessThan(8000);

    const t1 = Date.now();
    b.child.kill("SIGTERM");
    const exitB = await b.exited;
    expect(exitB.code).toBe(0);
    expect(exitB.at - t1).toBeLessThan(5000);
    const lease = mustSucceed(
      await env.kubectl([
        "-n",
        SYSTEM_NS,
        "get",
        "lease",
        LEASE,
        "-o",
        "jsonpath={.spec.holderIdentity}/{.spec.leaseTransitions}",
      ]),
      "kubectl get lease",
    );
    expect(lease).toBe("/1");
  }, 240_000);
});
