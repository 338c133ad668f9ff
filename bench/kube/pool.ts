// API-call cost with and without the connection pool (src/kube/config.ts), side by side in one
// run against a real kube-apiserver: client-node's own KubeConfig (a new undici Agent, so a TCP
// connect and a TLS handshake, per request) vs PooledKubeConfig (kept-alive connections).
//
//   node bench/kube/pool.ts [--calls 1000] [--concurrency 1,10] [--reps 3]
//
// Each rep runs both variants back to back (order alternating) on the same control plane; the
// call is a GET of one ConfigMap (small, so the connection cost is what differs). Reported:
// median wall time per call, the bench process's CPU (user + system) per call, and the
// kube-apiserver process's CPU per call (from /proc), medians over the reps.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { PooledKubeConfig } from "../../src/kube/config.ts";
import { ControlPlane } from "../../tooling/cluster/control-plane.ts";

const { values: args } = parseArgs({
  options: {
    calls: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "1,10" },
    reps: { type: "string", default: "3" },
  },
});
const calls = Number(args.calls);
const concurrencies = args.concurrency.split(",").map(Number);
const reps = Number(args.reps);

const CLK_TCK = 100;
const cpuOfPid = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
};
const apiserverPid = (cp: ControlPlane) => {
  for (const line of readFileSync(cp.pidFile, "utf8").split("\n")) {
    const pid = Number(line.trim());
    if (!pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "kube-apiserver") return pid;
    } catch {
      // exited
    }
  }
  throw new Error(`no kube-apiserver among ${cp.pidFile}`);
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const cp = await ControlPlane.start();
try {
  const admin = new KubeConfig();
  admin.loadFromFile(cp.adminKubeconfig);
  await admin.makeApiClient(CoreV1Api).createNamespacedConfigMap({
    namespace: "default",
    body: { metadata: { name: "pool-bench" }, data: { k: "v" } },
  });
  const server = apiserverPid(cp);
  type Variant = "client-node KubeConfig" | "PooledKubeConfig";
  const rows: {
    variant: Variant;
    concurrency: number;
    wallMs: number[];
    cpuMs: number[];
    serverMs: number[];
  }[] = [];
  for (const concurrency of concurrencies) {
    for (const variant of ["client-node KubeConfig", "PooledKubeConfig"] as const)
      rows.push({ variant, concurrency, wallMs: [], cpuMs: [], serverMs: [] });
    for (let rep = 0; rep < reps; rep++) {
      const order: Variant[] =
        rep % 2 === 0
          ? ["client-node KubeConfig", "PooledKubeConfig"]
          : ["PooledKubeConfig", "client-node KubeConfig"];
      for (const variant of order) {
        const kc = variant === "PooledKubeConfig" ? new PooledKubeConfig() : new KubeConfig();
        kc.loadFromFile(cp.adminKubeconfig);
        const api = kc.makeApiClient(CoreV1Api);
        const cpu0 = process.cpuUsage();
        const server0 = cpuOfPid(server);
        const t0 = performance.now();
        let next = 0;
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < calls) {
              next++;
              await api.readNamespacedConfigMap({ name: "pool-bench", namespace: "default" });
            }
          }),
        );
        const wall = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        const row = rows.find((r) => r.variant === variant && r.concurrency === concurrency)!;
        row.wallMs.push(wall / calls);
        row.cpuMs.push((cpu.user + cpu.system) / 1000 / calls);
        row.serverMs.push(((cpuOfPid(server) - server0) * 1000) / calls);
        if (kc instanceof PooledKubeConfig) await kc.closeConnections();
        // Let the unpooled variant's idle sockets time out before the next measurement.
        await new Promise((r) => setTimeout(r, 5_000));
        process.stderr.write(
          `[pool] c=${concurrency} ${variant} rep ${rep + 1}: ${(wall / calls).toFixed(2)} ms/call\n`,
        );
      }
    }
  }
  console.log(
    `\n${calls} GETs of one ConfigMap per run, ${reps} reps, medians; load average ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}\n`,
  );
  console.log("| concurrency | client | wall per call | client CPU per call | kube-apiserver CPU per call |");
  console.log("|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.concurrency} | ${r.variant} | ${median(r.wallMs).toFixed(2)} ms | ${median(r.cpuMs).toFixed(2)} ms | ${median(r.serverMs).toFixed(2)} ms |`,
    );
  }
} finally {
  await cp.stop();
}
