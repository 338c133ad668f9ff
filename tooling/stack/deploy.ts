// ms2m from config/default on a cluster: CRD, RBAC, the agent DaemonSet (simulated or real
// images), the agents' TLS Secret.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { waitFor } from "../exec.ts";
import { installCrd, mustSucceed, renderKustomize, repoPath } from "./manifests.ts";
import { CertificateAuthority } from "../cluster/pki.ts";
import { AGENT_IMAGE, CONSUMER_IMAGE, type ControllerTestEnv, SYSTEM_NS, imagesOf } from "./env.ts";

/** Every env var of the DaemonSet container, with `overrides` replacing or adding. */
function withEnv(env: k8s.V1EnvVar[], overrides: Record<string, string>): k8s.V1EnvVar[] {
  const out = env.filter((e) => !(e.name in overrides));
  for (const [name, value] of Object.entries(overrides)) out.push({ name, value });
  return out;
}

/** What the project's images run on a simulated node (nodes started after deployMs2m need them too). */
export function simulatedImages() {
  return {
    [AGENT_IMAGE]: { command: [process.execPath, repoPath("tooling/stack/agent-entry.ts")] },
    [CONSUMER_IMAGE]: { command: [process.execPath, repoPath("tooling/stack/workload-entry.ts")] },
  };
}

/**
 * ms2m from config/default without the controller Deployment (the tests run the controller
 * binary on the host): CRD, RBAC, the agent DaemonSet with the simulated nodes' settings (vfs
 * containers-storage, the cluster CA for the kubelet, the test registry over HTTP), and the
 * agents' TLS Secret. Idempotent; returns the CA file the controller verifies agents with.
 */
export async function deployMs2m(env: ControllerTestEnv, work: string): Promise<{ caFile: string }> {
  const { kubectl, cluster, core } = env;
  await installCrd(kubectl);
  const real = cluster.runtime === "real";
  if (!real) {
    for (const name of cluster.nodeNames()) await cluster.node(name).setImages(simulatedImages());
  }
  const rendered = await renderKustomize(kubectl, "config/default");
  // The controller points its eviction webhook at itself (WEBHOOK_URL: it runs on the host here)
  // and writes its CA there: created once, never re-applied over what the controller wrote.
  const webhookConfigExists = await env.kc
    .makeApiClient(k8s.AdmissionregistrationV1Api)
    .readValidatingWebhookConfiguration({ name: "ms2m-eviction" })
    .then(
      () => true,
      () => false,
    );
  const objects = parseAllDocuments(rendered)
    .map((d) => d.toJS() as k8s.KubernetesObject & { spec?: unknown })
    .filter((o) => o.kind && !(o.kind === "Deployment" && o.metadata?.name === "ms2m-controller"))
    .filter((o) => !(o.kind === "ValidatingWebhookConfiguration" && webhookConfigExists));
  for (const o of objects) {
    if (o.kind !== "DaemonSet") continue;
    const ds = o as k8s.V1DaemonSet;
    const c = ds.spec?.template.spec?.containers[0];
    if (!c) throw new Error("agent DaemonSet has no container");
    // Real nodes: the agent image built by `make images`, pulled from the cluster's registry, on
    // CRI-O's overlay storage. Simulated nodes: the image name maps to the agent's sources.
    if (real) c.image = imagesOf(env).agent;
    c.env = withEnv(c.env ?? [], {
      ...(real ? {} : { AGENT_STORAGE_DRIVER: "vfs" }),
      // The cluster CA signs the kubelets' serving certificates.
      AGENT_KUBELET_CA_FILE: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
      AGENT_INSECURE_REGISTRIES: env.registry,
    });
  }
  const body = objects.map((o) => `---\n${JSON.stringify(o)}\n`).join("");

  // The agents' serving certificate (every node address) and its CA, before the DaemonSet.
  const caFile = join(work, "agent-ca.crt");
  await core.createNamespace({ body: { metadata: { name: SYSTEM_NS } } }).catch(ignoreConflict);
  const existing = await core
    .readNamespacedSecret({ name: "ms2m-agent-tls", namespace: SYSTEM_NS })
    .catch(() => undefined);
  if (existing?.data?.["ca.crt"]) {
    await writeFile(caFile, Buffer.from(existing.data["ca.crt"], "base64"));
  } else {
    const ca = new CertificateAuthority(join(work, "agent-pki"));
    await ca.init();
    const ips = cluster.info.nodes.map((n) => n.ip);
    const pair = await ca.issue("agent", {
      commonName: "ms2m-agent",
      dnsNames: ["ms2m-agent"],
      ipAddresses: ips,
      usage: "both",
    });
    const data = {
      "tls.crt": (await readFile(pair.cert)).toString("base64"),
      "tls.key": (await readFile(pair.key)).toString("base64"),
      "ca.crt": (await readFile(ca.ca.cert)).toString("base64"),
    };
    await core.createNamespacedSecret({
      namespace: SYSTEM_NS,
      body: { metadata: { name: "ms2m-agent-tls" }, type: "kubernetes.io/tls", data },
    });
    await writeFile(caFile, Buffer.from(data["ca.crt"], "base64"));
  }
  mustSucceed(
    await kubectl(["apply", "--server-side", "--force-conflicts", "-f", "-"], body),
    "apply config/default",
  );
  await waitForAgents(env);
  return { caFile };
}

function ignoreConflict(err: unknown): void {
  if ((err as { code?: number }).code !== 409) throw err;
}

/** An agent pod Ready on every node (in `namespace`, default ms2m-system). */
export async function waitForAgents(
  env: ControllerTestEnv,
  timeoutMs = 90_000,
  namespace = SYSTEM_NS,
): Promise<void> {
  const nodes = env.cluster.nodeNames();
  await waitFor(
    "ms2m-agent Ready on every node",
    async () => {
      const pods = await env.core.listNamespacedPod({
        namespace,
        labelSelector: "app.kubernetes.io/name=ms2m-agent",
      });
      const ready = new Set(
        pods.items
          .filter(
            (p) =>
              !p.metadata?.deletionTimestamp &&
              p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
          )
          .map((p) => p.spec?.nodeName),
      );
      return nodes.every((n) => ready.has(n)) ? true : undefined;
    },
    { timeoutMs, intervalMs: 250 },
  );
}
