import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it, vi } from "vitest";
import type * as k8s from "@kubernetes/client-node";
import { parseAllDocuments, stringify } from "yaml";
import { afterFile } from "../harness/after-file.ts";
import { deleteBrokerObjects, runMatcher } from "../../tooling/broker/cleanup.ts";
import { sleep, waitFor } from "../../tooling/exec.ts";
import { CHART_DIR, helm, helmOk } from "../../tooling/helm.ts";
import { removeTempDir, tempDir } from "../../tooling/temp-dir.ts";
import { removeMs2m, waitForControllerLeading } from "../../tooling/stack/deployment.ts";
import { mustSucceed } from "../../tooling/stack/manifests.ts";
import {
  containerId,
  createDeployment,
  createMigration,
  createNamespace,
  expectNoLoss,
  finalAccounting,
  jsonLog,
  livePods,
  realTestEnv,
  restoredFromCheckpointAt,
  stopper,
  TestProducer,
  waitForAgents,
  waitForCompletion,
  waitForConsumers,
  waitForPodsExactly,
  workloadNames,
  type Workload,
} from "./env.ts";

// The Helm chart as a user runs it, on the real nodes: `helm install` of charts/ms2m with the
// controller and agent images of the cluster's registry (the ones the real tier's global setup
// built with `make images` and pushed), the controller running as its Deployment from its image
// and leading, the agent DaemonSet Ready on every node; live migrations of the reference consumer
// driven by that in-cluster controller (no controller process of the test's own); `helm upgrade`
// of a value (the log level) rolls the controller, which keeps migrating; `helm uninstall`
// leaves none of the chart's objects behind, cluster-wide ones included.
//
// The other files of this tier deploy config/default into ms2m-system and run the controller on
// the host. The chart's cluster-wide objects have the same names (ms2m is installed once per
// cluster), so this file first removes what they left (CRDs included: a fresh cluster), installs
// the release into a namespace of its own, and uninstalls it at the end: the next file's setup
// deploys config/default afresh.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });
const env = realTestEnv();
const RELEASE = "ms2m";
const releaseNs = `ms2m-helm-${randomBytes(3).toString("hex")}`;
/** Kinds Kubernetes has no namespace for, among those the chart renders. */
const CLUSTER_KINDS = new Set([
  "CustomResourceDefinition",
  "ClusterRole",
  "ClusterRoleBinding",
  "ValidatingWebhookConfiguration",
  "MutatingWebhookConfiguration",
]);

let work: string;
let valuesFile: string;
let appNs: string | undefined;
/** The workload namespace's name and its migrations' UIDs: their broker queues go at the end. */
let brokerNs: string | undefined;
const migrationUids: string[] = [];
const WORKLOADS = ["helm-first", "helm-second"];
let installed = false;
const producers: TestProducer[] = [];
/** The objects of the release's manifest (`helm get manifest`), as installed. */
let manifest: k8s.KubernetesObject[] = [];

/** A registry reference (host:port/repo:tag or host:port/repo@sha256:...) as the chart's image values. */
function imageValues(ref: string) {
  const at = ref.indexOf("@");
  if (at > 0) return { repository: ref.slice(0, at), digest: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(":");
  if (colon <= ref.lastIndexOf("/")) return { repository: ref, tag: "latest" };
  return { repository: ref.slice(0, colon), tag: ref.slice(colon + 1) };
}

const kubeconfig = env.cluster.info.kubeconfig;
const helmIn = (args: string[]) => helmOk(args, { kubeconfig });

const objectRef = (o: k8s.KubernetesObject) =>
  `${o.kind}/${o.metadata?.name}${o.metadata?.namespace ? ` -n ${o.metadata.namespace}` : ""}`;

/** `kubectl get` of one object of the manifest: whether it exists. */
async function exists(o: k8s.KubernetesObject): Promise<boolean> {
  const kind = `${o.kind}.${(o.apiVersion ?? "").includes("/") ? o.apiVersion!.split("/")[0] : ""}`.replace(
    /\.$/,
    "",
  );
  const ns = CLUSTER_KINDS.has(o.kind ?? "") ? [] : ["-n", o.metadata?.namespace ?? releaseNs];
  const res = await env.kubectl([
    ...ns,
    "get",
    kind,
    o.metadata?.name ?? "",
    "--ignore-not-found",
    "-o",
    "name",
  ]);
  if (res.code !== 0) throw new Error(`kubectl get ${objectRef(o)}: ${res.stderr}`);
  return res.stdout.trim() !== "";
}

/** The controller pods of the release (not terminating). */
async function controllerPods(): Promise<k8s.V1Pod[]> {
  const pods = await env.core.listNamespacedPod({
    namespace: releaseNs,
    labelSelector: "app.kubernetes.io/name=ms2m-controller",
  });
  return pods.items.filter((p) => !p.metadata?.deletionTimestamp);
}

/** The controller pod's log lines (pino JSON), from the real node it runs on. */
async function controllerLog(pod: k8s.V1Pod): Promise<Record<string, unknown>[]> {
  return jsonLog(env, pod.spec!.nodeName!, releaseNs, pod.metadata!.name!, "controller");
}

/**
 * One live migration of a running consumer (a Deployment: ShadowPod, Direct) under its producer,
 * driven by the in-cluster controller: the target runs on `to`, restored by CRI-O.
 */
async function migrateLive(w: Workload, sourcePod: string, to: string) {
  const ns = appNs!;
  const started = Date.now();
  const name = `${w.name}-to-${to}`;
  await createMigration(env, ns, name, w, { sourcePod, targetNode: to, transferMode: "Direct" });
  const m = await waitForCompletion(env, ns, name, 180_000);
  if (m.metadata?.uid) migrationUids.push(m.metadata.uid);
  expect(m.status?.strategy).toBe("ShadowPod");
  const target = m.status!.targetPod!;
  const pods = await livePods(env, ns, w.name);
  expect(pods.map((p) => `${p.metadata?.name}@${p.spec?.nodeName}`)).toEqual([`${target}@${to}`]);
  const restoredAt = await restoredFromCheckpointAt(env, to, await containerId(env, ns, target, "consumer"));
  expect(restoredAt?.getTime()).toBeGreaterThanOrEqual(started - 1_000);
  await waitForPodsExactly(env, ns, w.name, [target]);
  console.log(`[helm] ${ns}/${name}: ${m.status?.duration} (${sourcePod} -> ${target}@${to})`);
  return { name, target };
}

beforeAll(async () => {
  work = tempDir("real-helm");
  // What the other files of the tier left (config/default in ms2m-system): a fresh cluster.
  await removeMs2m(env, { crds: true });
  const images = env.cluster.info.images;
  if (!images) throw new Error("no images in the cluster's registry (global-setup-real.ts pushes them)");
  valuesFile = join(work, "values.yaml");
  // What this cluster needs besides the images: the kubelets' serving certificates come from the
  // cluster CA, and its registry speaks plain HTTP.
  await writeFile(
    valuesFile,
    stringify({
      controller: { image: imageValues(images.controller), insecureRegistries: [env.registry] },
      agent: {
        image: imageValues(images.agent),
        kubelet: { caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt" },
        insecureRegistries: [env.registry],
      },
    }),
  );
});

afterFile(async (failed) => {
  for (const p of producers) await p.stop().catch(() => undefined);
  if (appNs) await env.core.deleteNamespace({ name: appNs }).catch(() => undefined);
  if (installed) {
    // A failed test: the release goes anyway, so the next file starts clean.
    const res = await helm(["uninstall", RELEASE, "-n", releaseNs, "--wait", "--timeout", "3m"], {
      kubeconfig,
    });
    if (res.code !== 0) console.error("[helm] teardown: helm uninstall:", res.stderr);
    await env
      .kubectl([
        "delete",
        "--ignore-not-found",
        "crd,clusterrole,clusterrolebinding,validatingwebhookconfiguration",
        "-l",
        `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/part-of=ms2m`,
      ])
      .catch(() => undefined);
  }
  await env.core.deleteNamespace({ name: releaseNs }).catch(() => undefined);
  // The workloads' queues and exchanges and the migrations' replay queues on the shared broker
  // (the harness sweeps those of namespaces still there at the end; this one is gone by then).
  if (brokerNs)
    await deleteBrokerObjects(runMatcher(brokerNs, WORKLOADS, migrationUids)).catch((err: unknown) =>
      console.error("[helm] teardown: broker cleanup:", err),
    );
  await removeTempDir(work, { keep: failed });
});

describe("the ms2m chart on real nodes", () => {
  let first: Workload;
  let second: Workload;
  let firstSource: string;
  let secondSource: string;

  it("helm install: the controller leads from its image, an agent is Ready on every node", async () => {
    // Nothing of ms2m is in the cluster: what the release creates cluster-wide is its own.
    const rendered = parseAllDocuments(
      await helmIn(["template", RELEASE, CHART_DIR, "-n", releaseNs, "-f", valuesFile]),
    )
      .map((d) => d.toJS() as k8s.KubernetesObject)
      .filter((o) => o?.kind && CLUSTER_KINDS.has(o.kind));
    expect(rendered.map((o) => o.kind)).toEqual(
      expect.arrayContaining(["CustomResourceDefinition", "ClusterRole", "ValidatingWebhookConfiguration"]),
    );
    for (const o of rendered) expect(await exists(o), objectRef(o)).toBe(false);

    const t = Date.now();
    installed = true;
    const out = await helmIn([
      "install",
      RELEASE,
      CHART_DIR,
      "-n",
      releaseNs,
      "--create-namespace",
      "-f",
      valuesFile,
      "--wait",
      "--timeout",
      "5m",
    ]);
    expect(out).toMatch(/STATUS: deployed/);
    const leader = await waitForControllerLeading(env, 120_000, releaseNs);
    await waitForAgents(env, 120_000, releaseNs);
    console.log(`[helm] helm install --wait and the controller leading in ${Date.now() - t} ms`);

    manifest = parseAllDocuments(await helmIn(["get", "manifest", RELEASE, "-n", releaseNs]))
      .map((d) => d.toJS() as k8s.KubernetesObject)
      .filter((o) => o?.kind);
    for (const o of manifest.filter((x) => CLUSTER_KINDS.has(x.kind ?? "")))
      expect(await exists(o), objectRef(o)).toBe(true);

    // The controller runs as the chart's Deployment, from the registry's image, on a real node.
    const images = env.cluster.info.images!;
    const [pod, ...others] = await controllerPods();
    expect(others).toEqual([]);
    expect(pod!.metadata!.name).toBe(leader);
    expect(pod!.spec!.containers[0]!.image).toBe(images.controller);
    expect(env.cluster.nodeNames()).toContain(pod!.spec!.nodeName);
    const ds = await env.apps.readNamespacedDaemonSet({ name: "ms2m-agent", namespace: releaseNs });
    expect(ds.spec!.template.spec!.containers[0]!.image).toBe(images.agent);
    expect(ds.status?.numberReady).toBe(env.cluster.nodeNames().length);
    // The leader issued the agents' TLS Secret in the release namespace.
    const tls = await env.core.readNamespacedSecret({ name: "ms2m-agent-tls", namespace: releaseNs });
    expect(Object.keys(tls.data ?? {})).toEqual(expect.arrayContaining(["tls.crt", "tls.key", "ca.crt"]));
    expect((await controllerLog(pod!)).some((l) => l.msg === "became leader")).toBe(true);
  });

  it("the in-cluster controller moves a real consumer live", async () => {
    appNs = brokerNs = await createNamespace(env, "real-helm");
    // As README says a namespace owner does: the release's controller may read the broker Secret.
    mustSucceed(
      await env.kubectl([
        "-n",
        appNs,
        "create",
        "rolebinding",
        "ms2m-helm-broker-secret-reader",
        "--clusterrole=ms2m-broker-secret-reader",
        `--serviceaccount=${releaseNs}:ms2m-controller`,
      ]),
      "bind the broker Secret reader",
    );
    first = { ...workloadNames(appNs, WORKLOADS[0]!, work), appliedLogDir: join(work, "first-applied") };
    second = { ...workloadNames(appNs, WORKLOADS[1]!, work), appliedLogDir: join(work, "second-applied") };
    await createDeployment(env, appNs, first, "node-a");
    await createDeployment(env, appNs, second, "node-a");
    firstSource = (await waitForConsumers(env, appNs, first.name, 1))[0]!.metadata!.name!;
    secondSource = (await waitForConsumers(env, appNs, second.name, 1))[0]!.metadata!.name!;
    for (const w of [first, second]) {
      const p = new TestProducer(env, w, 20);
      producers.push(p);
      await p.start();
    }
    await sleep(3_000); // messages only the sources' memory holds

    const { name } = await migrateLive(first, firstSource, "node-b");
    // Driven by the release's controller: its leader logged the phases of this migration.
    const [leader] = await controllerPods();
    const lines = (await controllerLog(leader!)).filter((l) => JSON.stringify(l).includes(name));
    expect(lines.some((l) => l.msg === "phase change" && l.to === "Completed")).toBe(true);
    // At the chart's default log level (info) nothing is logged at debug.
    expect((await controllerLog(leader!)).filter((l) => l.level === "debug" || l.level === "trace")).toEqual(
      [],
    );
  });

  it("helm upgrade of the log level rolls the controller, which keeps migrating", async () => {
    const [before] = await controllerPods();
    const agentsBefore = (
      await env.core.listNamespacedPod({
        namespace: releaseNs,
        labelSelector: "app.kubernetes.io/name=ms2m-agent",
      })
    ).items.map((p) => p.metadata!.uid);
    const t = Date.now();
    const out = await helmIn([
      "upgrade",
      RELEASE,
      CHART_DIR,
      "-n",
      releaseNs,
      "--reuse-values",
      "--set",
      "controller.logLevel=debug",
      "--wait",
      "--timeout",
      "5m",
    ]);
    expect(out).toMatch(/STATUS: deployed/);
    expect(out).toMatch(/REVISION: 2/);
    // A new controller pod, with the new level, leading; the old one gone.
    const leader = await waitFor(
      "a new controller pod leading",
      async () => {
        const name = await waitForControllerLeading(env, 120_000, releaseNs);
        const pods = await controllerPods();
        return name !== before!.metadata!.name && pods.length === 1 ? name : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 500 },
    );
    console.log(`[helm] helm upgrade --wait and the new controller leading in ${Date.now() - t} ms`);
    const [pod] = await controllerPods();
    expect(pod!.metadata!.name).toBe(leader);
    const level = pod!.spec!.containers[0]!.env?.find((e) => e.name === "LOG_LEVEL");
    expect(level?.value).toBe("debug");
    // The agents' values did not change: the DaemonSet did not roll.
    const agentsAfter = (
      await env.core.listNamespacedPod({
        namespace: releaseNs,
        labelSelector: "app.kubernetes.io/name=ms2m-agent",
      })
    ).items.map((p) => p.metadata!.uid);
    expect(agentsAfter.sort()).toEqual(agentsBefore.sort());

    await migrateLive(second, secondSource, "node-b");
    // The new level is in force: the replay's control messages are logged at debug.
    const debug = (await controllerLog(pod!)).filter((l) => l.level === "debug");
    expect(debug.some((l) => l.msg === "sending control message")).toBe(true);

    // Both consumers, each moved once: every message applied exactly once.
    for (const [i, w] of [first, second].entries()) {
      const report = await finalAccounting(
        env,
        appNs!,
        w,
        producers[i]!,
        stopper(env, appNs!, "deploy", w.name),
      );
      console.log(`[helm] ${w.name}: published ${report.published}, processed ${report.processed}`);
      expectNoLoss(report);
      expect(report.published).toBeGreaterThan(60);
    }
  });

  it("helm uninstall leaves none of the chart's objects behind", async () => {
    // The workloads and their migrations go first, while the controller still runs.
    await env.core.deleteNamespace({ name: appNs! });
    await waitFor(
      `namespace ${appNs} gone`,
      () =>
        env.core.readNamespace({ name: appNs! }).then(
          () => undefined,
          (err: unknown) => ((err as { code?: number }).code === 404 ? true : Promise.reject(err)),
        ),
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    appNs = undefined;

    const t = Date.now();
    const out = await helmIn(["uninstall", RELEASE, "-n", releaseNs, "--wait", "--cascade", "foreground"]);
    installed = false;
    expect(out).toMatch(/release "ms2m" uninstalled/);
    console.log(`[helm] helm uninstall --wait in ${Date.now() - t} ms`);

    // Every object of the release, cluster-wide ones too: the CRDs (crds.keep is false by
    // default), the ClusterRoles and bindings, the webhook configuration.
    const left: string[] = [];
    for (const o of manifest) if (await exists(o)) left.push(objectRef(o));
    expect(left).toEqual([]);
    const byLabel = await env.kubectl([
      "get",
      "crd,clusterrole,clusterrolebinding,validatingwebhookconfiguration,mutatingwebhookconfiguration",
      "-l",
      "app.kubernetes.io/part-of=ms2m",
      "-o",
      "name",
    ]);
    expect(byLabel.stdout.trim()).toBe("");
    for (const crd of ["statefulmigrations.migration.ms2m.io", "migrationpolicies.migration.ms2m.io"]) {
      const res = await env.kubectl(["get", `crd/${crd}`, "--ignore-not-found", "-o", "name"]);
      expect(res.stdout.trim(), crd).toBe("");
    }
    // What the controller created at run time (the agents' Secrets, its Lease, Jobs) went with
    // the post-delete hook, and the hook itself; nothing but Kubernetes' own is left.
    await waitFor(
      `no pods in ${releaseNs}`,
      async () =>
        (await env.core.listNamespacedPod({ namespace: releaseNs })).items.length === 0 ? true : undefined,
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const remaining = mustSucceed(
      await env.kubectl([
        "-n",
        releaseNs,
        "get",
        "secrets,configmaps,serviceaccounts,roles,rolebindings,services,leases,jobs,deployments,daemonsets",
        "-o",
        "name",
      ]),
      "list the release namespace",
    )
      .split("\n")
      .filter(Boolean);
    expect(remaining.sort()).toEqual(["configmap/kube-root-ca.crt", "serviceaccount/default"]);

    await env.core.deleteNamespace({ name: releaseNs });
  });
});
