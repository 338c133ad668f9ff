// The controller binary on the host, acting as its ServiceAccount.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { freePort, waitFor } from "../exec.ts";
import { repoPath } from "./manifests.ts";
import { ManagedProcess } from "../process.ts";
import { type ControllerTestEnv, SYSTEM_NS, serviceAccountToken } from "./env.ts";

/** The controller binary (`node cmd/ms2m-controller/main.ts`) with the ms2m-controller ServiceAccount's tokens. */
export class ControllerProcess {
  readonly env: ControllerTestEnv;
  readonly dir: string;
  readonly caFile: string;
  readonly extraEnv: Record<string, string>;
  proc: ManagedProcess | undefined;
  starts = 0;
  /** Where its pid is recorded (default <dir>/pids; the slot's pid file makes `make cluster-down` sweep it). */
  pidFile: string;
  /** The ports of the running process (loopback): /healthz and /readyz, and /metrics. */
  healthPort = 0;
  metricsPort = 0;
  /** The eviction webhook's port on the cluster's host address (kept across restarts). */
  webhookPort = 0;
  /** The binary's entry point (another checkout's, to compare two versions side by side). */
  entry = repoPath("cmd/ms2m-controller/main.ts");

  constructor(env: ControllerTestEnv, dir: string, caFile: string, extraEnv: Record<string, string> = {}) {
    this.env = env;
    this.dir = dir;
    this.caFile = caFile;
    this.extraEnv = extraEnv;
    this.pidFile = join(dir, "pids");
  }

  async start(): Promise<void> {
    const admin = this.env.kc;
    const kubeToken = await serviceAccountToken(admin, SYSTEM_NS, "ms2m-controller");
    const agentToken = await serviceAccountToken(admin, SYSTEM_NS, "ms2m-controller", ["ms2m-agent"]);
    const cluster = admin.getCurrentCluster();
    if (!cluster) throw new Error("no cluster");
    const kubeconfig = join(this.dir, "controller.kubeconfig");
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [cluster],
      users: [{ name: "ms2m-controller", token: kubeToken }],
      contexts: [{ name: "ms2m-controller", cluster: cluster.name, user: "ms2m-controller" }],
      currentContext: "ms2m-controller",
    });
    await writeFile(kubeconfig, kc.exportConfig(), { mode: 0o600 });
    const tokenFile = join(this.dir, "agent-token");
    await writeFile(tokenFile, agentToken, { mode: 0o600 });
    const health = await freePort();
    const metrics = await freePort();
    // The API server calls the eviction webhook on the host's bridge address (where it runs).
    const webhook = this.webhookPort || (await freePort(this.env.hostIp));
    this.healthPort = health;
    this.metricsPort = metrics;
    this.webhookPort = webhook;
    this.starts++;
    this.proc = new ManagedProcess(`controller-${this.starts}`, join(this.dir, "controller.log"));
    await this.proc.start(process.execPath, [this.entry], this.pidFile, {
      ...process.env,
      KUBECONFIG: kubeconfig,
      POD_NAMESPACE: SYSTEM_NS,
      POD_NAME: "ms2m-controller-test",
      LEADER_ELECT: "false",
      HEALTH_PORT: String(health),
      METRICS_PORT: String(metrics),
      AGENT_CA_FILE: this.caFile,
      AGENT_TOKEN_FILE: tokenFile,
      LOG_LEVEL: "debug",
      // The test issues the agents' certificate itself (deployMs2m).
      MANAGE_AGENT_TLS: "false",
      // A controller outside the cluster: the webhook is reached by URL, its certificate names the address.
      WEBHOOK_PORT: String(webhook),
      WEBHOOK_HOST: this.env.hostIp,
      WEBHOOK_URL: `https://${this.env.hostIp}:${webhook}`,
      WEBHOOK_EXTRA_NAMES: this.env.hostIp,
      ...this.extraEnv,
    });
    await waitFor(
      "controller ready",
      async () => {
        if (!this.proc?.running) throw new Error(`controller exited:\n${await this.proc?.tail()}`);
        const res = await fetch(`http://127.0.0.1:${health}/readyz`).catch(() => undefined);
        return res?.status === 200 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  }

  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  async stop(): Promise<void> {
    await this.proc?.stop(10_000);
  }

  log(): Promise<string> {
    return readFile(join(this.dir, "controller.log"), "utf8").catch(() => "");
  }
}
