// kubectl ms2m migrate POD [--to NODE]: creates a StatefulMigration (validated with the API's own
// schema first), and with --wait follows it live until Completed or Failed, then prints the
// per-phase timings. Exit 0 when it completed (or was created, without --wait), 1 when it failed.
import {
  OnRestoreFailure,
  StatefulMigrationSpec,
  apiVersion,
  kind,
  migrationStrategies,
  transferModes,
  type StatefulMigration,
} from "../../api/v1alpha1/statefulmigration.ts";
import { getOrUndefined, isAlreadyExists } from "../../kube/errors.ts";
import { createMigration } from "../kube.ts";
import { printObject } from "../output.ts";
import { summary } from "../present.ts";
import { Progress } from "../progress.ts";
import { UsageError, type Command } from "../command.ts";
import { parseDuration, waitForMigration } from "../wait.ts";

/** `<pod>-to-<node>` (or `<pod>-migration`), cut to a valid object name. */
export function migrationName(pod: string, node: string | undefined): string {
  const name = node ? `${pod}-to-${node}` : `${pod}-migration`;
  return name.length <= 253 ? name : name.slice(0, 253).replace(/[-.]+$/, "");
}

function oneOf<T extends string>(flag: string, value: unknown, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  const hit = allowed.find((a) => a.toLowerCase() === String(value).toLowerCase());
  if (!hit) throw new UsageError(`--${flag} must be one of ${allowed.join(", ")} (got "${String(value)}")`);
  return hit;
}

/** --broker-secret NAME[:KEY] (key: url). */
export function secretRef(value: string): { name: string; key: string } {
  const [name, key = "url"] = value.split(":");
  if (!name) throw new UsageError(`--broker-secret must be NAME or NAME:KEY (got "${value}")`);
  return { name, key };
}

export interface MigrateFlags {
  to?: string | undefined;
  strategy?: string | undefined;
  transfer?: string | undefined;
  imageRepository?: string | undefined;
  container?: string | undefined;
  queue?: string | undefined;
  exchange?: string | undefined;
  routingKey?: string | undefined;
  brokerSecret?: string | undefined;
  brokerUrl?: string | undefined;
  replayCutoff?: string | undefined;
  onRestoreFailure?: string | undefined;
}

/** The StatefulMigration the flags describe; a UsageError names what is wrong. */
export function buildMigration(name: string, pod: string, f: MigrateFlags): StatefulMigration {
  const transfer =
    oneOf("transfer", f.transfer, transferModes) ?? (f.imageRepository ? "Registry" : "Direct");
  const messaging = f.queue !== undefined || f.exchange !== undefined || f.brokerSecret || f.brokerUrl;
  if (messaging && (!f.queue || !f.exchange))
    throw new UsageError(
      "--queue and --exchange go together (the workload's primary queue and its exchange)",
    );
  if (messaging && !f.brokerSecret === !f.brokerUrl)
    throw new UsageError(
      "give the broker with exactly one of --broker-secret NAME[:KEY] or --broker-url URL",
    );
  const cutoff = f.replayCutoff === undefined ? undefined : Number(f.replayCutoff);
  if (cutoff !== undefined && !Number.isInteger(cutoff))
    throw new UsageError(`--replay-cutoff must be whole seconds (got "${f.replayCutoff}")`);
  const spec = {
    sourcePod: pod,
    ...(f.container ? { containerName: f.container } : {}),
    ...(f.to ? { targetNode: f.to } : {}),
    ...(f.strategy ? { migrationStrategy: oneOf("strategy", f.strategy, migrationStrategies) } : {}),
    transferMode: transfer,
    ...(f.imageRepository ? { checkpointImageRepository: f.imageRepository } : {}),
    ...(cutoff !== undefined ? { replayCutoffSeconds: cutoff } : {}),
    ...(f.onRestoreFailure !== undefined
      ? { onRestoreFailure: oneOf("on-restore-failure", f.onRestoreFailure, OnRestoreFailure.options) }
      : {}),
    ...(messaging
      ? {
          messageQueueConfig: {
            queueName: f.queue,
            exchangeName: f.exchange,
            ...(f.routingKey !== undefined ? { routingKey: f.routingKey } : {}),
            ...(f.brokerSecret ? { brokerSecretRef: secretRef(f.brokerSecret) } : { brokerUrl: f.brokerUrl }),
          },
        }
      : {}),
  };
  // The API's own schema and rules (the CRD's CEL rules say the same at admission).
  const checked = StatefulMigrationSpec.safeParse(spec);
  if (!checked.success) {
    const problems = checked.error.issues.map((i) => {
      // A rule's path may be ".field"; its message usually names the field already.
      const last = String(i.path.at(-1) ?? "").replace(/^\./, "");
      return last && !i.message.includes(last) ? `${i.path.join(".")}: ${i.message}` : i.message;
    });
    throw new UsageError(problems.join("; "));
  }
  return { apiVersion, kind, metadata: { name }, spec: spec as StatefulMigration["spec"] };
}

export const migrateCommand: Command = {
  name: "migrate",
  summary: "Move a running pod to another node, live (creates a StatefulMigration)",
  usage: "kubectl ms2m migrate POD [--to NODE] [flags]",
  description: `Creates a StatefulMigration for POD (in -n NAMESPACE) after checking that the pod exists and
runs, and that the target node exists and is not the pod's own. ms2m's controller then
checkpoints the pod, transfers and restores it on the target, replays the messages that arrived
meanwhile and cuts over. With --wait the phases are shown as they happen (redrawn in place on a
terminal, one line per phase otherwise), then the per-phase timings. The flags are checked
against the API's own rules before anything is created.`,
  flags: `  --to NODE                 target node (default: the controller picks a Ready, schedulable one)
  --strategy S              ShadowPod or Sequential (default: from the pod's owner: Sequential
                            for a StatefulSet's pod, else ShadowPod)
  --transfer T              Direct (agent to agent) or Registry (default: Registry with
                            --image-repository, else Direct)
  --image-repository REPO   where Registry pushes the checkpoint image (registry/repo)
  --container C             one container (default: all)
  --queue Q --exchange E    the workload's primary queue and the exchange its producers use
  --routing-key K           the queue's binding key (default: none, fan-out)
  --broker-secret NAME[:KEY]
                            the Secret (in the pod's namespace) whose KEY (default url) is the
                            broker URL; the controller must be allowed to read it
                            (kubectl ms2m doctor --broker-secret checks that)
  --broker-url URL          the broker URL, without credentials (instead of --broker-secret)
  --replay-cutoff SECONDS   longest replay before cutting over (default 120)
  --on-restore-failure P    Rollback (default: the source runs on) or ColdStart (keep a target
                            the runtime started fresh instead of restoring; no message is lost,
                            the in-memory state is)
  --name NAME               the StatefulMigration's name (default POD-to-NODE)
  --wait                    follow the phases live, then print the timings
  --timeout DURATION        how long --wait waits, e.g. 90s, 10m (default 10m); the migration
                            goes on after that
  --dry-run                 print the StatefulMigration (yaml, or -o json) instead of creating it`,
  examples: `  # Move a consumer to node-b and watch it, its queue replayed from the broker in the Secret
  kubectl ms2m migrate consumer-7d9f8b6c5-x2lqz --to node-b --wait \\
      --queue orders --exchange orders.fanout --broker-secret rabbitmq-url

  # Let the controller pick the node; ship the checkpoint through a registry
  kubectl ms2m migrate db-0 --image-repository registry.example.com/ms2m/checkpoints

  # See what would be created
  kubectl ms2m migrate consumer-7d9f8b6c5-x2lqz --to node-b --dry-run`,
  exitCodes: {
    0: "created (without --wait), or Completed (with --wait)",
    1: "not created (pod or node not found, pod not Running, already on that node, the API refused it),\n     or with --wait: Failed, or still running at --timeout",
  },
  options: {
    to: { type: "string" },
    strategy: { type: "string" },
    transfer: { type: "string" },
    "image-repository": { type: "string" },
    container: { type: "string" },
    queue: { type: "string" },
    exchange: { type: "string" },
    "routing-key": { type: "string" },
    "broker-secret": { type: "string" },
    "broker-url": { type: "string" },
    "replay-cutoff": { type: "string" },
    "on-restore-failure": { type: "string" },
    name: { type: "string" },
    wait: { type: "boolean" },
    timeout: { type: "string" },
    "dry-run": { type: "boolean" },
  },
  positionals: { min: 1, max: 1 },
  async run(ctx, [pod], flags) {
    const s = (k: string) => flags[k] as string | undefined;
    const name = s("name") ?? migrationName(pod!, s("to"));
    const timeoutMs = parseDuration(s("timeout") ?? "10m");
    const body = buildMigration(name, pod!, {
      to: s("to"),
      strategy: s("strategy"),
      transfer: s("transfer"),
      imageRepository: s("image-repository"),
      container: s("container"),
      queue: s("queue"),
      exchange: s("exchange"),
      routingKey: s("routing-key"),
      brokerSecret: s("broker-secret"),
      brokerUrl: s("broker-url"),
      replayCutoff: s("replay-cutoff"),
      onRestoreFailure: s("on-restore-failure"),
    });
    const { io } = ctx;
    if (flags["dry-run"]) {
      printObject(io, ctx.format === "json" ? "json" : "yaml", body);
      return 0;
    }
    const kube = ctx.kube();
    const ns = kube.namespace;
    // What a typo costs is a failed migration: say it here instead.
    const source = await getOrUndefined(() => kube.core.readNamespacedPod({ namespace: ns, name: pod! }));
    if (!source) throw new Error(`pod ${ns}/${pod} not found`);
    if (source.status?.phase !== "Running")
      throw new Error(`pod ${ns}/${pod} is ${source.status?.phase}, not Running`);
    const target = s("to");
    if (target) {
      if (target === source.spec?.nodeName) throw new Error(`pod ${ns}/${pod} already runs on ${target}`);
      const node = await getOrUndefined(() => kube.core.readNode({ name: target }));
      if (!node) {
        const nodes = (await kube.core.listNode()).items.map((n) => n.metadata?.name).join(", ");
        throw new Error(`node ${target} not found (nodes: ${nodes})`);
      }
    }
    const created = await createMigration(kube, ns, body).catch((err: unknown) => {
      if (!isAlreadyExists(err)) throw err;
      throw new Error(
        `statefulmigration ${ns}/${name} already exists (kubectl ms2m status ${name} -n ${ns}); ` +
          `--name gives this one another name`,
        { cause: err },
      );
    });
    const human = ctx.format === "human";
    if (!flags.wait) {
      if (human) io.out(`statefulmigration.migration.ms2m.io/${name} created\n`);
      else printObject(io, ctx.format as "json" | "yaml", created);
      return 0;
    }
    if (human) {
      io.out(
        `migrating ${ns}/${pod} from ${source.spec?.nodeName ?? "?"} to ${target ?? "a node the controller picks"} ` +
          `(statefulmigration ${name})\n`,
      );
    }
    const started = Date.parse(String(created.metadata.creationTimestamp ?? "")) || io.now();
    const progress = new Progress(io, started);
    const final = await waitForMigration(kube, ns, name, {
      timeoutMs,
      onUpdate: human ? (m) => progress.update(m) : undefined,
    });
    if (human) io.out(`\n${summary(io, final, io.now())}`);
    else printObject(io, ctx.format as "json" | "yaml", final);
    return final.status?.phase === "Completed" ? 0 : 1;
  },
};
