// Pending: validate against the live cluster and resolve everything later phases need, then
// record it in status in one write (with Checkpointing's first). Creates no external state (its
// finalizer is stored before the phase ends). Last, the runtime preflight: a source runtime that
// cannot checkpoint or a target runtime that cannot restore fails the migration here, before
// anything is frozen (../preflight.ts).
import type { V1Node, V1Pod } from "@kubernetes/client-node";
import type { OwnerStatus } from "../../api/v1alpha1/index.ts";
import { isMs2mError } from "../../common/errors.ts";
import { controllerOf } from "../../kube/owners.ts";
import { encryptionKeys } from "../adapters/encryption.ts";
import { next, wait, type Outcome, type PhaseContext } from "../context.ts";
import { fail } from "../failures.ts";
import { FINALIZER } from "../names.ts";
import { isNodeReady, isTerminating, nodeMismatch } from "../pods.ts";
import { runtimePreflight } from "../preflight.ts";
import { chooseTargetNode } from "../placement.ts";
import { resolveStrategy } from "../strategies/index.ts";
import { replayRef } from "./shared.ts";
import { transportFor, type Transport } from "../transfer-modes/index.ts";
import {
  iso,
  setCondition,
  startPhaseTiming,
  CONDITION_PROGRESSING,
  CONDITION_RUNTIME_READY,
} from "../status.ts";

export async function pending(ctx: PhaseContext): Promise<Outcome> {
  const { cluster } = ctx.deps;
  // The source pod is read while the phase is recorded: independent requests, side by side.
  const [, pod] = await Promise.all([
    ctx.m.status?.phase ? undefined : recordPending(ctx),
    cluster.getPod(ctx.namespace, ctx.m.spec.sourcePod),
  ]);
  if (!pod) return fail("SourcePodNotFound", `pod ${ctx.m.spec.sourcePod} not found in ${ctx.namespace}`);
  if (isTerminating(pod)) return fail("SourcePodTerminating", `pod ${ctx.m.spec.sourcePod} is being deleted`);
  const sourceNode = pod.spec?.nodeName;
  // A pod still starting up gets there soon: its update event brings us back.
  if (!sourceNode || pod.status?.phase !== "Running") return wait(ctx.remainingMs());

  const containers = selectContainers(pod, ctx.m.spec.containerName);
  const transport = transportFor(ctx.m.spec.transferMode, { encrypted: ctx.m.spec.encryption !== undefined });
  // The finalizer comes before any external state (Checkpointing's replay queue is the first):
  // it is added beside the lookups, which create nothing, and stored before the phase ends. Its
  // write changes the resourceVersion, so `ctx.m` takes its answer before the next status write.
  const finalizer = (ctx.m.metadata.finalizers ?? []).includes(FINALIZER)
    ? undefined
    : cluster.addMigrationFinalizer(ctx.m, FINALIZER).then(
        (m) => ({ m }),
        (err: unknown) => ({ err }),
      );
  // Independent lookups, side by side: the owner, the keys, the target node, the source node,
  // and the broker's URL (a Secret's, kept a while in deps.brokerUrls: Checkpointing, which
  // needs it first, does not wait for that read; a missing Secret fails here, nothing frozen).
  const settled = <T>(p: Promise<T>) =>
    p.then(
      (value) => ({ value }),
      (err: unknown) => ({ err }),
    );
  const [found, added] = await Promise.all([
    settled(
      Promise.all([
        resolveOwner(ctx, pod),
        checkEncryptionKeys(ctx, transport),
        resolveTargetNode(ctx, pod, sourceNode, transport),
        cluster.getNode(sourceNode),
        replayRef(ctx),
      ]),
    ),
    finalizer,
  ]);
  if (added && "err" in added) throw added.err;
  if (added) ctx.m = added.m;
  if ("err" in found) throw found.err;
  const [owner, , { node: target, reason: chosenBecause }, sourceNodeObject] = found.value;
  // Resolved once, here: every later phase reads them from the status (ctx.strategy, ctx.transport).
  const strategy = resolveStrategy(ctx.m.spec.migrationStrategy, owner);

  const preflight = await runtimePreflight(ctx, { sourceNode, source: sourceNodeObject, target, transport });
  const runtimeReady = { type: CONDITION_RUNTIME_READY, ...preflight.condition };
  if (preflight.failure) {
    const now = ctx.now;
    await ctx.update((m) => {
      const s = (m.status ??= {});
      s.sourceNode = sourceNode;
      s.targetNode = target.metadata?.name;
      setCondition(m, now, runtimeReady);
    });
    return fail(preflight.failure.reason, preflight.failure.message);
  }

  await ctx.advance(
    (m) => {
      setCondition(m, ctx.now, runtimeReady);
      const s = (m.status ??= {});
      s.strategy = strategy.name;
      s.transferMode = transport.name;
      s.sourceNode = sourceNode;
      s.targetNode = target.metadata?.name;
      if (chosenBecause) s.targetNodeReason = chosenBecause;
      s.targetPod = strategy.targetPodName(m);
      s.sourcePodUID = pod.metadata?.uid;
      if (owner) s.owner = owner;
      s.containers = containers.map((name) => ({ name, ...baseImageOf(pod, name) }));
    },
    `${strategy.name} ${m(ctx)} from ${sourceNode} to ${target.metadata?.name} (${transport.name})`,
    // Written with Checkpointing's first write, its checkpoint intent: before that it only
    // prepares the replay queue (idempotent; the rollback removes it by the migration's UID), so
    // a crash in between runs Pending again and loses nothing.
    { lazy: true },
  );
  if (chosenBecause) ctx.event("Normal", "TargetNodeChosen", chosenBecause);
  for (const e of preflight.events) ctx.event(e.type, e.reason, e.message);
  return next();
}

/** The migration's first write: it is Pending (seen by users and the watches at once). */
async function recordPending(ctx: PhaseContext): Promise<void> {
  const now = ctx.now;
  await ctx.update((m) => {
    const s = (m.status ??= {});
    s.phase = "Pending";
    s.startTime = iso(now);
    startPhaseTiming(m, "Pending", now);
    setCondition(m, now, {
      type: CONDITION_PROGRESSING,
      status: "True",
      reason: "Pending",
      message: "validating",
    });
  });
  ctx.event("Normal", "Pending", "migration accepted");
}

/**
 * spec.encryption's Secrets are read and the key pair checked here, before anything is frozen:
 * a missing Secret or key, a key that does not parse, a pair that does not match, or encryption
 * asked of a Direct transfer fail the migration with the message naming the Secret.
 */
async function checkEncryptionKeys(ctx: PhaseContext, transport: Transport): Promise<void> {
  const spec = ctx.m.spec.encryption;
  if (!spec) return;
  if (transport.name !== "Registry")
    return fail(
      "EncryptionKeysInvalid",
      "spec.encryption is for Registry transfers only (Direct goes over TLS)",
    );
  try {
    await encryptionKeys(ctx.deps.cluster, ctx.namespace, spec);
  } catch (err) {
    if (isMs2mError(err) && !err.retriable) return fail("EncryptionKeysInvalid", err.message, err);
    throw err;
  }
}

const m = (ctx: PhaseContext) => `${ctx.namespace}/${ctx.m.spec.sourcePod}`;

/**
 * The image a container runs, by digest (`repo@sha256:…`), where the runtime reports one: the
 * restore stands on exactly that image. Images without a repository digest (built on the node)
 * are not recorded and cannot be brought to the target.
 */
function baseImageOf(pod: V1Pod, name: string): { baseImage?: string } {
  const id = pod.status?.containerStatuses
    ?.find((c) => c.name === name)
    ?.imageID?.replace(/^docker-pullable:\/\//, "");
  return id && /^[^@\s]+@sha256:[a-f0-9]{64}$/.test(id) ? { baseImage: id } : {};
}

function selectContainers(pod: V1Pod, containerName: string | undefined): string[] {
  const names = (pod.spec?.containers ?? []).map((c) => c.name);
  if (containerName === undefined) return names;
  if (!names.includes(containerName)) {
    return fail("ContainerNotFound", `pod has no container ${containerName} (has: ${names.join(", ")})`);
  }
  return [containerName];
}

async function resolveOwner(ctx: PhaseContext, pod: V1Pod): Promise<OwnerStatus | undefined> {
  const ref = controllerOf(pod);
  if (!ref) return undefined;
  const base: OwnerStatus = { kind: ref.kind, name: ref.name, uid: ref.uid };
  if (ref.kind === "ReplicaSet") {
    const rs = await ctx.deps.cluster.getReplicaSet(ctx.namespace, ref.name);
    if (!rs) return fail("OwnerNotFound", `ReplicaSet ${ref.name} not found`);
    const top = controllerOf(rs);
    if (top && top.kind !== "Deployment") {
      return fail("UnsupportedOwner", `ReplicaSet ${ref.name} is controlled by a ${top.kind}`);
    }
    return top ? { ...base, workloadKind: top.kind, workloadName: top.name } : base;
  }
  if (ref.kind === "StatefulSet") {
    const sts = await ctx.deps.cluster.getStatefulSet(ctx.namespace, ref.name);
    if (!sts) return fail("OwnerNotFound", `StatefulSet ${ref.name} not found`);
    return { ...base, workloadKind: "StatefulSet", workloadName: ref.name };
  }
  return fail("UnsupportedOwner", `pods controlled by a ${ref.kind} cannot be migrated`);
}

/**
 * The node given in the spec (checked as the scheduler would), or the one the controller chooses
 * (placement.ts, with the reason). Chosen here because Direct transfers need the target before
 * the pod exists.
 */
async function resolveTargetNode(
  ctx: PhaseContext,
  pod: V1Pod,
  sourceNode: string,
  transport: Transport,
): Promise<{ node: V1Node; reason?: string }> {
  const requested = ctx.m.spec.targetNode;
  const selector = ctx.m.spec.targetNodeSelector;
  if (!requested)
    return chooseTargetNode(ctx, pod, { sourceNode, transport, ...(selector ? { selector } : {}) });
  if (requested === sourceNode) return fail("TargetIsSource", `pod already runs on ${requested}`);
  const node = await ctx.deps.cluster.getNode(requested);
  if (!node) return fail("TargetNodeNotFound", `node ${requested} not found`);
  if (!isNodeReady(node)) return fail("TargetNodeNotReady", `node ${requested} is not Ready`);
  if (node.spec?.unschedulable) return fail("TargetNodeUnschedulable", `node ${requested} is cordoned`);
  for (const [k, v] of Object.entries(selector ?? {})) {
    if (node.metadata?.labels?.[k] !== v) {
      return fail("TargetNodeMismatch", `${requested}: lacks label ${k}=${v} required by targetNodeSelector`);
    }
  }
  const mismatch = nodeMismatch(pod, node);
  if (mismatch) return fail("TargetNodeMismatch", `${requested}: ${mismatch}`);
  return { node };
}
