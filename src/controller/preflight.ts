// Pending's runtime preflight: before anything is frozen, the source node's container runtime
// must be able to checkpoint and the target node's to restore. Each node's agent reads the
// runtime's configuration files (GET /v1/runtime); the settings it reports are judged here with
// the runtime version the node reports (Node.status.nodeInfo.containerRuntimeVersion), which
// decides what unset settings default to (agent/runtime-config.ts).
//
// A definite "cannot" fails the migration in Pending, naming the node, the runtime, the setting
// and the file to change. What cannot be told (no agent there, settings whose default depends on
// a version not known) does not block: the condition says Unknown and an Event says why.
import type { V1Node } from "@kubernetes/client-node";
import {
  assessRuntime,
  parseRuntimeVersion,
  runtimeOf,
  type Capability,
  type RuntimeVersion,
} from "../checkpoint/runtime-config.ts";
import type { Transport } from "./transfer-modes/index.ts";
import type { PhaseContext } from "./context.ts";
import type { EventType, RuntimeProbe } from "./ports.ts";

export const REASON_SOURCE_CANNOT_CHECKPOINT = "SourceRuntimeCannotCheckpoint";
export const REASON_TARGET_CANNOT_RESTORE = "TargetRuntimeCannotRestore";
export const REASON_RUNTIME_CAPABLE = "CheckpointRestoreEnabled";
export const REASON_RUNTIME_CHECK_SKIPPED = "RuntimeCheckSkipped";

export interface PreflightCondition {
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
}

export interface PreflightResult {
  condition: PreflightCondition;
  /** Set when a runtime definitely cannot do its part: the migration fails with it. */
  failure?: { reason: string; message: string };
  /** One per side that could not be checked. */
  events: { type: EventType; reason: string; message: string }[];
}

interface Side {
  role: "source" | "target";
  node: string;
  version: RuntimeVersion | undefined;
  /** As the node reports it, for messages. */
  versionText: string;
  probe: RuntimeProbe;
}

interface Judged {
  able?: boolean;
  text: string;
  /** For an undecided side: a skip that is by design (Normal) rather than a surprise (Warning). */
  expected?: boolean;
}

const doing = { source: "checkpoint containers", target: "restore checkpoints" } as const;

/** One side's verdict, worded for the condition, the failure and the Events. */
function judge(side: Side): Judged {
  const who = `${side.role} node ${side.node} (${side.versionText})`;
  const what = doing[side.role];
  if (side.probe.state === "skipped") {
    return { text: `${who}: runtime check skipped: ${side.probe.why}`, expected: side.probe.expected };
  }
  const report = side.probe.report;
  let cap: Capability;
  if (report.settings && report.runtime !== "unknown") {
    // Judged again with the node's version where it is that runtime's (the agent cannot know it).
    const version = side.version?.name === report.runtime ? side.version : undefined;
    const a = assessRuntime(report.runtime, report.settings, version);
    cap = side.role === "source" ? a.checkpoint : a.restore;
  } else {
    cap = {
      ...(side.role === "source" ? { able: report.checkpoint } : { able: report.restore }),
      why: report.detail,
    };
  }
  const fix = cap.fix ? `. To fix it, ${cap.fix}` : "";
  if (cap.able === true) return { able: true, text: `${who} can ${what}: ${cap.why}` };
  if (cap.able === false) return { able: false, text: `${who} cannot ${what}: ${cap.why}${fix}` };
  return {
    text: `${who}: whether it can ${what} is not known: ${cap.why}${cap.fix ? `. To be sure, ${cap.fix}` : ""}`,
    expected: false,
  };
}

/**
 * Asks the source's and the target's agents (in parallel) and judges. Throws what the probes
 * throw (an agent that must be there but cannot be reached: retried until Pending's deadline).
 */
export async function runtimePreflight(
  ctx: PhaseContext,
  args: { sourceNode: string; source?: V1Node | undefined; target: V1Node; transport: Transport },
): Promise<PreflightResult> {
  const { runtime, cluster, settings } = ctx.deps;
  const targetName = args.target.metadata?.name ?? "";
  // Pending reads the source node beside its other lookups and passes it.
  const source = "source" in args ? args.source : await cluster.getNode(args.sourceNode);
  const versionOf = (n: V1Node | undefined) => n?.status?.nodeInfo?.containerRuntimeVersion;
  const sourceVersion = parseRuntimeVersion(versionOf(source));
  const targetVersion = parseRuntimeVersion(versionOf(args.target));
  const [sourceProbe, targetProbe] = await Promise.all([
    runtime.probe(args.sourceNode, {
      runtime: runtimeOf(sourceVersion),
      agentRequired: settings.sourceAgentRequired,
    }),
    // A transfer through the target's agent (Direct) needs it there anyway.
    runtime.probe(targetName, {
      runtime: runtimeOf(targetVersion),
      agentRequired: args.transport.needsTargetAgent,
    }),
  ]);
  const sides: Side[] = [
    {
      role: "source",
      node: args.sourceNode,
      version: sourceVersion,
      versionText: versionOf(source) ?? "runtime version not reported",
      probe: sourceProbe,
    },
    {
      role: "target",
      node: targetName,
      version: targetVersion,
      versionText: versionOf(args.target) ?? "runtime version not reported",
      probe: targetProbe,
    },
  ];
  const judged = sides.map((side) => ({ side, ...judge(side) }));
  const failed = judged.filter((j) => j.able === false);
  if (failed.length > 0) {
    const reason =
      failed[0]!.side.role === "source" ? REASON_SOURCE_CANNOT_CHECKPOINT : REASON_TARGET_CANNOT_RESTORE;
    const message = failed.map((j) => j.text).join("; ");
    return { condition: { status: "False", reason, message }, failure: { reason, message }, events: [] };
  }
  const message = judged.map((j) => j.text).join("; ");
  const undecided = judged.filter((j) => j.able === undefined);
  if (undecided.length === 0) {
    return { condition: { status: "True", reason: REASON_RUNTIME_CAPABLE, message }, events: [] };
  }
  return {
    condition: { status: "Unknown", reason: REASON_RUNTIME_CHECK_SKIPPED, message },
    events: undecided.map((j) => ({
      type: j.expected ? "Normal" : "Warning",
      reason: REASON_RUNTIME_CHECK_SKIPPED,
      message: j.text,
    })),
  };
}
