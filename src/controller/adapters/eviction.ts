// The eviction path's cluster access over @kubernetes/client-node (EvictionClusterPort), and the
// webhook's plumbing: its serving certificate from the Secret the leader maintains, and the
// CA bundle written into the ValidatingWebhookConfiguration so the API server trusts it.
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PolicyV1Api,
  type KubeConfig,
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
import { mergePatchOptions } from "../../kube/patch.ts";
import { LABEL_TRIGGER, TRIGGER_EVICTION, type EvictionClusterPort } from "../eviction/decide.ts";
import { WEBHOOK_PATH } from "../eviction/webhook.ts";

export class KubeEvictionCluster implements EvictionClusterPort {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly policy: PolicyV1Api;
  private readonly log: Logger | undefined;

  constructor(kc: KubeConfig, log?: Logger) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.policy = kc.makeApiClient(PolicyV1Api);
    this.log = log;
  }

  getPod(namespace: string, name: string) {
    return getOrUndefined(
      () => this.core.readNamespacedPod({ namespace, name }),
      `get pod ${namespace}/${name}`,
    );
  }

  getNode(name: string) {
    return getOrUndefined(() => this.core.readNode({ name }), `get node ${name}`);
  }

  async listPolicies(namespace: string) {
    const list = (await kubeCall(
      () => this.custom.listNamespacedCustomObject({ group, version, plural: policyPlural, namespace }),
      `list MigrationPolicies in ${namespace}`,
    )) as { items: unknown[] };
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
        () => this.policy.listNamespacedPodDisruptionBudget({ namespace }),
        `list PodDisruptionBudgets in ${namespace}`,
      )
    ).items;
  }

  async listEvictionMigrations(namespace: string) {
    const list = (await kubeCall(
      () =>
        this.custom.listNamespacedCustomObject({
          group,
          version,
          plural,
          namespace,
          labelSelector: `${LABEL_TRIGGER}=${TRIGGER_EVICTION}`,
        }),
      `list StatefulMigrations in ${namespace}`,
    )) as { items: StatefulMigration[] };
    return list.items;
  }

  async createMigration(namespace: string, m: StatefulMigration) {
    try {
      return (await this.custom.createNamespacedCustomObject({
        group,
        version,
        plural,
        namespace,
        body: m,
      })) as StatefulMigration;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      const name = m.metadata.name ?? "";
      return (await kubeCall(
        () => this.custom.getNamespacedCustomObject({ group, version, plural, namespace, name }),
        `get StatefulMigration ${namespace}/${name}`,
      )) as StatefulMigration;
    }
  }

  async recordStarted(policy: MigrationPolicy, migration: string) {
    const started = (policy.status?.migrationsStarted ?? 0) + 1;
    await this.custom.patchNamespacedCustomObjectStatus(
      {
        group,
        version,
        plural: policyPlural,
        namespace: policy.metadata.namespace ?? "",
        name: policy.metadata.name ?? "",
        body: {
          metadata: { resourceVersion: policy.metadata.resourceVersion },
          status: {
            migrationsStarted: started,
            lastMigration: migration,
            ...(policy.metadata.generation !== undefined
              ? { observedGeneration: policy.metadata.generation }
              : {}),
          },
        },
      },
      mergePatchOptions(),
    );
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
  const api = kc.makeApiClient(AdmissionregistrationV1Api);
  const config = await getOrUndefined(
    () => api.readValidatingWebhookConfiguration({ name: configName }),
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
      api.patchValidatingWebhookConfiguration(
        {
          name: configName,
          body: {
            metadata: { resourceVersion: config.metadata?.resourceVersion },
            webhooks: webhooks.map((w) => ({ ...w, clientConfig: want(w) })),
          },
        },
        mergePatchOptions(),
      ),
    `patch ValidatingWebhookConfiguration ${configName}`,
  );
  return true;
}
