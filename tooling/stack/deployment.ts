// ms2m as a user installs it, controller included: config/default rendered with kustomize, the
// images set to the ones this cluster runs, applied with kubectl, the controller running as its
// Deployment (not the host binary of controller-process.ts) and issuing the agents' TLS itself
// (MANAGE_AGENT_TLS). Used by `make deploy` (hack/deploy.ts), the real tier's deployed-controller
// test and the kubectl-ms2m tests.
import { X509Certificate } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { waitFor } from "../exec.ts";
import { CertificateAuthority } from "../cluster/pki.ts";
import { mustSucceed, renderKustomize, repoPath } from "./manifests.ts";
import { AGENT_IMAGE, CONSUMER_IMAGE, SYSTEM_NS, type StackEnv, workDir } from "./env.ts";
import { waitForAgents } from "./deploy.ts";

/** config/default's controller image (simulated nodes map it to the controller's sources). */
export const CONTROLLER_IMAGE = "ghcr.io/ms2m/ms2m-controller:0.1.0";

export interface Ms2mImages {
  controller: string;
  agent: string;
}

export interface DeployOptions {
  /** Default: the cluster's registry images (real nodes), config/default's names (simulated). */
  images?: Ms2mImages;
  /** More controller environment (replaces variables of the same name). */
  controllerEnv?: Record<string, string>;
  agentEnv?: Record<string, string>;
  /** Controller replicas (default: config/default's 1). */
  replicas?: number;
}

/** The images ms2m runs from on this cluster. */
export function clusterImages(env: Pick<StackEnv, "cluster">): Ms2mImages {
  const images = env.cluster.info.images;
  if (env.cluster.runtime === "real") {
    if (!images)
      throw new Error("a real-node cluster without images in its registry (pushProjectImages first)");
    return { controller: images.controller, agent: images.agent };
  }
  return { controller: CONTROLLER_IMAGE, agent: AGENT_IMAGE };
}

function setEnv(c: k8s.V1Container, values: Record<string, string>): void {
  const env = (c.env ?? []).filter((e) => !(e.name in values));
  for (const [name, value] of Object.entries(values)) env.push({ name, value });
  c.env = env;
}

/**
 * What this cluster needs besides the images: the kubelets' serving certificates come from the
 * cluster CA (the agent verifies them with the ServiceAccount's ca.crt), the registry on the
 * bridge speaks HTTP, and simulated nodes keep containers-storage in vfs.
 */
function clusterSettings(env: StackEnv, images: Ms2mImages) {
  const agent: Record<string, string> = {
    AGENT_KUBELET_CA_FILE: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    AGENT_INSECURE_REGISTRIES: env.registry,
    ...(env.cluster.runtime === "real" ? {} : { AGENT_STORAGE_DRIVER: "vfs" }),
  };
  const controller: Record<string, string> = {
    TRANSFER_JOB_IMAGE: images.agent,
    TRANSFER_JOB_INSECURE_REGISTRIES: env.registry,
  };
  return { agent, controller };
}

/** config/default with this cluster's images and settings, as objects ready to apply. */
export async function renderMs2m(
  env: StackEnv,
  options: DeployOptions = {},
): Promise<k8s.KubernetesObject[]> {
  const images = options.images ?? clusterImages(env);
  const settings = clusterSettings(env, images);
  const rendered = await renderKustomize(env.kubectl, "config/default");
  const objects = parseAllDocuments(rendered)
    .map((d) => d.toJS() as k8s.KubernetesObject)
    .filter((o) => o.kind);
  for (const o of objects) {
    if (o.kind === "Deployment" && o.metadata?.name === "ms2m-controller") {
      const d = o as k8s.V1Deployment;
      if (options.replicas !== undefined) d.spec!.replicas = options.replicas;
      const c = d.spec!.template.spec!.containers[0]!;
      c.image = images.controller;
      setEnv(c, { ...settings.controller, ...options.controllerEnv });
    }
    if (o.kind === "DaemonSet" && o.metadata?.name === "ms2m-agent") {
      const c = (o as k8s.V1DaemonSet).spec!.template.spec!.containers[0]!;
      c.image = images.agent;
      setEnv(c, { ...settings.agent, ...options.agentEnv });
    }
  }
  return objects;
}

/**
 * Deploys ms2m from config/default, controller included, and waits until an agent is Ready on
 * every node and the controller is Ready and leading. Simulated nodes learn the images first (the
 * controller, agent and reference workload sources, run as the images would run them).
 */
export async function deployMs2mWithController(env: StackEnv, options: DeployOptions = {}): Promise<void> {
  if (env.cluster.runtime !== "real") {
    const images = options.images ?? clusterImages(env);
    for (const name of env.cluster.nodeNames()) {
      await env.cluster.node(name).setImages({
        [images.agent]: { command: [process.execPath, repoPath("tooling/stack/agent-entry.ts")] },
        [images.controller]: { command: [process.execPath, repoPath("tooling/stack/controller-entry.ts")] },
        // The reference workload, as deployMs2m maps it.
        [CONSUMER_IMAGE]: { command: [process.execPath, repoPath("tooling/stack/workload-entry.ts")] },
      });
    }
  }
  const objects = await renderMs2m(env, options);
  if (env.cluster.runtime !== "real") await simulatorAgentTls(env, objects);
  const body = objects.map((o) => `---\n${JSON.stringify(o)}\n`).join("");
  // A controller run outside the cluster by an earlier test file pointed the eviction webhook at
  // its URL (WEBHOOK_URL, its own field manager): applying config/default's `service` on top
  // would leave both set, which the API server refuses. Start from config/default's object.
  await env.kubectl(["delete", "validatingwebhookconfiguration", "ms2m-eviction", "--ignore-not-found"]);
  mustSucceed(
    await env.kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], body),
    "apply config/default",
  );
  mustSucceed(
    await env.kubectl([
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/statefulmigrations.migration.ms2m.io",
    ]),
    "wait for the CRD",
  );
  await waitForControllerLeading(env);
  if (env.cluster.runtime !== "real") await restartAgentsOnControllerCert(env);
  await waitForAgents(env, 180_000);
}

/**
 * On simulated nodes the agents first serve the throwaway certificate (simulatorAgentTls) or one
 * an earlier test file's PKI left in the Secret; the leader re-issues it from its own CA, and an
 * agent reads its Secret volume at start. Wait for the re-issue, then restart the agents so that
 * every agent serves what the controller trusts (a kubelet would refresh the volume only after
 * its sync period; until then, agent-to-agent transfers fail verification and retry).
 */
async function restartAgentsOnControllerCert(env: StackEnv): Promise<void> {
  const secret = (name: string) =>
    env.core.readNamespacedSecret({ name, namespace: SYSTEM_NS }).catch(() => undefined);
  const pem = (s: k8s.V1Secret | undefined, key: string) =>
    s?.data?.[key] ? Buffer.from(s.data[key], "base64").toString("utf8") : undefined;
  await waitFor(
    "the agents' certificate issued from the controller's CA",
    async () => {
      const ca = pem(await secret("ms2m-agent-ca"), "tls.crt");
      const serving = pem(await secret("ms2m-agent-tls"), "tls.crt");
      if (!ca || !serving) return undefined;
      return new X509Certificate(serving).checkIssued(new X509Certificate(ca)) ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  await env.core.deleteCollectionNamespacedPod({
    namespace: SYSTEM_NS,
    labelSelector: "app.kubernetes.io/name=ms2m-agent",
  });
}

/**
 * The simulator mounts a Secret volume only once the Secret exists, `optional: true` or not (a
 * real kubelet starts the pod without it), so on simulated nodes the controller pod could never
 * start to issue the agents' Secret. There the Secret is issued first (a throwaway CA, as
 * deployMs2m does); the controller, leading, re-issues it from its own CA as on a real cluster.
 */
async function simulatorAgentTls(env: StackEnv, objects: k8s.KubernetesObject[]): Promise<void> {
  const namespace = objects.find((o) => o.kind === "Namespace");
  if (namespace) {
    mustSucceed(
      await env.kubectl(
        ["apply", "--server-side", "--force-conflicts", "-f", "-"],
        JSON.stringify(namespace),
      ),
      "apply the namespace",
    );
  }
  const existing = await env.core
    .readNamespacedSecret({ name: "ms2m-agent-tls", namespace: SYSTEM_NS })
    .catch(() => undefined);
  if (existing) return;
  const work = await workDir("sim-agent-tls");
  try {
    const ca = new CertificateAuthority(join(work, "pki"));
    await ca.init();
    const pair = await ca.issue("agent", {
      commonName: "ms2m-agent",
      dnsNames: ["ms2m-agent"],
      usage: "both",
    });
    const data = {
      "tls.crt": (await readFile(pair.cert)).toString("base64"),
      "tls.key": (await readFile(pair.key)).toString("base64"),
      "ca.crt": (await readFile(ca.ca.cert)).toString("base64"),
    };
    await env.core.createNamespacedSecret({
      namespace: SYSTEM_NS,
      body: { metadata: { name: "ms2m-agent-tls" }, type: "kubernetes.io/tls", data },
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The controller pod that holds the Lease, once it is Ready (in `namespace`, default ms2m-system). */
export async function waitForControllerLeading(
  env: StackEnv,
  timeoutMs = 120_000,
  namespace = SYSTEM_NS,
): Promise<string> {
  const coordination = env.kc.makeApiClient(k8s.CoordinationV1Api);
  return waitFor(
    "ms2m-controller Ready and leading",
    async () => {
      const pods = await env.core.listNamespacedPod({
        namespace,
        labelSelector: "app.kubernetes.io/name=ms2m-controller",
      });
      const ready = pods.items.filter(
        (p) =>
          !p.metadata?.deletionTimestamp &&
          p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      );
      const lease = await coordination
        .readNamespacedLease({ name: "ms2m-controller", namespace })
        .catch(() => undefined);
      const holder = lease?.spec?.holderIdentity ?? "";
      const leader = ready.find((p) => holder.startsWith(`${p.metadata?.name}_`));
      return leader?.metadata?.name;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/**
 * Stops the controller Deployment (the other tests run the controller binary themselves) and
 * waits until its pods are gone. The rest of config/default stays.
 */
export async function removeControllerDeployment(env: StackEnv, timeoutMs = 90_000): Promise<void> {
  await env.apps
    .deleteNamespacedDeployment({ name: "ms2m-controller", namespace: SYSTEM_NS })
    .catch((err: unknown) => {
      if ((err as { code?: number }).code !== 404) throw err;
    });
  await waitFor(
    "ms2m-controller pods gone",
    async () => {
      const pods = await env.core.listNamespacedPod({
        namespace: SYSTEM_NS,
        labelSelector: "app.kubernetes.io/name=ms2m-controller",
      });
      return pods.items.length === 0 ? true : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/**
 * Removes ms2m from the cluster but its CRDs (deleting those would delete every migration):
 * the namespace with everything in it (the controller's Secrets and Lease too) and the
 * cluster-wide RBAC of config/default. For a test that installs ms2m afresh (the Helm chart).
 */
export async function removeMs2mKeepingCrds(env: StackEnv, timeoutMs = 120_000): Promise<void> {
  const rendered = await renderKustomize(env.kubectl, "config/default", [
    "ClusterRole",
    "ClusterRoleBinding",
  ]);
  if (rendered.trim())
    mustSucceed(
      await env.kubectl(["delete", "--ignore-not-found", "--wait=false", "-f", "-"], rendered),
      "delete ms2m's cluster RBAC",
    );
  await env.core.deleteNamespace({ name: SYSTEM_NS }).catch((err: unknown) => {
    if ((err as { code?: number }).code !== 404) throw err;
  });
  await waitFor(
    `namespace ${SYSTEM_NS} gone`,
    async () => {
      const ns = await env.core.readNamespace({ name: SYSTEM_NS }).catch((err: unknown) => {
        if ((err as { code?: number }).code === 404) return null;
        throw err;
      });
      return ns === null ? true : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/** ms2m's CRDs (crd/), cluster-wide. */
export const MS2M_CRDS = ["statefulmigrations.migration.ms2m.io", "migrationpolicies.migration.ms2m.io"];

/**
 * Removes everything config/default deployed: the controller Deployment first (its pods stop
 * before their RBAC goes), then the namespace with everything in it and the cluster-wide RBAC,
 * and the eviction webhook's configuration. With `crds` the CRDs too, and with them every
 * StatefulMigration and MigrationPolicy of the cluster: the finalizers of those left are dropped
 * first (no controller is left to run them). `make undeploy` (hack/deploy.ts --undeploy) and the
 * Helm test, which installs ms2m afresh.
 */
export async function removeMs2m(env: StackEnv, options: { crds?: boolean } = {}): Promise<void> {
  await removeControllerDeployment(env);
  await removeMs2mKeepingCrds(env);
  mustSucceed(
    await env.kubectl(["delete", "--ignore-not-found", "validatingwebhookconfiguration", "ms2m-eviction"]),
    "delete the eviction webhook configuration",
  );
  if (!options.crds) return;
  for (const crd of MS2M_CRDS) {
    const [plural, group] = [crd.slice(0, crd.indexOf(".")), crd.slice(crd.indexOf(".") + 1)];
    const list = (await env.custom
      .listClusterCustomObject({ group, version: "v1alpha1", plural })
      .catch((err: unknown) => {
        if ((err as { code?: number }).code === 404) return { items: [] };
        throw err;
      })) as { items: k8s.KubernetesObject[] };
    for (const o of list.items) {
      if (!o.metadata?.finalizers?.length) continue;
      await env.kubectl([
        "-n",
        o.metadata.namespace ?? "",
        "patch",
        `${plural}.${group}`,
        o.metadata.name ?? "",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
      ]);
    }
  }
  mustSucceed(
    await env.kubectl([
      "delete",
      "--ignore-not-found",
      "--timeout=120s",
      ...MS2M_CRDS.map((c) => `crd/${c}`),
    ]),
    "delete ms2m's CRDs",
  );
}
