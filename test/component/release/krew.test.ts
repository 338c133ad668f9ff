// The kubectl plugin as krew ships it: hack/krew.ts builds the release archive from the plugin's
// bundle and the manifest with the archive's sha256; here the archive is checked against the
// manifest, installed as krew installs it (the manifest's files and bin) and run by the real
// kubectl's plugin lookup. Nothing is downloaded: the manifest's URI is where a release puts it.
import { createHash } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, expect, it } from "vitest";
import tarStream from "tar-stream";
import { parse } from "yaml";
import {
  archiveName,
  buildPluginRelease,
  MANIFEST_TEMPLATE,
  packageVersion,
  type PluginRelease,
} from "../../../hack/krew.ts";
import { kubectlPlugin } from "../../../tooling/plugin.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";

interface Platform {
  selector: unknown;
  uri: string;
  sha256: string;
  files: { from: string; to: string }[];
  bin: string;
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: { version: string; shortDescription: string; platforms: Platform[] };
}

let work: string;
let release: PluginRelease;

beforeAll(async () => {
  work = tempDir("krew-test");
  release = await buildPluginRelease(join(work, "release"));
}, 120_000);
afterAll(() => removeTempDir(work));

/** The archive's files: name → mode and contents. */
async function entries(archive: string): Promise<Map<string, { mode: number; data: Buffer }>> {
  const out = new Map<string, { mode: number; data: Buffer }>();
  const extract = tarStream.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: unknown) => chunks.push(c as Buffer));
      stream.on("end", () => {
        out.set(header.name, { mode: header.mode ?? 0, data: Buffer.concat(chunks) });
        next();
      });
    });
    extract.on("finish", resolve);
    extract.on("error", reject);
  });
  extract.end(gunzipSync(await readFile(archive)));
  await done;
  return out;
}

it("the manifest: the template with the archive's sha256, at the package's version", async () => {
  const version = await packageVersion();
  const manifest = parse(await readFile(release.manifest, "utf8")) as Manifest;
  const template = parse(await readFile(MANIFEST_TEMPLATE, "utf8")) as Manifest;
  const sha256 = createHash("sha256")
    .update(await readFile(release.archive))
    .digest("hex");
  expect(release.sha256).toBe(sha256);
  expect(manifest).toMatchObject({
    apiVersion: "krew.googlecontainertools.github.com/v1alpha2",
    kind: "Plugin",
    metadata: { name: "ms2m" },
    spec: { version: `v${version}` },
  });
  expect(manifest.spec.platforms.length).toBeGreaterThan(0);
  for (const p of manifest.spec.platforms) {
    expect(p.sha256).toBe(sha256);
    expect(p.uri).toBe(`https://github.com/ms2m/ms2m/releases/download/v${version}/${archiveName(version)}`);
    expect(release.archive.endsWith(archiveName(version))).toBe(true);
  }
  // Nothing else differs from the template but the digest (and LICENSE, where there is one).
  const normalised = structuredClone(manifest);
  for (const p of normalised.spec.platforms) p.files = p.files.filter((f) => f.from !== "LICENSE");
  template.spec.platforms.forEach((p, i) => (p.sha256 = normalised.spec.platforms[i]!.sha256));
  expect(normalised).toEqual(template);
});

it("the archive: kubectl-ms2m, executable, and what the manifest's files name", async () => {
  const files = await entries(release.archive);
  expect([...files.keys()]).toEqual(release.files);
  const bin = files.get("kubectl-ms2m");
  expect(bin?.mode).toBe(0o755);
  expect(bin?.data.subarray(0, 20).toString()).toBe("#!/usr/bin/env node\n");
  const manifest = parse(await readFile(release.manifest, "utf8")) as Manifest;
  for (const p of manifest.spec.platforms) {
    expect(files.has(p.bin)).toBe(true);
    for (const f of p.files) expect(files.has(f.from), f.from).toBe(true);
  }
});

it("installed as krew installs it, `kubectl ms2m` runs it", async () => {
  const manifest = parse(await readFile(release.manifest, "utf8")) as Manifest;
  const platform = manifest.spec.platforms[0]!;
  const files = await entries(release.archive);
  const dir = join(work, "krew", "store", "ms2m", manifest.spec.version);
  await mkdir(dir, { recursive: true });
  for (const f of platform.files) {
    const entry = files.get(f.from)!;
    await writeFile(join(dir, f.to, f.from), entry.data);
    await chmod(join(dir, f.to, f.from), entry.mode);
  }
  // No cluster is asked: an empty kubeconfig.
  const version = await kubectlPlugin(dir, "/dev/null", ["version"]);
  expect(version).toEqual({ code: 0, stdout: `kubectl-ms2m ${release.version}\n`, stderr: "" });
  const help = await kubectlPlugin(dir, "/dev/null", ["--help"]);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain("kubectl ms2m doctor");
});

it("reproducible: built again, the same bytes", async () => {
  const again = await buildPluginRelease(join(work, "again"));
  expect(again.sha256).toBe(release.sha256);
}, 120_000);
