import { describe, expect, it } from "vitest";
import { fromFindings, renderReport, worst, type DoctorReport } from "../../../../src/cli/doctor/report.ts";

describe("worst", () => {
  it("fail > warn > skip > ok", () => {
    expect(worst([])).toBe("ok");
    expect(worst(["ok", "skip"])).toBe("skip");
    expect(worst(["skip", "warn", "ok"])).toBe("warn");
    expect(worst(["warn", "fail", "ok"])).toBe("fail");
  });
});

describe("fromFindings", () => {
  const ok = { subject: "node-a", status: "ok" as const, message: "fine" };
  it("ok: the check's own message", () => {
    expect(fromFindings("agents", "Agents", [ok], "Ready on 1/1 nodes")).toMatchObject({
      status: "ok",
      message: "Ready on 1/1 nodes",
    });
  });
  it("otherwise: how many of which", () => {
    const fail = { subject: "node-b", status: "fail" as const, message: "no agent" };
    const warn = { subject: "node-c", status: "warn" as const, message: "not Ready" };
    const skip = { subject: "node-d", status: "skip" as const, message: "no agent to ask" };
    expect(fromFindings("a", "A", [ok, fail, warn], "").message).toBe("1 of 3 failed");
    expect(fromFindings("a", "A", [ok, warn], "").message).toBe("1 of 2 with warnings");
    expect(fromFindings("a", "A", [skip, skip], "")).toMatchObject({
      status: "skip",
      message: "2 of 2 not checked",
    });
  });
});

describe("renderReport", () => {
  const report: DoctorReport = {
    ok: false,
    checks: [
      { id: "crd", title: "CustomResourceDefinition", status: "ok", message: "installed" },
      {
        id: "agents",
        title: "Agents",
        status: "fail",
        message: "1 of 2 failed",
        findings: [
          { subject: "node-a", status: "ok", message: "ms2m-agent-x Ready" },
          { subject: "node-b", status: "fail", message: "no ms2m-agent pod" },
        ],
      },
      { id: "runtime", title: "Checkpoint/restore runtime", status: "warn", message: "1 of 1 with warnings" },
      { id: "broker", title: "Broker", status: "skip", message: "not checked" },
    ],
  };

  it("a mark per check and finding, then the verdict", () => {
    expect(renderReport({ color: false }, report)).toBe(
      [
        "✓ CustomResourceDefinition: installed",
        "✗ Agents: 1 of 2 failed",
        "    ✓ node-a: ms2m-agent-x Ready",
        "    ✗ node-b: no ms2m-agent pod",
        "! Checkpoint/restore runtime: 1 of 1 with warnings",
        "- Broker: not checked",
        "",
        "not ready: 1 check failed",
        "",
      ].join("\n"),
    );
  });

  it("ready, with the warnings counted", () => {
    const ready = { ok: true, checks: report.checks.filter((c) => c.status !== "fail") };
    expect(renderReport({ color: false }, ready).split("\n").at(-2)).toBe(
      "ready: ms2m can migrate on this cluster (1 warning)",
    );
  });

  it("a long list of nodes that are all fine is not repeated", () => {
    const many = Array.from({ length: 9 }, (_, i) => ({
      subject: `n${i}`,
      status: "ok" as const,
      message: "Ready",
    }));
    const text = renderReport(
      { color: false },
      {
        ok: true,
        checks: [
          { id: "agents", title: "Agents", status: "ok", message: "Ready on 9/9 nodes", findings: many },
        ],
      },
    );
    expect(text).toBe("✓ Agents: Ready on 9/9 nodes\n\nready: ms2m can migrate on this cluster\n");
  });
});
