import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, expect, it } from "vitest";
import { releaseProblems, SEMVER } from "../../../hack/release-check.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";

// `make release-check`: one semantic version everywhere a release writes it.
const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
let dir: string | undefined;
afterEach(async () => {
  await removeTempDir(dir);
  dir = undefined;
});

/** The files release-check reads, copied into a folder of their own. */
function copyTree(): string {
  dir = tempDir("release-check");
  for (const f of [
    "package.json",
    "charts/ms2m/Chart.yaml",
    "config/default/kustomization.yaml",
    "Makefile",
    "src/controller/adapters/transfer-job/jobs.ts",
    "tooling/stack/deployment.ts",
    "tooling/stack/env.ts",
  ]) {
    mkdirSync(join(dir, f, ".."), { recursive: true });
    cpSync(join(ROOT, f), join(dir, f));
  }
  return dir;
}

it("the repository has one version everywhere", () => {
  expect(releaseProblems()).toEqual([]);
});

it("SEMVER accepts semantic versions only", () => {
  for (const v of ["0.1.0", "1.2.3-rc.1", "1.0.0+build.5", "10.20.30-alpha.beta"]) expect(v).toMatch(SEMVER);
  for (const v of ["1.2", "v1.2.3", "01.2.3", "1.2.3-", "1.2.3-01"]) expect(v).not.toMatch(SEMVER);
});

it("names every place that disagrees, the tag and a missing CHANGELOG section", () => {
  const root = copyTree();
  const chart = join(root, "charts/ms2m/Chart.yaml");
  const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string })
    .version;
  writeFileSync(chart, readFileSync(chart, "utf8").replace(/^appVersion: .*$/m, 'appVersion: "9.9.9"'));
  expect(releaseProblems({ root })).toEqual([
    `charts/ms2m/Chart.yaml: chart appVersion 9.9.9, package.json ${version}`,
  ]);
  expect(releaseProblems({ root, tag: "v9.9.9" })).toEqual([
    `charts/ms2m/Chart.yaml: chart appVersion 9.9.9, package.json ${version}`,
    `tag v9.9.9: expected v${version} (package.json's version)`,
    `CHANGELOG.md: no section for ${version}`,
  ]);
  writeFileSync(join(root, "CHANGELOG.md"), `# Changelog\n\n## [${version}] - 2026-12-01\n`);
  expect(releaseProblems({ root, tag: `v${version}` })).toEqual([
    `charts/ms2m/Chart.yaml: chart appVersion 9.9.9, package.json ${version}`,
  ]);
});
