// The Kubernetes API round trip on this machine: what one request of the controller costs when
// nothing else runs, the floor under its share of a migration (bench:latency). A local control
// plane alone (kube-apiserver + etcd, no nodes, no controller); each request sent --n times in a
// row after a warm-up, through the controller's client (kube/rest.ts over the pooled KubeConfig)
// and through client-node's generated API classes (what the controller used before), side by
// side. The API server's own time per request (apiserver_request_duration_seconds) and etcd's
// (etcd_request_duration_seconds) are read from its /metrics before and after each row: the rest
// is the client, TLS and loopback. Prints a table; --out DIR also writes results.json.
//
//   node bench/api/run.ts [--n 300] [--out DIR]
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { group, plural, version, type StatefulMigration } from "../../src/api/v1alpha1/index.ts";
import { loadKubeConfig } from "../../src/kube/config.ts";
import { KubeRest, resourcePath } from "../../src/kube/rest.ts";
import { ControlPlane } from "../../tooling/cluster/control-plane.ts";
import { sleep } from "../../tooling/exec.ts";
import { repoPath } from "../../tooling/stack/manifests.ts";

const { values: args } = parseArgs({
  options: { n: { type: "string", default: "300" }, out: { type: "string" } },
});
const n = Number(args.n);
const say = (msg: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Row {
  request: string;
  client: "kube/rest.ts" | "client-node API class";
  p50: number;
  p90: number;
  /** Mean per request as kube-apiserver measured it (ms), and of that etcd's. */
  server: number;
  etcd: number;
}

const load0 = loadavg().map((x) => Number(x.toFixed(2)));
const cp = await ControlPlane.start();
const rows: Row[] = [];
try {
  const kubectl = (...a: string[]) =>
    execFileSync("kubectl", ["--kubeconfig", cp.adminKubeconfig, ...a], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
  kubectl("apply", "-f", repoPath("crd/migration.ms2m.io_statefulmigrations.yaml"));
  for (let i = 0; ; i++) {
    if (
      kubectl(
        "get",
        "crd",
        "statefulmigrations.migration.ms2m.io",
        "-o",
        "jsonpath={.status.conditions}",
      ).includes('"Established"')
    )
      break;
    if (i > 100) throw new Error("CRD not established");
    await sleep(100);
  }
  const kc = loadKubeConfig(cp.adminKubeconfig);
  const rest = new KubeRest(kc);
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ns = "default";
  const smPath = resourcePath({ group, version, plural, namespace: ns, name: "bench" });
  const cmPath = resourcePath({ version: "v1", plural: "configmaps", namespace: ns, name: "bench" });
  await rest.create(resourcePath({ version: "v1", plural: "configmaps", namespace: ns }), {
    metadata: { name: "bench" },
    data: { a: "0" },
  });
  let sm = await rest.create<StatefulMigration>(resourcePath({ group, version, plural, namespace: ns }), {
    apiVersion: `${group}/${version}`,
    kind: "StatefulMigration",
    metadata: { name: "bench" },
    spec: { sourcePod: "nobody", checkpointImageRepository: "registry.local/ckpt" },
  });

  /** Sums of a histogram's _sum and _count over the series matching `match`. */
  const metric = (name: string, match: (labels: string) => boolean) => {
    const text = kubectl("get", "--raw", "/metrics");
    let sum = 0;
    let count = 0;
    for (const line of String(text).split("\n")) {
      const m = new RegExp(`^${name}_(sum|count)\\{(.*)\\} (\\S+)$`).exec(line);
      if (!m || !match(m[2]!)) continue;
      if (m[1] === "sum") sum += Number(m[3]);
      else count += Number(m[3]);
    }
    return { sum, count };
  };

  const measure = async (
    request: string,
    client: Row["client"],
    resource: string,
    verb: string,
    call: (i: number) => Promise<unknown>,
  ) => {
    for (let i = 0; i < 20; i++) await call(i);
    const matchServer = (l: string) =>
      l.includes(`resource="${resource}"`) && l.includes(`verb="${verb}"`) && l.includes('scope="resource"');
    const matchEtcd = (l: string) => l.includes(`resource="${resource}"`);
    const s0 = metric("apiserver_request_duration_seconds", matchServer);
    const e0 = metric("etcd_request_duration_seconds", matchEtcd);
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await call(i);
      times.push(performance.now() - t);
    }
    const s1 = metric("apiserver_request_duration_seconds", matchServer);
    const e1 = metric("etcd_request_duration_seconds", matchEtcd);
    times.sort((a, b) => a - b);
    const row: Row = {
      request,
      client,
      p50: round(times[Math.floor(n / 2)]!),
      p90: round(times[Math.floor(n * 0.9)]!),
      server: round(((s1.sum - s0.sum) / Math.max(1, s1.count - s0.count)) * 1000),
      // etcd's requests per API request: one for a GET, two (read, write) for an update.
      etcd: round(((e1.sum - e0.sum) / n) * 1000),
    };
    rows.push(row);
    say(`${request} (${client}): p50 ${row.p50} ms`);
  };

  await measure("GET ConfigMap", "kube/rest.ts", "configmaps", "GET", () => rest.get(cmPath));
  await measure("GET ConfigMap", "client-node API class", "configmaps", "GET", () =>
    core.readNamespacedConfigMap({ namespace: ns, name: "bench" }),
  );
  await measure("merge-patch ConfigMap", "kube/rest.ts", "configmaps", "PATCH", (i) =>
    rest.patch(cmPath, "merge", { data: { a: String(i) } }),
  );
  await measure("GET StatefulMigration", "kube/rest.ts", "statefulmigrations", "GET", () => rest.get(smPath));
  await measure("GET StatefulMigration", "client-node API class", "statefulmigrations", "GET", () =>
    custom.getNamespacedCustomObject({ group, version, plural, namespace: ns, name: "bench" }),
  );
  await measure("PUT StatefulMigration status", "kube/rest.ts", "statefulmigrations", "PUT", async (i) => {
    sm.status = { ...sm.status, targetNodeReason: `bench ${i}` };
    sm = await rest.replace<StatefulMigration>(`${smPath}/status`, sm);
  });
  await measure(
    "PUT StatefulMigration status",
    "client-node API class",
    "statefulmigrations",
    "PUT",
    async (i) => {
      sm.status = { ...sm.status, targetNodeReason: `bench ${i}` };
      sm = (await custom.replaceNamespacedCustomObjectStatus({
        group,
        version,
        plural,
        namespace: ns,
        name: "bench",
        body: sm,
      })) as StatefulMigration;
    },
  );
  await kc.closeConnections();
} finally {
  await cp.stop();
}

const load1 = loadavg().map((x) => Number(x.toFixed(2)));
const lines = [
  `Kubernetes API round trips, ${n} in a row each, local control plane alone (kube-apiserver + etcd, no nodes); load average ${load0.join(", ")} before, ${load1.join(", ")} after. Milliseconds.`,
  "",
  "| request | client | p50 | p90 | kube-apiserver's time, mean | of which etcd |",
  "|---|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.request} | ${r.client} | ${r.p50} | ${r.p90} | ${r.server} | ${r.etcd} |`),
];
console.log(lines.join("\n"));
if (args.out) {
  const out = resolve(args.out);
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, "results.json"),
    JSON.stringify({ n, load: { before: load0, after: load1 }, rows }, null, 2),
  );
  writeFileSync(join(out, "summary.md"), `${lines.join("\n")}\n`);
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
