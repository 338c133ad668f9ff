// SecretStore over core/v1 Secrets of one namespace. Values are base64-decoded to UTF-8 here;
// errors become Ms2mErrors (NotFound → undefined, Conflict, AlreadyExists).
import type { KubeConfig, V1Secret } from "@kubernetes/client-node";
import { getOrUndefined, kubeCall } from "../../kube/errors.ts";
import { KubeRest, resourcePath } from "../../kube/rest.ts";
import type { SecretStore, StoredSecret } from "./manager.ts";

const toStored = (s: V1Secret): StoredSecret => ({
  data: Object.fromEntries(
    Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
  ),
  ...(s.metadata?.annotations ? { annotations: s.metadata.annotations } : {}),
  ...(s.metadata?.labels ? { labels: s.metadata.labels } : {}),
  ...(s.type ? { type: s.type } : {}),
  ...(s.metadata?.resourceVersion ? { resourceVersion: s.metadata.resourceVersion } : {}),
});

export class KubeSecretStore implements SecretStore {
  private readonly rest: KubeRest;
  readonly namespace: string;

  constructor(kc: KubeConfig, namespace: string) {
    this.rest = new KubeRest(kc);
    this.namespace = namespace;
  }

  private path(name?: string): string {
    return resourcePath({
      version: "v1",
      plural: "secrets",
      namespace: this.namespace,
      name,
    });
  }

  private body(name: string, s: StoredSecret): V1Secret {
    return {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name,
        namespace: this.namespace,
        ...(s.annotations ? { annotations: s.annotations } : {}),
        ...(s.labels ? { labels: s.labels } : {}),
        ...(s.resourceVersion ? { resourceVersion: s.resourceVersion } : {}),
      },
      ...(s.type ? { type: s.type } : {}),
      data: Object.fromEntries(
        Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v, "utf8").toString("base64")]),
      ),
    };
  }

  async get(name: string): Promise<StoredSecret | undefined> {
    const s = await getOrUndefined(() => this.rest.get<V1Secret>(this.path(name)), `get secret ${name}`);
    return s ? toStored(s) : undefined;
  }

  async create(name: string, secret: StoredSecret): Promise<StoredSecret> {
    return toStored(
      await kubeCall(
        () => this.rest.create<V1Secret>(this.path(), this.body(name, secret)),
        `create secret ${name}`,
      ),
    );
  }

  async update(name: string, secret: StoredSecret): Promise<StoredSecret> {
    return toStored(
      await kubeCall(
        () => this.rest.replace<V1Secret>(this.path(name), this.body(name, secret)),
        `update secret ${name}`,
      ),
    );
  }
}
