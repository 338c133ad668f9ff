// ShadowPod: the target is a pod of its own name beside the source, held out of the workload's
// selector while it restores and replays; after the cutover the workload adopts it and the
// source is deleted (docs/controller.md, "Hand-over"). The source keeps running until then, so
// a failure before the cutover always rolls back.
import { fail } from "../failures.ts";
import { uidOf } from "../names.ts";
import { requireSourcePod } from "../phases/shared.ts";
import type { Strategy } from "./types.ts";

/** Beside the source, so it needs a name of its own (a valid DNS label: the kubelet uses it as hostname). */
export function shadowPodName(sourcePod: string, migrationUid: string): string {
  const suffix = `-ms2m-${migrationUid.replaceAll("-", "").slice(0, 6)}`;
  return sourcePod.slice(0, 63 - suffix.length).replace(/[-.]+$/, "") + suffix;
}

export const shadowPod: Strategy = {
  name: "ShadowPod",
  runsBesideSource: true,
  targetPodName: (m) => shadowPodName(m.spec.sourcePod, uidOf(m)),
  freeTargetName: async (ctx, existing) =>
    existing
      ? fail(
          "TargetPodNameTaken",
          `pod ${existing.metadata?.name} exists and was not created by this migration`,
        )
      : true,
  targetTemplate: (ctx) => requireSourcePod(ctx),
  nameTaken: (ctx) =>
    fail("TargetPodNameTaken", `pod ${ctx.m.status?.targetPod} exists and was not created by this migration`),
  sourceGone: () => false,
};
