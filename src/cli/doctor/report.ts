// What `kubectl ms2m doctor` reports: one result per check, each with a line per subject (a node,
// a permission, ...) where there are several, and the human rendering of it.
import { paint, type Io } from "../output.ts";

export type CheckStatus = "ok" | "warn" | "fail" | "skip";

export interface Finding {
  /** What it is about: a node, a pod, a permission. */
  subject: string;
  status: CheckStatus;
  message: string;
}

export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  /** One line: the verdict, or the first problem. */
  message: string;
  findings?: Finding[];
}

export interface DoctorReport {
  ok: boolean;
  checks: CheckResult[];
}

const rank: Record<CheckStatus, number> = { ok: 0, skip: 1, warn: 2, fail: 3 };

export function worst(statuses: CheckStatus[]): CheckStatus {
  return statuses.reduce<CheckStatus>((w, s) => (rank[s] > rank[w] ? s : w), "ok");
}

/** A check's result from its findings: the worst status; the message says how many of which. */
export function fromFindings(id: string, title: string, findings: Finding[], okMessage: string): CheckResult {
  const status = worst(findings.map((f) => f.status));
  const bad = findings.filter((f) => f.status === "fail");
  const warn = findings.filter((f) => f.status === "warn");
  const message =
    status === "ok"
      ? okMessage
      : bad.length > 0
        ? `${bad.length} of ${findings.length} failed`
        : warn.length > 0
          ? `${warn.length} of ${findings.length} with warnings`
          : `${findings.filter((f) => f.status === "skip").length} of ${findings.length} not checked`;
  return { id, title, status, message, findings };
}

const marks: Record<CheckStatus, { mark: string; color: "green" | "yellow" | "red" | "gray" }> = {
  ok: { mark: "✓", color: "green" },
  warn: { mark: "!", color: "yellow" },
  fail: { mark: "✗", color: "red" },
  skip: { mark: "-", color: "gray" },
};

export function renderReport(io: Pick<Io, "color">, report: DoctorReport): string {
  let text = "";
  for (const c of report.checks) {
    const m = marks[c.status];
    text += `${paint(io, m.color, m.mark)} ${paint(io, "bold", c.title)}: ${c.message}\n`;
    for (const f of c.findings ?? []) {
      if (c.status === "ok" && f.status === "ok" && (c.findings?.length ?? 0) > 8) continue;
      const fm = marks[f.status];
      text += `    ${paint(io, fm.color, fm.mark)} ${f.subject}: ${f.message}\n`;
    }
  }
  const failed = report.checks.filter((c) => c.status === "fail").length;
  const warned = report.checks.filter((c) => c.status === "warn").length;
  text += report.ok
    ? `\n${paint(io, "green", "ready")}: ms2m can migrate on this cluster${warned ? ` (${warned} warning${warned > 1 ? "s" : ""})` : ""}\n`
    : `\n${paint(io, "red", "not ready")}: ${failed} check${failed > 1 ? "s" : ""} failed\n`;
  return text;
}
