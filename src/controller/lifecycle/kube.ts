// The lifecycle sweep's ports on a real cluster: agent pods by label, the agents' API, the
// StatefulMigrations and the pods of a node read live from the API server.
import type { KubeConfig, V1Pod } from "@kubernetes/client-node";
import { group, plural, version, type StatefulMigration } from "../../api/v1alpha1/index.ts";
import { kubeCall } from "../../kube/errors.ts";
import { KubeRest, resourcePath } from "../../kube/rest.ts";
import type { AgentClient } from "../../transfer/index.ts";
import type { SweepPorts } from "./sweep.ts";

export interface KubeSweepOptions {
  /** Where the agent pods run, and how they are labelled. */
  agentNamespace: string;
  agentLabelSelector: string;
  agentPort: number;
}

export function kubeSweepPorts(kc: KubeConfig, client: AgentClient, opts: KubeSweepOptions): SweepPorts {
  const rest = new KubeRest(kc);
  return {
    async agents() {
      const pods = await kubeCall(() =>
        rest.list<V1Pod>(resourcePath({ version: "v1", plural: "pods", namespace: opts.agentNamespace }), {
          labelSelector: opts.agentLabelSelector,
        }),
      );
      return pods.items.flatMap((p) => {
        const ip = p.status?.podIP;
        const node = p.spec?.nodeName;
        const ready = (p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
        if (!ip || !node || !ready || p.metadata?.deletionTimestamp) return [];
        return [{ node, url: `https://${ip.includes(":") ? `[${ip}]` : ip}:${opts.agentPort}` }];
      });
    },
    inventory: (url) => client.inventory(url),
    release: (url, migration, keepLoadedImages) =>
      client.releaseCheckpoints(url, migration, undefined, { keepLoadedImages }),
    async migrations() {
      const list = await kubeCall(() =>
        rest.list<StatefulMigration>(resourcePath({ group, version, plural })),
      );
      return list.items;
    },
    async imagesInUse(node) {
      const pods = await kubeCall(() =>
        rest.list<V1Pod>(resourcePath({ version: "v1", plural: "pods" }), {
          fieldSelector: `spec.nodeName=${node}`,
        }),
      );
      const out = new Set<string>();
      for (const p of pods.items) {
        for (const c of [...(p.spec?.containers ?? []), ...(p.spec?.initContainers ?? [])])
          if (c.image) out.add(c.image);
        for (const c of p.status?.containerStatuses ?? []) if (c.image) out.add(c.image);
      }
      return out;
    },
  };
}
