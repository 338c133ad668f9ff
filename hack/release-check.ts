// `make release-check [TAG=vX.Y.Z]`: the version a release publishes is one semantic version
// (https://semver.org), package.json's, everywhere it is written: the chart's version and
// appVersion, the image tags of config/default and the Makefile, the defaults in the code that
// name an image. With a tag (the release workflow passes the pushed one) the tag must be
// v<version> and CHANGELOG.md must have a section for it. Exits 1 listing every mismatch.
//   node hack/release-check.ts [--tag vX.Y.Z]
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** SemVer 2.0.0, as https://semver.org's suggested regular expression. */
export const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** Where the version is written: a file and the pattern whose first group is the version. */
const PLACES: { file: string; what: string; pattern: RegExp; all?: boolean }[] = [
  { file: "charts/ms2m/Chart.yaml", what: "chart version", pattern: /^version:\s*"?([^"\s]+)"?\s*$/m },
  { file: "charts/ms2m/Chart.yaml", what: "chart appVersion", pattern: /^appVersion:\s*"?([^"\s]+)"?\s*$/m },
  {
    file: "config/default/kustomization.yaml",
    what: "image tags",
    pattern: /^\s*newTag:\s*"?([^"\s]+)"?\s*$/gm,
    all: true,
  },
  { file: "Makefile", what: "VERSION", pattern: /^VERSION \?= (\S+)$/m },
  { file: "src/cli/version.ts", what: "the plugin's VERSION", pattern: /VERSION = "([^"]+)"/ },
  {
    file: "src/controller/adapters/transfer-job/jobs.ts",
    what: "TRANSFER_JOB_IMAGE default",
    pattern: /ms2m-agent:([^"]+)"/,
  },
  { file: "tooling/stack/deployment.ts", what: "CONTROLLER_IMAGE", pattern: /ms2m-controller:([^"]+)"/ },
  { file: "tooling/stack/env.ts", what: "AGENT_IMAGE", pattern: /ms2m-agent:([^"]+)"/ },
];

/** Every way the repository disagrees with a release of `tag` (or with itself): empty when ready. */
export function releaseProblems(options: { root?: string; tag?: string } = {}): string[] {
  const root = options.root ?? ROOT;
  const read = (file: string) => readFileSync(join(root, file), "utf8");
  const version = (JSON.parse(read("package.json")) as { version?: string }).version ?? "";
  const problems: string[] = [];
  if (!SEMVER.test(version)) problems.push(`package.json: version "${version}" is not a semantic version`);
  for (const place of PLACES) {
    if (!existsSync(join(root, place.file))) continue; // not every tree has every file
    const text = read(place.file);
    const found = place.all
      ? [...text.matchAll(place.pattern)].map((m) => m[1]!)
      : [place.pattern.exec(text)?.[1]].filter((v): v is string => v !== undefined);
    if (found.length === 0) problems.push(`${place.file}: no ${place.what} found`);
    for (const v of found)
      if (v !== version) problems.push(`${place.file}: ${place.what} ${v}, package.json ${version}`);
  }
  if (options.tag !== undefined) {
    if (options.tag !== `v${version}`)
      problems.push(`tag ${options.tag}: expected v${version} (package.json's version)`);
    const changelog = existsSync(join(root, "CHANGELOG.md")) ? read("CHANGELOG.md") : "";
    const escaped = version.replace(/[.+]/g, "\\$&");
    if (!new RegExp(`^##\\s*\\[?v?${escaped}\\]?`, "m").test(changelog))
      problems.push(`CHANGELOG.md: no section for ${version}`);
  }
  return problems;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { tag: { type: "string" } } });
  const tag = values.tag || undefined;
  const problems = releaseProblems(tag ? { tag } : {});
  const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string })
    .version;
  if (problems.length) {
    for (const p of problems) console.error(`release-check: ${p}`);
    process.exit(1);
  }
  console.log(`release-check: ${version} everywhere${tag ? `, tag ${tag}, CHANGELOG section` : ""}`);
}
