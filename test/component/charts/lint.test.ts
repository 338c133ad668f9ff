// `helm lint --strict` on the chart, with its defaults and with every option on, and the packaged
// chart (what a release publishes): its links into config/ and crd/ are resolved into the archive,
// so the package renders exactly what the folder renders. The real helm (hack/build-helm.sh).
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CHART_DIR, helm, helmOk } from "../../../tooling/helm.ts";
import { run } from "../../../tooling/exec.ts";

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ms2m-chart-lint-"));
}, 600_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const everything = [
  "controller.checkpointMode=auto",
  "metrics.serviceMonitor.enabled=true",
  "metrics.prometheusRule.enabled=true",
  "grafana.dashboard.enabled=true",
  "crds.keep=true",
];

it("helm lint --strict passes with the defaults and with every option on", async () => {
  const plain = await helm(["lint", "--strict", CHART_DIR]);
  expect(plain.stdout + plain.stderr).toContain("0 chart(s) failed");
  expect(plain.code).toBe(0);
  expect(plain.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
  const all = await helm(["lint", "--strict", CHART_DIR, ...everything.flatMap((s) => ["--set", s])]);
  expect(all.code, all.stdout + all.stderr).toBe(0);
  expect(all.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
});

it("the packaged chart carries the linked files and renders what the folder renders", async () => {
  const out = await helmOk(["package", CHART_DIR, "-d", work]);
  expect(out).toMatch(/Successfully packaged chart/);
  const [tgz] = (await readdir(work)).filter((f) => f.endsWith(".tgz"));
  expect(tgz).toBe("ms2m-0.1.0.tgz");
  const listing = (await run("tar", ["-tzvf", join(work, tgz!)])).split("\n");
  // Regular files in the archive, not links that would point nowhere once published.
  const entry = (name: string) => listing.find((l) => l.endsWith(` ms2m/files/${name}`));
  for (const name of [
    "crd/migration.ms2m.io_statefulmigrations.yaml",
    "config/default/kustomization.yaml",
    "config/rbac/controller-role.yaml",
    "config/controller/deployment.yaml",
    "config/agent/daemonset.yaml",
    "config/prometheus/prometheusrule.yaml",
    "config/grafana/ms2m-dashboard.json",
    "config/components/node-proxy-fallback/role.yaml",
  ]) {
    expect(entry(name), name).toMatch(/^-/);
  }
  const set = everything.flatMap((s) => ["--set", s]);
  const fromDir = await helmOk(["template", "ms2m", CHART_DIR, "-n", "ms2m-system", ...set]);
  const fromPackage = await helmOk(["template", "ms2m", join(work, tgz!), "-n", "ms2m-system", ...set]);
  expect(fromPackage).toBe(fromDir);
  // The samples are not the chart's (.helmignore).
  expect(listing.some((l) => l.includes("files/config/samples/"))).toBe(false);
});
