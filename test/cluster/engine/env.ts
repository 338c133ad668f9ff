// Shared by the engine's cluster tests: the CRD and the RBAC from config/ on the shared control
// plane, KubeConfigs acting as the ms2m-controller ServiceAccount (directly or through a TCP
// proxy that can break or stall connections), and a logger whose lines the tests can read.
import { connect, createServer, type Server, type Socket } from "node:net";
import { Writable } from "node:stream";
import * as k8s from "@kubernetes/client-node";
import { pino, type Logger } from "pino";
import { clusterContext, kubeConfigAs } from "../../harness/context.ts";
import { installCrd, mustSucceed, renderKustomize } from "../../../tooling/stack/manifests.ts";

export const SYSTEM_NS = "ms2m-system";
export const GROUP = "migration.ms2m.io";
export const VERSION = "v1alpha1";
export const PLURAL = "statefulmigrations";

export function engineEnv() {
  const ctx = clusterContext();
  const admin = ctx.kubeConfig();
  return {
    ...ctx,
    admin,
    core: admin.makeApiClient(k8s.CoreV1Api),
    custom: admin.makeApiClient(k8s.CustomObjectsApi),
    coordination: admin.makeApiClient(k8s.CoordinationV1Api),
  };
}
export type EngineEnv = ReturnType<typeof engineEnv>;

/** CRD, namespaces, ServiceAccounts and RBAC from config/default (no workloads). Idempotent. */
export async function installApi(env: EngineEnv): Promise<void> {
  await installCrd(env.kubectl);
  const rendered = await renderKustomize(env.kubectl, "config/default", [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
  ]);
  mustSucceed(
    await env.kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], rendered),
    "apply rbac",
  );
}

/** A KubeConfig acting as the controller's ServiceAccount, optionally through another server URL. */
export async function controllerKubeConfig(env: EngineEnv, server?: string): Promise<k8s.KubeConfig> {
  const kc = await kubeConfigAs(env.admin, SYSTEM_NS, "ms2m-controller");
  if (!server) return kc;
  const cluster = kc.getCurrentCluster()!;
  const user = kc.getCurrentUser()!;
  const out = new k8s.KubeConfig();
  out.loadFromOptions({
    clusters: [{ ...cluster, server }],
    users: [user],
    contexts: [{ name: "proxied", cluster: cluster.name, user: user.name }],
    currentContext: "proxied",
  });
  return out;
}

export async function createNamespace(env: EngineEnv, name: string): Promise<void> {
  await env.core.createNamespace({ body: { metadata: { name } } }).catch((err: { code?: number }) => {
    if (err.code !== 409) throw err;
  });
}

/** A pino logger that keeps its records in memory. */
export function memoryLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n"))
        if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: "debug" }, sink), lines };
}

/**
 * A TCP proxy in front of the API server (TLS passes through: it listens on the API server's
 * address, which its certificate names, on another port). It can cut every connection, refuse
 * new ones, or stall the open ones (nothing more reaches the client, the sockets stay open).
 */
export class ApiProxy {
  private readonly server: Server;
  private readonly target: { host: string; port: number };
  private readonly pairs = new Set<{ client: Socket; upstream: Socket; stalled: boolean }>();
  refusing = false;
  connections = 0;
  port = 0;

  private constructor(target: { host: string; port: number }) {
    this.target = target;
    this.server = createServer((client) => {
      if (this.refusing) return void client.destroy();
      this.connections++;
      const upstream = connect(this.target);
      const pair = { client, upstream, stalled: false };
      this.pairs.add(pair);
      client.pipe(upstream);
      upstream.on("data", (d: Buffer) => {
        if (!pair.stalled) client.write(d);
      });
      const close = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
    });
  }

  static async start(apiServer: string): Promise<ApiProxy> {
    const url = new URL(apiServer);
    const proxy = new ApiProxy({ host: url.hostname, port: Number(url.port || 443) });
    await new Promise<void>((resolve, reject) => {
      proxy.server.once("error", reject);
      proxy.server.listen(0, url.hostname, () => resolve());
    });
    const addr = proxy.server.address();
    proxy.port = typeof addr === "object" && addr ? addr.port : 0;
    return proxy;
  }

  get url(): string {
    return `https://${this.target.host}:${this.port}`;
  }

  /** Cuts every open connection (RST), as a restarted API server or a broken link would. */
  breakAll(): void {
    for (const p of this.pairs) {
      p.client.resetAndDestroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Open connections stop delivering anything to the client; new ones work. */
  stallAll(): void {
    for (const p of this.pairs) p.stalled = true;
  }

  async stop(): Promise<void> {
    this.breakAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export const randomSuffix = () => Math.random().toString(36).slice(2, 8);
