import type { MigrationStrategy, OwnerStatus } from "../../api/v1alpha1/index.ts";
import { fail } from "../failures.ts";
import { sequential } from "./sequential.ts";
import { shadowPod } from "./shadow-pod.ts";
import type { Strategy } from "./types.ts";

export type { Strategy } from "./types.ts";

const strategies: Record<MigrationStrategy, Strategy> = { ShadowPod: shadowPod, Sequential: sequential };

export function strategyFor(name: MigrationStrategy): Strategy {
  return strategies[name];
}

/**
 * The strategy for the source's owner (Pending): StatefulSet pods keep their name (Sequential);
 * everything else runs a shadow beside the source. ShadowPod cannot hand a differently named pod
 * to a StatefulSet, and Sequential cannot make a ReplicaSet adopt a pod without it creating a
 * replacement in the gap: both are refused.
 */
export function resolveStrategy(
  requested: MigrationStrategy | undefined,
  owner: OwnerStatus | undefined,
): Strategy {
  const detected: MigrationStrategy = owner?.kind === "StatefulSet" ? "Sequential" : "ShadowPod";
  const name = requested ?? detected;
  if (owner?.kind === "StatefulSet" && name === "ShadowPod") {
    return fail(
      "StrategyNotSupported",
      "a StatefulSet pod keeps its identity: use Sequential (or omit the strategy)",
    );
  }
  if (owner?.kind === "ReplicaSet" && name === "Sequential") {
    return fail(
      "StrategyNotSupported",
      "a ReplicaSet pod cannot keep its name: use ShadowPod (or omit the strategy)",
    );
  }
  return strategyFor(name);
}
