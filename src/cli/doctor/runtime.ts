// Whether a node's container runtime can checkpoint and restore, judged exactly as the controller's
// preflight judges it (src/controller/preflight.ts): the settings the node's agent read from the
// runtime's configuration files (GET /v1/runtime) assessed by src/checkpoint/runtime-config.ts with
// the runtime version the Node reports. A node is a source one day and a target the next, so
// doctor wants both.
import {
  assessRuntime,
  parseRuntimeVersion,
  type Capability,
  type RuntimeReport,
} from "../../checkpoint/runtime-config.ts";
import type { Finding } from "./report.ts";

/** The node's capability to checkpoint and to restore, as the preflight would find it. */
export function capabilities(
  report: RuntimeReport,
  versionText: string | undefined,
): { checkpoint: Capability; restore: Capability } {
  if (report.settings && report.runtime !== "unknown") {
    const parsed = parseRuntimeVersion(versionText);
    // Judged again with the node's version where it is that runtime's (the agent cannot know it).
    const version = parsed?.name === report.runtime ? parsed : undefined;
    return assessRuntime(report.runtime, report.settings, version);
  }
  return {
    checkpoint: {
      ...(report.checkpoint !== undefined ? { able: report.checkpoint } : {}),
      why: report.detail,
    },
    restore: { ...(report.restore !== undefined ? { able: report.restore } : {}), why: report.detail },
  };
}

const doing = { checkpoint: "checkpoint containers", restore: "restore checkpoints" } as const;

/** One finding per node, worded as the preflight words its condition and failures. */
export function judgeNode(node: string, versionText: string | undefined, report: RuntimeReport): Finding {
  const who = versionText ?? "runtime version not reported";
  const caps = capabilities(report, versionText);
  const sides = (["checkpoint", "restore"] as const).map((k) => ({ k, cap: caps[k] }));
  const cannot = sides.filter((s) => s.cap.able === false);
  if (cannot.length > 0) {
    // The same setting usually stops both: say it once.
    const same =
      cannot.length === 2 &&
      cannot[0]!.cap.why === cannot[1]!.cap.why &&
      cannot[0]!.cap.fix === cannot[1]!.cap.fix;
    const parts = same
      ? [
          `cannot ${doing.checkpoint} or ${doing.restore}: ${cannot[0]!.cap.why}${cannot[0]!.cap.fix ? `. To fix it, ${cannot[0]!.cap.fix}` : ""}`,
        ]
      : cannot.map(
          (s) => `cannot ${doing[s.k]}: ${s.cap.why}${s.cap.fix ? `. To fix it, ${s.cap.fix}` : ""}`,
        );
    return { subject: node, status: "fail", message: `${who} ${parts.join("; ")}` };
  }
  const unknown = sides.filter((s) => s.cap.able === undefined);
  if (unknown.length > 0) {
    const parts = unknown.map(
      (s) =>
        `whether it can ${doing[s.k]} is not known: ${s.cap.why}${s.cap.fix ? `. To be sure, ${s.cap.fix}` : ""}`,
    );
    return { subject: node, status: "warn", message: `${who}: ${parts.join("; ")}` };
  }
  // The two reasons often share their setting: each part once.
  const why = [...new Set([caps.checkpoint.why, caps.restore.why].flatMap((w) => w.split("; ")))].join("; ");
  return { subject: node, status: "ok", message: `${who} can checkpoint and restore: ${why}` };
}
