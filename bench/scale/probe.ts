// Measurement helpers for the scale benchmarks: the controller binary started and timed from
// spawn to /readyz 200, its CPU and memory from /proc, its Prometheus metrics, and the API
// requests it made as counted by kube-apiserver (a FlowSchema that matches only its
// ServiceAccount, read from apiserver_flowcontrol_dispatched_requests_total).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import * as k8s from "@kubernetes/client-node";
import { bundle } from "../../tooling/bundle.ts";
import { freePort, sleep } from "../../tooling/exec.ts";
import { mustSucceed, repoPath } from "../../tooling/stack/manifests.ts";
import { ManagedProcess } from "../../tooling/process.ts";
import { serviceAccountToken, SYSTEM_NS, type StackEnv } from "../../tooling/stack/index.ts";

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) and memory (KiB) of a process, from /proc. */
export interface ProcSample {
  cpuS: number;
  rssKiB: number;
  hwmKiB: number;
}

export function procSample(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command (which may hold spaces) start at the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  return { cpuS: (utime + stime) / CLK_TCK, rssKiB: kib("VmRSS"), hwmKiB: kib("VmHWM") };
}

/** Prometheus text format → `name{labels}` → value (labels as written). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^(\S+?(?:\{.*\})?)\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Sum of every series of `name` whose labels contain all of `labels` (e.g. `flow_schema="x"`). */
export function metricSum(metrics: Map<string, number>, name: string, ...labels: string[]): number {
  let sum = 0;
  for (const [k, v] of metrics) {
    if (k !== name && !k.startsWith(`${name}{`)) continue;
    if (labels.every((l) => k.includes(l))) sum += v;
  }
  return sum;
}

export const FLOW_SCHEMA = "ms2m-bench-controller";

/**
 * A FlowSchema that matches exactly the controller's ServiceAccount (same priority level as the
 * built-in `service-accounts` schema that would match it otherwise), so kube-apiserver counts
 * its requests apart: apiserver_flowcontrol_dispatched_requests_total{flow_schema=…}.
 */
export async function installRequestCounter(env: StackEnv): Promise<void> {
  const fs = {
    apiVersion: "flowcontrol.apiserver.k8s.io/v1",
    kind: "FlowSchema",
    metadata: { name: FLOW_SCHEMA },
    spec: {
      matchingPrecedence: 500,
      priorityLevelConfiguration: { name: "workload-low" },
      distinguisherMethod: { type: "ByUser" },
      rules: [
        {
          subjects: [
            { kind: "ServiceAccount", serviceAccount: { name: "ms2m-controller", namespace: SYSTEM_NS } },
          ],
          resourceRules: [
            { verbs: ["*"], apiGroups: ["*"], resources: ["*"], clusterScope: true, namespaces: ["*"] },
          ],
          nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }],
        },
      ],
    },
  };
  mustSucceed(await env.kubectl(["apply", "-f", "-"], JSON.stringify(fs)), "apply FlowSchema");
  // APF picks up new schemas within a second or so.
  await sleep(2_000);
}

/** Requests of the controller's ServiceAccount kube-apiserver has dispatched so far. */
export async function controllerRequests(env: StackEnv): Promise<number> {
  const res = mustSucceed(await env.kubectl(["get", "--raw", "/metrics"]), "apiserver /metrics");
  return metricSum(
    parseMetrics(res),
    "apiserver_flowcontrol_dispatched_requests_total",
    `flow_schema="${FLOW_SCHEMA}"`,
  );
}

/**
 * How the controller runs: `bundle` as the image runs it (the esbuild bundle,
 * dist/bundle/controller.mjs, built into the bench's work folder, with the node flags of the
 * Dockerfile's ENTRYPOINT), `source` as the tests run it (`node cmd/ms2m-controller/main.ts`,
 * the TypeScript sources type-stripped at load).
 */
export type ControllerBinary = "bundle" | "source";

/** The node flags of the controller image's ENTRYPOINT (`["node", ...flags, "/app/controller.mjs"]`). */
export function imageNodeFlags(dockerfile = readFileSync(repoPath("Dockerfile"), "utf8")): string[] {
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
  if (!line) throw new Error("Dockerfile: no ENTRYPOINT in exec form");
  const argv = JSON.parse(line) as string[];
  return argv.slice(1, -1);
}

export interface BenchControllerOptions {
  binary?: ControllerBinary;
  /**
   * A checkout of another commit (a worktree with this checkout's node_modules) whose controller
   * runs instead: its sources, or its bundle built by its own hack/images/bundle.ts and run with
   * its own Dockerfile's node flags, so an older controller is measured as it shipped.
   */
  root?: string;
  /** More node flags, after the image's (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

/** The controller binary as its ServiceAccount, like ControllerProcess, timed from spawn to ready. */
export class BenchController {
  readonly env: StackEnv;
  readonly dir: string;
  readonly caFile: string;
  readonly extraEnv: Record<string, string>;
  readonly binary: ControllerBinary;
  readonly nodeArgs: string[];
  readonly root: string | undefined;
  private entry = "";
  proc: ManagedProcess | undefined;
  healthPort = 0;
  metricsPort = 0;
  /** Inspector port (loopback) when started with `inspect`: for heap measurements after a full GC. */
  inspectPort = 0;
  starts = 0;
  private kubeconfig = "";
  private tokenFile = "";

  constructor(
    env: StackEnv,
    dir: string,
    caFile: string,
    extraEnv: Record<string, string> = {},
    opts: BenchControllerOptions = {},
  ) {
    this.env = env;
    this.dir = dir;
    this.caFile = caFile;
    this.extraEnv = extraEnv;
    this.binary = opts.binary ?? "bundle";
    this.nodeArgs = opts.nodeArgs ?? [];
    this.root = opts.root;
  }

  /** The node arguments that run the controller (flags and entry point), the bundle built once. */
  async argv(): Promise<string[]> {
    const root = this.root;
    if (this.binary === "source")
      return [
        ...this.nodeArgs,
        root ? join(root, "cmd/ms2m-controller/main.ts") : repoPath("cmd/ms2m-controller/main.ts"),
      ];
    if (!this.entry && root) {
      execFileSync(process.execPath, ["hack/images/bundle.ts"], { cwd: root, stdio: "ignore" });
      this.entry = join(root, "dist/bundle/controller.mjs");
    }
    if (!this.entry) {
      const out = await bundle({ outDir: join(this.dir, "bundle"), names: ["controller"] });
      this.entry = out.controller.path;
    }
    const flags = root ? imageNodeFlags(readFileSync(join(root, "Dockerfile"), "utf8")) : imageNodeFlags();
    return [...flags, ...this.nodeArgs, this.entry];
  }

  get pid(): number {
    const pid = this.proc?.pid;
    if (!pid) throw new Error("controller not running");
    return pid;
  }

  private async credentials(): Promise<void> {
    if (this.kubeconfig) return;
    const admin = this.env.kc;
    const kubeToken = await serviceAccountToken(admin, SYSTEM_NS, "ms2m-controller");
    const agentToken = await serviceAccountToken(admin, SYSTEM_NS, "ms2m-controller", ["ms2m-agent"]);
    const cluster = admin.getCurrentCluster();
    if (!cluster) throw new Error("no cluster");
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [cluster],
      users: [{ name: "ms2m-controller", token: kubeToken }],
      contexts: [{ name: "ms2m-controller", cluster: cluster.name, user: "ms2m-controller" }],
      currentContext: "ms2m-controller",
    });
    this.kubeconfig = join(this.dir, "controller.kubeconfig");
    await writeFile(this.kubeconfig, kc.exportConfig(), { mode: 0o600 });
    this.tokenFile = join(this.dir, "agent-token");
    await writeFile(this.tokenFile, agentToken, { mode: 0o600 });
  }

  /** Starts the process; resolves with the milliseconds from spawn to the first /readyz 200 (10 ms polls). */
  async start(opts: { inspect?: boolean } = {}): Promise<number> {
    await this.credentials();
    const argv = await this.argv();
    this.healthPort = await freePort();
    this.metricsPort = await freePort();
    this.inspectPort = opts.inspect ? await freePort() : 0;
    const nodeArgs = opts.inspect ? [`--inspect=127.0.0.1:${this.inspectPort}`] : [];
    this.starts++;
    this.proc = new ManagedProcess(
      `controller-${this.starts}`,
      join(this.dir, `controller-${this.starts}.log`),
    );
    const t0 = performance.now();
    await this.proc.start(process.execPath, [...nodeArgs, ...argv], join(this.dir, "pids"), {
      ...process.env,
      KUBECONFIG: this.kubeconfig,
      POD_NAMESPACE: SYSTEM_NS,
      POD_NAME: "ms2m-controller-bench",
      LEADER_ELECT: "false",
      HEALTH_PORT: String(this.healthPort),
      METRICS_PORT: String(this.metricsPort),
      AGENT_CA_FILE: this.caFile,
      AGENT_TOKEN_FILE: this.tokenFile,
      LOG_LEVEL: "info",
      MANAGE_AGENT_TLS: "false",
      ...this.extraEnv,
    });
    for (;;) {
      if (!this.proc.running) throw new Error(`controller exited:\n${await this.proc.tail()}`);
      const res = await fetch(`http://127.0.0.1:${this.healthPort}/readyz`).catch(() => undefined);
      if (res?.status === 200) return performance.now() - t0;
      if (performance.now() - t0 > 120_000)
        throw new Error(`controller not ready after 120 s:\n${await this.proc.tail()}`);
      await sleep(10);
    }
  }

  sample(): ProcSample {
    return procSample(this.pid);
  }

  async metrics(): Promise<Map<string, number>> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
    return parseMetrics(await res.text());
  }

  /**
   * Live heap after a full, forced garbage collection (the inspector's
   * HeapProfiler.collectGarbage, then process.memoryUsage() in the controller): what the
   * controller really keeps, without the garbage V8 has not collected yet. Needs `inspect`.
   */
  async heapAfterGc(): Promise<{
    heapUsedMiB: number;
    heapTotalMiB: number;
    externalMiB: number;
    rssMiB: number;
  }> {
    if (!this.inspectPort) throw new Error("controller not started with inspect");
    const targets = (await (await fetch(`http://127.0.0.1:${this.inspectPort}/json/list`)).json()) as {
      webSocketDebuggerUrl: string;
    }[];
    const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    let next = 0;
    const pending = new Map<number, (r: unknown) => void>();
    ws.onmessage = (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
    };
    const call = (method: string, params: object = {}) =>
      new Promise<unknown>((resolve) => {
        const id = ++next;
        pending.set(id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      });
    try {
      // Twice: objects with weak references / finalizers are freed by the second pass.
      await call("HeapProfiler.collectGarbage");
      await call("HeapProfiler.collectGarbage");
      const r = (await call("Runtime.evaluate", {
        expression: "JSON.stringify(process.memoryUsage())",
        returnByValue: true,
      })) as { result: { value: string } };
      const mem = JSON.parse(r.result.value) as {
        heapUsed: number;
        heapTotal: number;
        external: number;
        rss: number;
      };
      const m = (n: number) => Math.round(n / 2 ** 20);
      return {
        heapUsedMiB: m(mem.heapUsed),
        heapTotalMiB: m(mem.heapTotal),
        externalMiB: m(mem.external),
        rssMiB: m(mem.rss),
      };
    } finally {
      ws.close();
    }
  }

  async stop(): Promise<void> {
    await this.proc?.stop(10_000);
  }
}

/** `uptime`'s load averages (1, 5, 15 min), to state how contended a measurement was. */
export function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

export function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return Number.NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}
