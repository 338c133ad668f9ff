// Lookups several phases share.
import type { V1LabelSelector, V1Pod } from "@kubernetes/client-node";
import type { PhaseContext } from "../context.ts";
import type { ReplayRef } from "../ports.ts";
import { fail } from "../failures.ts";
import { uidOf } from "../names.ts";

/** The source pod, if it is still the one the migration started with. */
export async function currentSourcePod(ctx: PhaseContext): Promise<V1Pod | undefined> {
  const pod = await ctx.deps.cluster.getPod(ctx.namespace, ctx.m.spec.sourcePod);
  const uid = ctx.m.status?.sourcePodUID;
  if (!pod || (uid && pod.metadata?.uid !== uid)) return undefined;
  return pod;
}

/** The source pod, or a failure: it was deleted or replaced behind the migration's back. */
export async function requireSourcePod(ctx: PhaseContext): Promise<V1Pod> {
  const pod = await currentSourcePod(ctx);
  if (!pod || pod.metadata?.deletionTimestamp) {
    return fail(
      "SourcePodLost",
      `source pod ${ctx.m.spec.sourcePod} was deleted or replaced during the migration`,
    );
  }
  return pod;
}

/** Selector of the workload controller that owns the source pod (undefined for a bare pod). */
export async function ownerSelector(ctx: PhaseContext): Promise<V1LabelSelector | undefined> {
  const owner = ctx.m.status?.owner;
  if (!owner) return undefined;
  if (owner.kind === "ReplicaSet") {
    const rs = await ctx.deps.cluster.getReplicaSet(ctx.namespace, owner.name);
    if (!rs) return fail("OwnerLost", `ReplicaSet ${owner.name} is gone`);
    return rs.spec?.selector;
  }
  if (owner.kind === "StatefulSet") {
    const sts = await ctx.deps.cluster.getStatefulSet(ctx.namespace, owner.name);
    if (!sts) return fail("OwnerLost", `StatefulSet ${owner.name} is gone`);
    return sts.spec?.selector;
  }
  return undefined;
}

/** How long a broker URL read from a Secret is reused (Replaying asks several times a second). */
export const BROKER_SECRET_TTL_MS = 30_000;

/** How to reach the broker, or undefined when the migration has nothing to replay. */
export async function replayRef(ctx: PhaseContext): Promise<ReplayRef | undefined> {
  const config = ctx.m.spec.messageQueueConfig;
  if (!config) return undefined;
  let brokerUrl = config.brokerUrl;
  if (!brokerUrl && config.brokerSecretRef) {
    const { name, key } = config.brokerSecretRef;
    const cache = ctx.deps.brokerUrls;
    const cacheKey = `${uidOf(ctx.m)}/${name}/${key}`;
    const hit = cache?.get(cacheKey);
    if (hit && ctx.now - hit.at < BROKER_SECRET_TTL_MS) brokerUrl = hit.url;
    else {
      brokerUrl = await ctx.deps.cluster.getSecretKey(ctx.namespace, name, key);
      if (!brokerUrl) return fail("BrokerSecretMissing", `Secret ${name} has no key ${key}`);
      cache?.set(cacheKey, { url: brokerUrl, at: ctx.now });
    }
  }
  if (!brokerUrl) return fail("BrokerUnconfigured", "messageQueueConfig has no broker URL");
  return { namespace: ctx.namespace, migration: ctx.name, migrationUid: uidOf(ctx.m), config, brokerUrl };
}
