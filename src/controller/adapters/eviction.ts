// The eviction path's cluster access over the REST API (EvictionClusterPort), and the
// webhook's plumbing: its serving certificate from the Secret the leader maintains, and the
// CA bundle written into the ValidatingWebhookConfiguration so the API server trusts it.
import type {
  KubeConfig,
  V1Node,
  V1Pod,
  V1PodDisruptionBudget,
  V1ValidatingWebhookConfiguration,
} from "@kubernetes/client-node";
import {
  group,
  MigrationPolicy,
  plural,
  policyPlural,
  version,
  type StatefulMigration,
} from "../../api/v1alpha1/index.ts";
import type { Logger } from "../../common/logger.ts";
import { getOrUndefined, isAlreadyExists, kubeCall } from "../../kube/errors.ts";
import { KubeRest, resourcePath } from "../../kube/rest.ts";
import { LABEL_TRIGGER, TRIGGER_EVICTION, type EvictionClusterPort } from "../eviction/decide.ts";
import { WEBHOOK_PATH } from "../eviction/webhook.ts";

export class KubeEvictionCluster implements EvictionClusterPort {
  private readonly rest: KubeRest;
  private readonly log: Logger | undefined;

  constructor(kc: KubeConfig, log?: Logger) {
    this.rest = new KubeRest(kc);
    this.log = log;
  }

  getPod(namespace: string, name: string) {
    return getOrUndefined(
      () => this.rest.get<V1Pod>(resourcePath({ version: "v1", plural: "pods", namespace, name })),
      `get pod ${namespace}/${name}`,
    );
  }

  getNode(name: string) {
    return getOrUndefined(
      () => this.rest.get<V1Node>(resourcePath({ version: "v1", plural: "nodes", name })),
      `get node ${name}`,
    );
  }

  async listPolicies(namespace: string) {
    const list = await kubeCall(
      () => this.rest.list(resourcePath({ group, version, plural: policyPlural, namespace })),
      `list MigrationPolicies in ${namespace}`,
    );
    return list.items.flatMap((o) => {
      const parsed = MigrationPolicy.safeParse(o);
      if (!parsed.success)
        this.log?.warn({ namespace, err: parsed.error.message }, "ignoring an invalid MigrationPolicy");
      return parsed.success ? [parsed.data] : [];
    });
  }

  async listPodDisruptionBudgets(namespace: string) {
    return (
      await kubeCall(
        () =>
          this.rest.list<V1PodDisruptionBudget>(
            resourcePath({ group: "policy", version: "v1", plural: "poddisruptionbudgets", namespace }),
          ),
        `list PodDisruptionBudgets in ${namespace}`,
      )
    ).items;
  }

  async listEvictionMigrations(namespace: string) {
    const list = await kubeCall(
      () =>
        this.rest.list<StatefulMigration>(resourcePath({ group, version, plural, namespace }), {
          labelSelector: `${LABEL_TRIGGER}=${TRIGGER_EVICTION}`,
        }),
      `list StatefulMigrations in ${namespace}`,
    );
    return list.items;
  }

  async createMigration(namespace: string, m: StatefulMigration) {
    try {
      return await this.rest.create<StatefulMigration>(
        resourcePath({ group, version, plural, namespace }),
        m,
      );
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const name = m.metadata.name ?? "";
      return await kubeCall(
        () => this.rest.get<StatefulMigration>(resourcePath({ group, version, plural, namespace, name })),
        `get StatefulMigration ${namespace}/${name}`,
      );
    }
  }

  async recordStarted(policy: MigrationPolicy, migration: string) {
    const started = (policy.status?.migrationsStarted ?? 0) + 1;
    const path = resourcePath({
      group,
      version,
      plural: policyPlural,
      namespace: policy.metadata.namespace ?? "",
      name: policy.metadata.name ?? "",
      subresource: "status",
    });
    await this.rest.patch(path, "merge", {
      metadata: { resourceVersion: policy.metadata.resourceVersion },
      status: {
        migrationsStarted: started,
        lastMigration: migration,
        ...(policy.metadata.generation !== undefined
          ? { observedGeneration: policy.metadata.generation }
          : {}),
      },
    });
  }
}

/**
 * Writes `caBundle` into every webhook of the ValidatingWebhookConfiguration that does not carry
 * it yet (the API server verifies the webhook's certificate against it), and `url` instead of the
 * Service when given. Absent configuration: nothing to do (the webhook is not installed).
 */
export async function injectCaBundle(
  kc: KubeConfig,
  configName: string,
  caBundle: string,
  url?: string,
): Promise<boolean> {
  const rest = new KubeRest(kc);
  const path = resourcePath({
    group: "admissionregistration.k8s.io",
    version: "v1",
    plural: "validatingwebhookconfigurations",
    name: configName,
  });
  const config = await getOrUndefined(
    () => rest.get<V1ValidatingWebhookConfiguration>(path),
    `get ValidatingWebhookConfiguration ${configName}`,
  );
  if (!config) return false;
  const encoded = Buffer.from(caBundle, "utf8").toString("base64");
  const webhooks = config.webhooks ?? [];
  const want = (w: (typeof webhooks)[number]) =>
    url
      ? { url: `${url.replace(/\/+$/, "")}${WEBHOOK_PATH}`, caBundle: encoded }
      : { ...w.clientConfig, caBundle: encoded };
  if (webhooks.every((w) => JSON.stringify(w.clientConfig) === JSON.stringify(want(w)))) return false;
  await kubeCall(
    () =>
      rest.patch(path, "merge", {
        metadata: { resourceVersion: config.metadata?.resourceVersion },
        webhooks: webhooks.map((w) => ({ ...w, clientConfig: want(w) })),
      }),
    `patch ValidatingWebhookConfiguration ${configName}`,
  );
  return true;
}
