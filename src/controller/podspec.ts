// Builds the target pod: the source pod's full spec (volumes, env, resources, probes,
// securityContext, serviceAccount, tolerations, ...) minus what binds it to its node or is
// filled in by admission, with the migrated containers started from checkpoint images.
import type { V1LabelSelector, V1Pod } from "@kubernetes/client-node";
import type { StatefulMigration } from "../api/v1alpha1/index.ts";
import { ownerReference } from "../kube/owners.ts";
import { selectorMatches, type Labels } from "../kube/selectors.ts";
import { ANNOTATION_HELD_LABELS, KEY_MIGRATION_UID, LABEL_MIGRATION, LABEL_ROLE, uidOf } from "./names.ts";
import { MigrationFailure } from "./failures.ts";

export interface TargetPodOptions {
  name: string;
  targetNode: string;
  /** Container name -> checkpoint image. */
  images: Record<string, string>;
  /** Direct transfers load images into the node's storage: never pull them. */
  localImages: boolean;
  /** The workload's selector: labels it uses are held back until hand-over. */
  holdFrom?: V1LabelSelector;
}

/** Splits labels into those kept and those held back so `selector` does not match. */
export function holdLabels(
  labels: Labels,
  selector: V1LabelSelector | undefined,
): { kept: Labels; held: Labels } {
  if (!selector) return { kept: { ...labels }, held: {} };
  const keys = new Set([
    ...Object.keys(selector.matchLabels ?? {}),
    ...(selector.matchExpressions ?? []).map((e) => e.key),
  ]);
  const kept: Labels = {};
  const held: Labels = {};
  for (const [k, v] of Object.entries(labels)) (keys.has(k) ? held : kept)[k] = v;
  return { kept, held };
}

export function buildTargetPod(source: V1Pod, m: StatefulMigration, opts: TargetPodOptions): V1Pod {
  const spec = structuredClone(source.spec);
  if (!spec) throw new MigrationFailure("SourcePodInvalid", "source pod has no spec");
  const migrationName = m.metadata.name ?? "";
  // A Sequential source was orphaned first: its workload labels sit in the held-labels annotation.
  const sourceLabels: Labels = { ...(source.metadata?.labels ?? {}), ...heldLabelsOf(source) };
  delete sourceLabels[LABEL_MIGRATION];
  const { kept, held } = holdLabels(sourceLabels, opts.holdFrom);
  const labels: Labels = { ...kept, [LABEL_MIGRATION]: migrationName, [LABEL_ROLE]: "target" };
  if (opts.holdFrom && selectorMatches(opts.holdFrom, labels)) {
    throw new MigrationFailure(
      "SelectorNotAvoidable",
      "the workload's selector matches the target pod even without its labels; it would be adopted before replay",
    );
  }

  // Node-bound or admission-owned fields: the target gets its own.
  spec.nodeName = opts.targetNode;
  delete spec.schedulingGates;
  delete spec.ephemeralContainers;
  delete spec.priority; // recomputed from priorityClassName by admission
  delete spec.preemptionPolicy;
  delete spec.overhead; // recomputed from runtimeClassName
  for (const c of spec.containers) {
    const image = opts.images[c.name];
    if (image === undefined) continue;
    c.image = image;
    c.imagePullPolicy = opts.localImages ? "Never" : "IfNotPresent";
  }

  const annotations: Record<string, string> = {
    ...(source.metadata?.annotations ?? {}),
    [KEY_MIGRATION_UID]: uidOf(m),
    [ANNOTATION_HELD_LABELS]: JSON.stringify(held),
  };
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: opts.name,
      namespace: source.metadata?.namespace,
      labels,
      annotations,
      // Owned (as controller) by the migration while it replays: the workload's controller
      // cannot adopt it, and a rollback or garbage collection removes it.
      ownerReferences: [ownerReference(m)],
    },
    spec,
  };
}

/** Labels the target pod gets at hand-over: its own, minus ms2m's, plus the held ones. */
export function handoverLabels(target: V1Pod): Labels {
  const labels = { ...(target.metadata?.labels ?? {}) };
  delete labels[LABEL_MIGRATION];
  delete labels[LABEL_ROLE];
  return { ...labels, ...heldLabelsOf(target) };
}

export function heldLabelsOf(pod: V1Pod): Labels {
  const raw = pod.metadata?.annotations?.[ANNOTATION_HELD_LABELS];
  if (!raw) return {};
  try {
    return JSON.parse(raw) as Labels;
  } catch {
    return {};
  }
}

/** True when the pod was created (or taken over) by this migration. */
export function isOurs(pod: V1Pod | undefined, migrationUid: string): boolean {
  return pod?.metadata?.annotations?.[KEY_MIGRATION_UID] === migrationUid;
}
