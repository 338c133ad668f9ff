import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { parse, stringify } from "yaml";

const repo = (rel: string) => new URL(`../../../${rel}`, import.meta.url);

it("the PrometheusRule's groups pass `promtool check rules`", () => {
  const rule = parse(readFileSync(repo("config/prometheus/prometheusrule.yaml"), "utf8")) as {
    spec: { groups: { rules: { alert: string }[] }[] };
  };
  const dir = mkdtempSync(join(tmpdir(), "ms2m-rules-"));
  try {
    const file = join(dir, "rules.yaml");
    writeFileSync(file, stringify({ groups: rule.spec.groups }));
    const out = execFileSync("promtool", ["check", "rules", file], { encoding: "utf8" });
    const alerts = rule.spec.groups.flatMap((g) => g.rules).length;
    expect(out).toContain(`SUCCESS: ${alerts} rules found`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("the Grafana dashboard only queries metrics the components export", () => {
  const dashboard = JSON.parse(readFileSync(repo("config/grafana/ms2m-dashboard.json"), "utf8")) as {
    panels: { targets: { expr: string }[] }[];
  };
  const sources = ["src/engine/metrics.ts", "src/controller/metrics.ts", "src/agent/metrics.ts"]
    .map((f) => readFileSync(repo(f), "utf8"))
    .join("\n");
  const used = new Set(
    dashboard.panels.flatMap((p) =>
      p.targets.flatMap((t) => t.expr.match(/\b(ms2m|workqueue|controller_runtime)_[a-z_]+/g) ?? []),
    ),
  );
  expect(used.size).toBeGreaterThan(5);
  for (const metric of used) {
    const base = metric.replace(/_(bucket|sum|count)$/, "");
    expect(sources, `${metric} is not defined by any component`).toContain(`"${base}"`);
  }
});

it("alerts and dashboard use the result label values the controller emits", () => {
  const emitted = readFileSync(repo("src/controller/context.ts"), "utf8");
  const configs = [
    readFileSync(repo("config/prometheus/prometheusrule.yaml"), "utf8"),
    readFileSync(repo("config/grafana/ms2m-dashboard.json"), "utf8"),
  ].join("\n");
  const values = [...configs.matchAll(/result=\\?"(\w+)\\?"/g)].map((m) => m[1]!);
  expect(values.length).toBeGreaterThan(0);
  for (const value of values) expect(emitted, `result="${value}" is never emitted`).toContain(`"${value}"`);
});
