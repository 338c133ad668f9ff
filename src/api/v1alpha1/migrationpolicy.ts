// MigrationPolicy: opt-in live migration of the pods it selects when they are evicted (a node
// drain, the autoscaler, a spot reclaim): what a migration needs that a pod does not say. The
// eviction is answered by starting a StatefulMigration (src/controller/eviction/).
import { z } from "zod";
import {
  CheckpointEncryption,
  CheckpointImageRepository,
  Condition,
  MessageQueueConfig,
  MigrationStrategy,
  NodeLabels,
  OnRestoreFailure,
  transferRules,
  ObjectMeta,
  TransferMode,
  apiVersion,
} from "./statefulmigration.ts";
import { withRules } from "./validation.ts";

export const policyKind = "MigrationPolicy";
export const policyPlural = "migrationpolicies";
export const policySingular = "migrationpolicy";
export const policyShortNames = ["mpol"];

/** Pods may opt out of a policy that selects them with this annotation set to "false". */
export const ANNOTATION_MIGRATE_ON_EVICTION = "migration.ms2m.io/migrate-on-eviction";

export const LabelSelectorRequirement = withRules(
  z.object({
    key: z.string().min(1).max(316),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z.array(z.string().max(63)).max(64).optional(),
  }),
  [
    {
      rule: "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
      message: "In and NotIn need values; Exists and DoesNotExist take none",
      check: (r) => ["In", "NotIn"].includes(r.operator) === (r.values !== undefined && r.values.length > 0),
    },
  ],
);

export const LabelSelector = withRules(
  z
    .object({
      matchLabels: z.record(z.string().min(1).max(316), z.string().max(63)).optional(),
      matchExpressions: z.array(LabelSelectorRequirement).max(32).optional(),
    })
    .meta({ description: "Selects pods by label, as a workload's selector does." }),
  [
    {
      rule: "(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",
      message:
        "selector must not be empty (it would select every pod of the namespace): give matchLabels or matchExpressions",
      check: (s) => Object.keys(s.matchLabels ?? {}).length > 0 || (s.matchExpressions ?? []).length > 0,
    },
  ],
);
export type LabelSelector = z.infer<typeof LabelSelector>;

export const MigrationPolicySpec = withRules(
  z
    .object({
      selector: LabelSelector.meta({
        description: "The pods of this namespace the policy migrates when evicted.",
      }),
      messageQueueConfig: MessageQueueConfig.optional().meta({
        description:
          "Where the selected pods consume from (replayed during the migration); omitted: nothing to replay.",
      }),
      transferMode: TransferMode.default("Registry"),
      checkpointImageRepository: CheckpointImageRepository.optional(),
      migrationStrategy: MigrationStrategy.optional().meta({
        description: "Overrides the strategy detected from each pod's owner.",
      }),
      replayCutoffSeconds: z.int().min(1).max(86400).default(120).meta({
        description: "Longest time a replay may take before cutting over (1 to 86400).",
      }),
      targetNodeSelector: NodeLabels.optional().meta({
        description: "Labels a node must carry to receive a migrated pod.",
      }),
      onRestoreFailure: OnRestoreFailure.default("Rollback"),
      encryption: CheckpointEncryption.optional(),
      maxConcurrentPerNode: z
        .int()
        .min(1)
        .max(100)
        .default(1)
        .meta({
          description:
            "How many of this policy's migrations may run at once from one source node; further evictions " +
            "are answered 'retry later' (429) until one finishes.",
        }),
    })
    .meta({ description: "What a live migration of a selected pod needs." }),
  transferRules,
);
export type MigrationPolicySpec = z.infer<typeof MigrationPolicySpec>;
export type MigrationPolicySpecInput = z.input<typeof MigrationPolicySpec>;

export const MigrationPolicyStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  migrationsStarted: z
    .int()
    .min(0)
    .optional()
    .meta({ description: "StatefulMigrations this policy started (one per evicted pod)." }),
  lastMigration: z.string().optional().meta({ description: "The StatefulMigration started last." }),
  conditions: z
    .array(Condition)
    .optional()
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] }),
});

export const MigrationPolicy = z.object({
  apiVersion: z.literal(apiVersion),
  kind: z.literal(policyKind),
  metadata: ObjectMeta,
  spec: MigrationPolicySpec,
  status: MigrationPolicyStatus.optional(),
});
export type MigrationPolicy = z.infer<typeof MigrationPolicy>;

export const policyPrinterColumns = [
  { name: "Mode", type: "string", jsonPath: ".spec.transferMode" },
  { name: "Strategy", type: "string", jsonPath: ".spec.migrationStrategy" },
  { name: "Max/Node", type: "integer", jsonPath: ".spec.maxConcurrentPerNode" },
  { name: "Started", type: "integer", jsonPath: ".status.migrationsStarted" },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
] as const;
