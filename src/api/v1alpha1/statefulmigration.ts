import { z } from "zod";
import {
  dns1123LabelPattern,
  dns1123SubdomainPattern,
  imageRepositoryPattern,
  secretKeyPattern,
  withRules,
  type CelRule,
} from "./validation.ts";

export const group = "migration.ms2m.io";
export const version = "v1alpha1";
export const apiVersion = `${group}/${version}`;
export const kind = "StatefulMigration";
export const plural = "statefulmigrations";
export const singular = "statefulmigration";
export const shortNames = ["smig"];
export const categories = ["ms2m"];

export const subdomain = (what: string) =>
  z
    .string()
    .min(1)
    .max(253)
    .regex(dns1123SubdomainPattern, {
      message: `${what} must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.')`,
    });

// ---------------------------------------------------------------------------------------
// Spec

export const migrationStrategies = ["ShadowPod", "Sequential"] as const;
export const MigrationStrategy = z.enum(migrationStrategies).meta({
  description:
    "ShadowPod: the target runs beside the source while it replays (Deployments, bare pods). " +
    "Sequential: the target takes over the source pod's identity (StatefulSets).",
});
export type MigrationStrategy = z.infer<typeof MigrationStrategy>;

export const transferModes = ["Registry", "Direct"] as const;
export const TransferMode = z.enum(transferModes).meta({
  description:
    "Registry: the checkpoint image goes through checkpointImageRepository. " +
    "Direct: the archive goes node to node, from the source node's agent to the target node's agent.",
});
export type TransferMode = z.infer<typeof TransferMode>;

export const SecretKeyRef = z
  .object({
    name: subdomain("name").meta({ description: "Name of a Secret in the migration's namespace." }),
    key: z
      .string()
      .min(1)
      .max(253)
      .regex(secretKeyPattern, { message: "key must consist of alphanumerics, '-', '_' or '.'" })
      .meta({ description: "Key in the Secret whose value is the broker URL." }),
  })
  .meta({ description: "Selects a key of a Secret in the migration's namespace." });
export type SecretKeyRef = z.infer<typeof SecretKeyRef>;

/** Where Registry mode pushes checkpoint images (StatefulMigration and MigrationPolicy). */
export const CheckpointImageRepository = z
  .string()
  .min(1)
  .max(255)
  .regex(imageRepositoryPattern, {
    message: "checkpointImageRepository must be an image repository without tag, e.g. registry:5000/ms2m",
  })
  .meta({ description: "Repository the checkpoint images are pushed to; required for Registry." });

/** The rules a spec that names a transfer mode obeys (StatefulMigration and MigrationPolicy). */
export const transferRules: CelRule<{
  transferMode: TransferMode;
  checkpointImageRepository?: string | undefined;
  encryption?: unknown;
}>[] = [
  {
    rule: "self.transferMode != 'Registry' || has(self.checkpointImageRepository)",
    message: "checkpointImageRepository is required when transferMode is Registry",
    fieldPath: ".checkpointImageRepository",
    reason: "FieldValueRequired",
    check: (s) => s.transferMode !== "Registry" || s.checkpointImageRepository !== undefined,
  },
  {
    rule: "!has(self.encryption) || self.transferMode == 'Registry'",
    message:
      "encryption applies to transferMode Registry (Direct goes agent to agent over TLS and is never stored)",
    fieldPath: ".encryption",
    reason: "FieldValueForbidden",
    check: (s) => s.encryption === undefined || s.transferMode === "Registry",
  },
];

export const OnRestoreFailure = z.enum(["Rollback", "ColdStart"]).meta({
  description:
    "What to do when the target is not the restored process (the runtime started it fresh; the SDK " +
    "reports it): Rollback (the source keeps running, nothing is lost) or ColdStart (keep the fresh " +
    "target and replay into it: no message is lost, the in-memory state from before the checkpoint is).",
});
export type OnRestoreFailure = z.infer<typeof OnRestoreFailure>;

const encryptionKeyRef = (description: string) =>
  z
    .object({
      name: subdomain("name").meta({ description: "Name of a Secret in the migration's namespace." }),
      key: z
        .string()
        .min(1)
        .max(253)
        .regex(secretKeyPattern, { message: "key must consist of alphanumerics, '-', '_' or '.'" })
        .meta({ description: "Key in the Secret whose value is the PEM key." }),
    })
    .meta({ description });

export const CheckpointEncryption = z
  .object({
    publicKeySecretRef: encryptionKeyRef(
      "Secret key holding the PEM public key (RSA of at least 2048 bits, or EC P-256/P-384/P-521) the " +
        "checkpoint image is encrypted to.",
    ),
    privateKeySecretRef: encryptionKeyRef(
      "Secret key holding the matching PEM private key (unencrypted PKCS#8, PKCS#1 or SEC1); read by the " +
        "controller and handed only to the target node's agent, over TLS, to decrypt the image there.",
    ),
  })
  .meta({
    description:
      "Encrypt the checkpoint image at rest (OCI image encryption, JWE recipients): the registry holds only " +
      "ciphertext, and the image is decrypted only by the target node's agent. Registry mode only.",
  });
export type CheckpointEncryption = z.infer<typeof CheckpointEncryption>;

const amqpUrl = withRules(
  z
    .string()
    .min(1)
    .max(2048)
    .meta({
      description:
        "amqp:// or amqps:// URL of the broker, without credentials (a URL that carries credentials " +
        "belongs in a Secret: use brokerSecretRef).",
    }),
  [
    {
      rule: "self.startsWith('amqp://') || self.startsWith('amqps://')",
      message: "brokerUrl must be an amqp:// or amqps:// URL",
      check: (url) => url.startsWith("amqp://") || url.startsWith("amqps://"),
    },
    {
      rule: "!self.matches('^amqps?://[^/@]*@')",
      message:
        "brokerUrl must not carry credentials: store the URL in a Secret and reference it with brokerSecretRef",
      check: (url) => !/^amqps?:\/\/[^/@]*@/.test(url),
    },
  ],
);

const amqpName = (what: string) =>
  z
    .string()
    .min(1)
    .max(255)
    .meta({ description: `${what} (an AMQP short string: 1 to 255 characters).` });

export const MessageQueueConfig = withRules(
  z
    .object({
      queueName: amqpName("The workload's primary queue"),
      exchangeName: amqpName("The fan-out exchange the producers publish to"),
      routingKey: z
        .string()
        .max(255)
        .optional()
        .meta({ description: "Routing key the primary queue is bound with; empty for fan-out." }),
      brokerUrl: amqpUrl.optional(),
      brokerSecretRef: SecretKeyRef.optional().meta({
        description: "Secret key holding the broker URL, for URLs that carry credentials.",
      }),
    })
    .meta({ description: "Where the workload consumes from; without it there is nothing to replay." }),
  [
    {
      rule: "has(self.brokerUrl) != has(self.brokerSecretRef)",
      message: "exactly one of brokerUrl or brokerSecretRef must be set",
      check: (c) => (c.brokerUrl !== undefined) !== (c.brokerSecretRef !== undefined),
    },
  ],
);
export type MessageQueueConfig = z.infer<typeof MessageQueueConfig>;

/** Node labels a target must carry (a map, like a pod's nodeSelector). */
export const NodeLabels = withRules(z.record(z.string().min(1).max(316), z.string().max(63)), [
  { rule: "self.size() <= 32", message: "at most 32 labels", check: (m) => Object.keys(m).length <= 32 },
]);

export const StatefulMigrationSpec = withRules(
  z
    .object({
      sourcePod: subdomain("sourcePod").meta({
        description: "Name of the pod to migrate, in the migration's namespace.",
      }),
      containerName: z
        .string()
        .min(1)
        .max(63)
        .regex(dns1123LabelPattern, { message: "containerName must be a lowercase RFC 1123 label" })
        .optional()
        .meta({ description: "Container to migrate; omitted means every container of the pod." }),
      targetNode: subdomain("targetNode")
        .optional()
        .meta({
          description:
            "Node to migrate to; omitted means the controller chooses one the pod could be scheduled on " +
            "(reported with the reason in status.targetNode and status.targetNodeReason).",
        }),
      targetNodeSelector: NodeLabels.optional().meta({
        description:
          "Labels the target node must carry (besides what the pod's own scheduling constraints require).",
      }),
      migrationStrategy: MigrationStrategy.optional().meta({
        description:
          "ShadowPod or Sequential; omitted means detected from the pod's owner " +
          "(StatefulSet: Sequential, otherwise ShadowPod). The detected value is reported in status.strategy.",
      }),
      transferMode: TransferMode.default("Registry"),
      checkpointImageRepository: CheckpointImageRepository.optional(),
      encryption: CheckpointEncryption.optional(),
      replayCutoffSeconds: z
        .int()
        .min(1)
        .max(86400)
        .default(120)
        .meta({ description: "Longest time the replay may take before cutting over (1 to 86400)." }),
      onRestoreFailure: OnRestoreFailure.default("Rollback"),
      messageQueueConfig: MessageQueueConfig.optional(),
    })
    .meta({ description: "What to migrate and how. Immutable: delete the object to cancel." }),
  [
    ...transferRules,
    {
      rule: "self == oldSelf",
      message: "spec is immutable: delete the StatefulMigration (which cancels it) and create a new one",
    },
  ],
);
export type StatefulMigrationSpec = z.infer<typeof StatefulMigrationSpec>;
export type StatefulMigrationSpecInput = z.input<typeof StatefulMigrationSpec>;

// ---------------------------------------------------------------------------------------
// Status

export const phases = [
  "Pending",
  "Checkpointing",
  "Transferring",
  "Restoring",
  "Replaying",
  "Finalizing",
  "Completed",
  "Failed",
] as const;
export const Phase = z.enum(phases);
export type Phase = z.infer<typeof Phase>;
export const terminalPhases: readonly Phase[] = ["Completed", "Failed"];

const timestamp = (description: string) => z.string().meta({ format: "date-time", description });

/** metav1.Condition. */
export const Condition = z.object({
  type: z.string().max(316).meta({ description: "Type of condition in CamelCase." }),
  status: z.enum(["True", "False", "Unknown"]),
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: timestamp("Last time the condition changed status."),
  reason: z.string().min(1).max(1024).meta({ description: "CamelCase reason for the last transition." }),
  message: z.string().max(32768),
});
export type Condition = z.infer<typeof Condition>;

const millis = (description: string) => z.int().min(0).optional().meta({ description });

/**
 * Where a phase's time went, from the controller's spans (src/controller/timeline): the waits on
 * other components, and the controller's own remainder (API calls, work queue, its own code).
 */
export const PhaseBreakdown = z.object({
  controllerMillis: z
    .int()
    .min(0)
    .meta({
      description:
        "The controller's own share of the phase: durationMillis minus externalMillis (its API calls, " +
        "work queue, timers and code).",
    }),
  externalMillis: z
    .int()
    .min(0)
    .meta({
      description:
        "Time the controller waited on others: agents and kubelets (checkpoint, transfer, runtime, " +
        "images), the broker and the consumers (broker), and watch events (pods started by kubelets, " +
        "adoption by workload controllers). Overlapping waits count once.",
    }),
  apiCalls: z.int().min(0).meta({ description: "Kubernetes API requests the controller made in the phase." }),
  apiMillis: millis("Time inside those requests (overlapping requests count once)."),
  checkpointMillis: millis("Waiting on checkpoints (the kubelet, through the agent or the node proxy)."),
  transferMillis: millis("Waiting on transfers and cleanups (agents, registry, transfer Jobs)."),
  runtimeMillis: millis("Waiting on the nodes' runtime preflight (agents)."),
  imagesMillis: millis("Waiting on base images on the target node (agent)."),
  brokerMillis: millis("Waiting on the broker and the consumers' answers (replay protocol)."),
  watchMillis: millis("Waiting for a watch event: another component's move (kubelet, workload controller)."),
  timerMillis: millis("Waiting on a timer of the controller's own: polls and retry backoff."),
  queueMillis: millis("Time in the controller's work queue between an event and its reconcile."),
  partial: z.boolean().optional().meta({
    description: "The controller restarted during the phase: time before that is counted as its own.",
  }),
});
export type PhaseBreakdown = z.infer<typeof PhaseBreakdown>;

export const PhaseTiming = z.object({
  phase: Phase,
  startTime: timestamp("When the phase started (RFC 3339, millisecond precision)."),
  endTime: timestamp("When the phase ended (RFC 3339, millisecond precision).").optional(),
  durationMillis: z.int().min(0).optional().meta({ description: "endTime - startTime in milliseconds." }),
  breakdown: PhaseBreakdown.optional().meta({
    description: "Where the phase's time went (set when the phase ends).",
  }),
});
export type PhaseTiming = z.infer<typeof PhaseTiming>;

export const ContainerStatus = z.object({
  name: z.string().meta({ description: "Container name." }),
  checkpointPath: z
    .string()
    .optional()
    .meta({ description: "Archive written by the kubelet on the source node." }),
  checkpointImage: z.string().optional().meta({ description: "Checkpoint image the target starts from." }),
  checkpointDigest: z.string().optional().meta({ description: "sha256 digest of the checkpoint archive." }),
  checkpointBytes: z.int().min(0).optional(),
  checkpointRequestedAt: timestamp(
    "When the controller asked for this container's checkpoint; set before the request so a restarted " +
      "controller never checkpoints the same container twice.",
  ).optional(),
  checkpointVia: z
    .enum(["Agent", "NodeProxy"])
    .optional()
    .meta({
      description:
        "How the checkpoint was requested: through the node's ms2m-agent, or the API server's node proxy " +
        "(nodes without an agent; CHECKPOINT_MODE=auto). Recorded with checkpointRequestedAt.",
    }),
  transferred: z.boolean().optional(),
  baseImage: z
    .string()
    .optional()
    .meta({
      description:
        "The image the container runs, by digest (the source pod's containerStatuses[].imageID). The " +
        "runtime restores the checkpoint on top of it, so it is made present on the target node first.",
    }),
});
export type ContainerStatus = z.infer<typeof ContainerStatus>;

export const ReplayStatus = z.object({
  replayQueue: z.string().optional().meta({ description: "Replay queue the migration created." }),
  messagesReplayed: z.int().min(0).optional(),
  messagesRemaining: z
    .int()
    .min(0)
    .optional()
    .meta({ description: "Messages left in the replay queue when the cutoff fired." }),
  cutoffReached: z.boolean().optional(),
  startRequestedAt: timestamp("When START_REPLAY was sent to the target pod.").optional(),
});
export type ReplayStatus = z.infer<typeof ReplayStatus>;

export const FailureStatus = z.object({
  phase: Phase.meta({ description: "Phase in which the migration failed." }),
  reason: z.string().meta({ description: "CamelCase reason." }),
  message: z.string(),
});
export type FailureStatus = z.infer<typeof FailureStatus>;

export const OwnerStatus = z.object({
  kind: z
    .string()
    .meta({ description: "Kind of the source pod's controller (ReplicaSet, StatefulSet, ...)." }),
  name: z.string(),
  uid: z.string().optional(),
  workloadKind: z
    .string()
    .optional()
    .meta({ description: "Top of the owner chain (e.g. Deployment above a ReplicaSet)." }),
  workloadName: z.string().optional(),
});
export type OwnerStatus = z.infer<typeof OwnerStatus>;

export const StatefulMigrationStatus = z.object({
  phase: Phase.optional(),
  observedGeneration: z.int().min(0).optional(),
  conditions: z
    .array(Condition)
    .optional()
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"] }),
  strategy: MigrationStrategy.optional().meta({ description: "Strategy in use (given or detected)." }),
  transferMode: TransferMode.optional(),
  sourceNode: z.string().optional(),
  targetNode: z.string().optional(),
  targetNodeReason: z.string().optional().meta({
    description:
      "Why the controller chose targetNode when spec.targetNode was omitted, and why not the others.",
  }),
  targetPod: z.string().optional(),
  sourcePodUID: z
    .string()
    .optional()
    .meta({ description: "UID of the source pod when the migration started." }),
  owner: OwnerStatus.optional().meta({ description: "The source pod's controller; absent for a bare pod." }),
  sourceDeletionRequestedAt: timestamp(
    "When the controller deleted the source pod (hand-over); from then on a rollback cannot bring it back.",
  ).optional(),
  sourcePodTemplate: z
    .string()
    .optional()
    .meta({
      description:
        "Sequential: the source pod's labels, annotations and spec (JSON), written with " +
        "sourceDeletionRequestedAt so the target can be (re)created from the checkpoint after the source is gone.",
    }),
  rollForwards: z.int().min(0).optional().meta({
    description:
      "Times the migration was rolled forward (target recreated or phase retried) after its point of no return.",
  }),
  containers: z
    .array(ContainerStatus)
    .optional()
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] }),
  startTime: timestamp("When the migration started.").optional(),
  completionTime: timestamp("When the migration completed or failed.").optional(),
  duration: z.string().optional().meta({ description: "Total duration, e.g. 7.412s." }),
  phaseTimings: z
    .array(PhaseTiming)
    .optional()
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["phase"] }),
  replay: ReplayStatus.optional(),
  failure: FailureStatus.optional(),
});
export type StatefulMigrationStatus = z.infer<typeof StatefulMigrationStatus>;

// ---------------------------------------------------------------------------------------
// The object

export const ObjectMeta = z
  .object({
    name: z.string().optional(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    generation: z.int().optional(),
    creationTimestamp: z.union([z.string(), z.date()]).optional(),
    deletionTimestamp: z.union([z.string(), z.date()]).optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    finalizers: z.array(z.string()).optional(),
    ownerReferences: z.array(z.looseObject({})).optional(),
  })
  .loose();

export const StatefulMigration = z.object({
  apiVersion: z.literal(apiVersion),
  kind: z.literal(kind),
  metadata: ObjectMeta,
  spec: StatefulMigrationSpec,
  status: StatefulMigrationStatus.optional(),
});
export type StatefulMigration = z.infer<typeof StatefulMigration>;

/** Parses an object read from the API server; throws a ZodError naming the bad field. */
export function parseStatefulMigration(obj: unknown): StatefulMigration {
  return StatefulMigration.parse(obj);
}

/** Printer columns for `kubectl get smig`. */
export const printerColumns = [
  { name: "Phase", type: "string", jsonPath: ".status.phase" },
  { name: "Strategy", type: "string", jsonPath: ".status.strategy" },
  { name: "Mode", type: "string", jsonPath: ".status.transferMode" },
  { name: "Source", type: "string", jsonPath: ".spec.sourcePod" },
  { name: "Target", type: "string", jsonPath: ".status.targetNode" },
  { name: "Duration", type: "string", jsonPath: ".status.duration" },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
] as const;
