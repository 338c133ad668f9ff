import * as k8s from "@kubernetes/client-node";
import { beforeAll, expect, it, vi } from "vitest";
import { afterFile } from "../../harness/after-file.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import { kubectlPlugin, pluginDir, type PluginResult } from "../../../tooling/plugin.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";
import { bundle } from "../../../hack/images/bundle.ts";
import {
  deployMs2mWithController,
  removeControllerDeployment,
  waitForControllerLeading,
} from "../../../tooling/stack/deployment.ts";
import {
  controllerTestEnv,
  createDeployment,
  createNamespace,
  finalAccounting,
  getMigration,
  GROUP,
  livePods,
  PLURAL,
  stopper,
  SYSTEM_NS,
  TestProducer,
  VERSION,
  waitForAgents,
  waitForConsumers,
  waitForPhase,
  workloadNames,
  type Workload,
} from "../controller/env.ts";
import { installCrd } from "../../../tooling/stack/manifests.ts";
import type { StatefulMigration } from "../../../src/api/v1alpha1/index.ts";
import type { DoctorReport } from "../../../src/cli/doctor/report.ts";

// `kubectl ms2m` as users run it: the real kubectl finds the bundled plugin (the file the npm
// package and the krew archive ship) as `kubectl-ms2m` on the PATH, against ms2m deployed with
// its controller Deployment (config/default) on the simulated nodes.
vi.setConfig({ testTimeout: 180_000 });
const env = controllerTestEnv();
let work: string;
let bundleDir: string;
let bin: string;
let ns: string;

beforeAll(async () => {
  work = tempDir("cli");
  bundleDir = tempDir("cli-bundle");
  const built = await bundle({ outDir: bundleDir, names: ["kubectl-ms2m"] });
  bin = await pluginDir(built["kubectl-ms2m"].path, { copy: true });
  // The agents serve on 9443 and simulated pods share their node's network: the controller's
  // webhook listens elsewhere (nothing calls it here).
  await deployMs2mWithController(env, { controllerEnv: { WEBHOOK_PORT: "9444" } });
  ns = await createNamespace(env, "cli");
}, 300_000);

afterFile(async (failed) => {
  for (const n of env.cluster.nodeNames())
    await env.cluster
      .node(n)
      .setLatencies({ checkpointMs: 0, restoreMs: 0, containerStartMs: 0 })
      .catch(() => undefined);
  // The other files run the controller binary themselves.
  await installCrd(env.kubectl).catch(() => undefined);
  await removeControllerDeployment(env).catch((err: unknown) => console.error("[cli] teardown:", err));
  // The agents now serve a certificate from the removed controller's CA, without the node
  // addresses the other files' clients (Prometheus) verify: the next file's deployMs2m issues a
  // fresh one, which new agent pods serve.
  for (const name of ["ms2m-agent-tls", "ms2m-agent-ca"])
    await env.core.deleteNamespacedSecret({ name, namespace: "ms2m-system" }).catch(() => undefined);
  await env.core
    .deleteCollectionNamespacedPod({
      namespace: "ms2m-system",
      labelSelector: "app.kubernetes.io/name=ms2m-agent",
    })
    .catch(() => undefined);
  if (ns) await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
  await removeTempDir(bin);
  await removeTempDir(bundleDir);
  await removeTempDir(work, { keep: failed });
}, 240_000);

function ms2m(args: string[], timeoutMs?: number): Promise<PluginResult> {
  return kubectlPlugin(bin, env.cluster.info.kubeconfig, args, timeoutMs ? { timeoutMs } : {});
}

/** The messaging flags of a workload, as a user gives them. */
const messaging = (w: Workload) => [
  "--queue",
  w.queue,
  "--exchange",
  w.exchange,
  "--broker-secret",
  "broker:url",
];

async function consumerOn(name: string, node: string) {
  const w = workloadNames(ns, name, work);
  await createDeployment(env, ns, w, node);
  const [pod] = await waitForConsumers(env, ns, w.name, 1);
  return { w, pod: pod?.metadata?.name ?? "" };
}

it("help: through kubectl's plugin lookup, every command listed and explained", async () => {
  const root = await ms2m(["--help"]);
  expect(root.code).toBe(0);
  for (const c of ["migrate", "status", "logs", "cancel", "doctor", "version"])
    expect(root.stdout).toMatch(new RegExp(`^  ${c} `, "m"));
  for (const c of ["migrate", "status", "logs", "cancel", "doctor"]) {
    const help = await ms2m([c, "--help"]);
    expect(help.code, c).toBe(0);
    expect(help.stdout, c).toContain(`kubectl ms2m ${c}`);
    expect(help.stdout, c).toContain("Exit codes:");
  }
  const version = await ms2m(["version"]);
  expect(version).toMatchObject({ code: 0, stdout: "kubectl-ms2m 0.1.0\n" });
});

it("doctor: a healthy install, every check passes", async () => {
  const res = await ms2m(["doctor", "-n", ns, "--broker-secret", "broker"]);
  console.log(`[cli] kubectl ms2m doctor\n${res.stdout}${res.stderr}`);
  expect(res.code).toBe(0);
  expect(res.stdout).toMatch(/^ready: ms2m can migrate on this cluster/m);
  const json = await ms2m(["doctor", "-n", ns, "--broker-secret", "broker", "-o", "json"]);
  const report = JSON.parse(json.stdout) as DoctorReport;
  expect(report.ok).toBe(true);
  expect(Object.fromEntries(report.checks.map((c) => [c.id, c.status]))).toEqual({
    crd: "ok",
    controller: "ok",
    agents: "ok",
    runtime: "ok",
    kubelet: "ok",
    rbac: "ok",
    broker: "ok",
  });
});

it("bad input: clear errors and nonzero exit codes", async () => {
  const { pod } = await consumerOn("bad", "node-a");
  const cases: [string[], number, RegExp][] = [
    [["migrate", "no-such-pod", "--to", "node-b", "-n", ns], 1, /pod .*\/no-such-pod not found/],
    [["migrate", pod, "--to", "node-a", "-n", ns], 1, /already runs on node-a/],
    [["migrate", pod, "--to", "node-z", "-n", ns], 1, /node node-z not found \(nodes: node-a, node-b\)/],
    [["migrate", "-n", ns], 2, /wrong number of arguments|POD/],
    [["migrate", pod, "--strategy", "Fast", "-n", ns], 2, /--strategy must be one of ShadowPod, Sequential/],
    [["migrate", pod, "--to", "node-b", "--bogus", "-n", ns], 2, /--bogus/],
    [["status", "no-such-migration", "-n", ns], 1, /no-such-migration not found/],
    [["cancel", "no-such-migration", "-n", ns], 1, /no-such-migration not found/],
    [["logs", "no-such-migration", "-n", ns], 1, /no-such-migration not found/],
    [["frobnicate"], 2, /unknown command "frobnicate"/],
  ];
  for (const [args, code, message] of cases) {
    const res = await ms2m(args);
    expect({ args, code: res.code }).toEqual({ args, code });
    expect(res.stderr, args.join(" ")).toMatch(message);
  }
  // Nothing was created by any of them.
  const list = await ms2m(["status", "-n", ns]);
  expect(list.code).toBe(0);
  expect(list.stderr).toContain("No migrations found");
});

it("migrate --wait: the phases as they happen, the timings, zero lost; status and logs show it", async () => {
  const { w, pod } = await consumerOn("live", "node-a");
  const producer = new TestProducer(env, w, 30);
  await producer.start();
  await sleep(500);
  const name = `${pod}-to-node-b`;
  const res = await ms2m(["migrate", pod, "--to", "node-b", "--wait", "-n", ns, ...messaging(w)]);
  console.log(`[cli] kubectl ms2m migrate --wait\n${res.stdout}${res.stderr}`);
  expect(res.code).toBe(0);
  expect(res.stdout).toContain(`migrating ${ns}/${pod} from node-a to node-b (statefulmigration ${name})`);
  // Not a terminal: one line per phase as it starts, then the summary with the timings.
  const phases = [...res.stdout.matchAll(/^\[\s*[\d.]+ s\] (\w+)$/gm)].map((m) => m[1]);
  expect(phases).toEqual([
    "Pending",
    "Checkpointing",
    "Transferring",
    "Restoring",
    "Replaying",
    "Finalizing",
    "Completed",
  ]);
  expect(res.stdout).toContain(`${ns}/${name}: Completed (ShadowPod, Direct)`);
  expect(res.stdout).toMatch(new RegExp(`node-a/${pod} -> node-b/\\S+`));
  for (const p of ["Checkpointing", "Transferring", "Restoring", "Replaying", "Finalizing", "total"])
    expect(res.stdout).toMatch(new RegExp(`^  ${p}\\s+\\d+\\.\\d{3} s`, "m"));

  const list = await ms2m(["status", "-n", ns]);
  expect(list.code).toBe(0);
  expect(list.stdout).toMatch(/^NAME\s+PHASE\s+STRATEGY\s+MODE\s+SOURCE\s+TARGET\s+DURATION\s+AGE$/m);
  expect(list.stdout).toMatch(
    new RegExp(`^${name}\\s+Completed\\s+ShadowPod\\s+Direct\\s+${pod}\\s+node-b\\s`, "m"),
  );
  const all = await ms2m(["status", "-A"]);
  expect(all.stdout).toMatch(new RegExp(`^${ns}\\s+${name}\\s+Completed`, "m"));

  const one = await ms2m(["status", name, "-n", ns]);
  console.log(`[cli] kubectl ms2m status ${name}\n${one.stdout}`);
  expect(one.code).toBe(0);
  expect(one.stdout).toContain(`${ns}/${name}: Completed (ShadowPod, Direct)`);
  expect(one.stdout).toMatch(/^ {2}Replaying\s+\d+\.\d{3} s/m);
  expect(one.stdout).toMatch(/^ {2}CONDITION\s+STATUS/m);
  const json = await ms2m(["status", name, "-n", ns, "-o", "json"]);
  const m = JSON.parse(json.stdout) as StatefulMigration;
  expect(m.status?.phase).toBe("Completed");
  expect(m.status?.targetNode).toBe("node-b");

  const logs = await ms2m(["logs", name, "-n", ns]);
  console.log(`[cli] kubectl ms2m logs ${name}\n${logs.stdout}${logs.stderr}`);
  expect(logs.code).toBe(0);
  // Its Events and the controller pod's log lines about it, in time order.
  expect(logs.stdout).toMatch(/ event \w+ /);
  expect(logs.stdout).toMatch(/ ms2m-controller-[a-z0-9]+-[a-z0-9]+ /);
  const times = logs.stdout
    .split("\n")
    .filter(Boolean)
    .map((l) => l.slice(0, 24));
  expect(times).toEqual([...times].sort());
  const logsJson = JSON.parse((await ms2m(["logs", name, "-n", ns, "-o", "json"])).stdout) as {
    source: string;
  }[];
  expect(new Set(logsJson.map((e) => e.source))).toEqual(new Set(["event", "controller"]));

  const report = await finalAccounting(env, ns, w, producer, stopper(env, ns, "deploy", w.name));
  expect(report.lost).toEqual([]);
  expect(report.appliedTwice).toEqual([]);
});

it("cancel: a running migration is rolled back, the source pod runs on", async () => {
  for (const n of env.cluster.nodeNames())
    await env.cluster.node(n).setLatencies({ checkpointMs: 4000, restoreMs: 4000, containerStartMs: 1000 });
  const { w, pod } = await consumerOn("cancel", "node-a");
  const source = (await livePods(env, ns, w.name))[0];
  const created = await ms2m([
    "migrate",
    pod,
    "--to",
    "node-b",
    "--name",
    "to-cancel",
    "-n",
    ns,
    ...messaging(w),
  ]);
  expect(created).toMatchObject({
    code: 0,
    stdout: "statefulmigration.migration.ms2m.io/to-cancel created\n",
  });
  await waitForPhase(env, ns, "to-cancel", ["Checkpointing"], 60_000, 10);
  const res = await ms2m(["cancel", "to-cancel", "-n", ns]);
  console.log(`[cli] kubectl ms2m cancel\n${res.stdout}${res.stderr}`);
  expect(res.code).toBe(0);
  expect(res.stdout).toMatch(
    new RegExp(
      `^statefulmigration ${ns}/to-cancel: cancelled in (Pending|Checkpointing|Transferring|Restoring|Replaying) and rolled back: the source pod runs on$`,
      "m",
    ),
  );
  expect(await getMigration(env, ns, "to-cancel")).toBeUndefined();
  const pods = await waitFor(
    "one pod left",
    async () => {
      const all = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` });
      return all.items.length === 1 && !all.items[0]?.metadata?.deletionTimestamp ? all.items : undefined;
    },
    { timeoutMs: 30_000 },
  );
  expect(pods[0]?.metadata?.uid).toBe(source?.metadata?.uid);
  expect(pods[0]?.spec?.nodeName).toBe("node-a");
  // A finished migration is not cancelled again.
  const again = await ms2m(["cancel", "to-cancel", "-n", ns]);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain("not found");
});

it("doctor: no agent running names the nodes, then the agents are back", async () => {
  const patch = (nodeSelector: Record<string, string> | null) =>
    env.kubectl([
      "-n",
      SYSTEM_NS,
      "patch",
      "daemonset/ms2m-agent",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { template: { spec: { nodeSelector } } } }),
    ]);
  expect((await patch({ "ms2m.test/no-such-label": "true" })).code).toBe(0);
  try {
    await waitFor(
      "agents gone",
      async () => {
        const pods = await env.core.listNamespacedPod({
          namespace: SYSTEM_NS,
          labelSelector: "app.kubernetes.io/name=ms2m-agent",
        });
        return pods.items.length === 0 ? true : undefined;
      },
      { timeoutMs: 90_000 },
    );
    const res = await ms2m(["doctor"]);
    console.log(`[cli] kubectl ms2m doctor (no agents)\n${res.stdout}${res.stderr}`);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/^✗ Agents: 2 of 2 failed$/m);
    expect(res.stdout).toMatch(/^ {4}✗ node-a: no ms2m-agent pod/m);
    expect(res.stdout).toMatch(/^ {4}✗ node-b: no ms2m-agent pod/m);
    expect(res.stdout).toMatch(/^- Checkpoint\/restore runtime: /m);
    expect(res.stdout).toMatch(/^not ready: 1 check failed$/m);
  } finally {
    expect((await patch(null)).code).toBe(0);
    await waitForAgents(env, 120_000);
  }
});

it("doctor: the controller scaled to 0 and a missing ClusterRoleBinding are named", async () => {
  const rbac = env.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const binding = await rbac.readClusterRoleBinding({ name: "ms2m-transfer" });
  const scale = (replicas: number) =>
    env.kubectl(["-n", SYSTEM_NS, "scale", "deployment/ms2m-controller", `--replicas=${replicas}`]);
  expect((await scale(0)).code).toBe(0);
  await rbac.deleteClusterRoleBinding({ name: "ms2m-transfer" });
  try {
    const res = await ms2m(["doctor", "--skip-kubelet"]);
    console.log(
      `[cli] kubectl ms2m doctor (controller scaled to 0, no ms2m-transfer binding)\n${res.stdout}${res.stderr}`,
    );
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/^✗ Controller: Deployment ms2m-system\/ms2m-controller is scaled to 0$/m);
    expect(res.stdout).toMatch(
      /^✗ RBAC: 1 of \d+ permissions missing \(re-apply config\/rbac or the chart\)$/m,
    );
    expect(res.stdout).toMatch(
      /^ {4}✗ ms2m-system\/ms2m-transfer: may not create agents\.migration\.ms2m\.io\/receive cluster-wide/m,
    );
    expect(res.stdout).toMatch(/^not ready: 2 checks failed$/m);
  } finally {
    const { metadata, roleRef, subjects } = binding;
    await rbac.createClusterRoleBinding({
      body: { metadata: { name: metadata?.name, labels: metadata?.labels }, roleRef, subjects },
    });
    expect((await scale(1)).code).toBe(0);
    await waitForControllerLeading(env);
  }
});

it("doctor: no CRD says to install ms2m; status says so too", async () => {
  // The migrations go with their CRD: let the controller release them first.
  await env.core.deleteNamespace({ name: ns });
  await waitFor(
    `namespace ${ns} gone`,
    () =>
      env.core.readNamespace({ name: ns }).then(
        () => undefined,
        () => true,
      ),
    { timeoutMs: 120_000 },
  );
  ns = "";
  const del = await env.kubectl([
    "delete",
    "crd/statefulmigrations.migration.ms2m.io",
    "--wait=true",
    "--timeout=90s",
  ]);
  expect(del.code, del.stderr).toBe(0);
  try {
    const res = await ms2m(["doctor", "--skip-kubelet"]);
    console.log(`[cli] kubectl ms2m doctor (no CRD)\n${res.stdout}${res.stderr}`);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(
      /^✗ CustomResourceDefinition: statefulmigrations\.migration\.ms2m\.io is not installed: install ms2m: helm install ms2m charts\/ms2m/m,
    );
    const status = await ms2m(["status"]);
    expect(status.code).toBe(1);
    expect(status.stderr).toContain("is ms2m installed? (kubectl ms2m doctor)");
  } finally {
    await installCrd(env.kubectl);
    // Established comes before the API server serves the resource again (429 meanwhile).
    await waitFor(
      "statefulmigrations served again",
      () =>
        env.custom
          .listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
          .then(() => true),
      { timeoutMs: 60_000 },
    );
  }
  await waitForControllerLeading(env);
});
