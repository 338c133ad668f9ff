// The kubectl plugin's release archive and krew manifest, from the plugin's bundle:
//   dist/release/kubectl-ms2m-v<version>.tar.gz   kubectl-ms2m (the bundle, executable) and
//                                                 LICENSE where the repository has one
//   dist/release/ms2m.yaml                        plugins/krew/ms2m.yaml with the archive's sha256
// The archive is reproducible (fixed times, owners and order; gzip without a timestamp): the same
// sources give the same bytes, so the sha256 can be checked by anyone who builds it again.
//   node hack/krew.ts [--out DIR]
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import tarStream from "tar-stream";
import { parseDocument } from "yaml";
import { bundle, ROOT } from "./images/bundle.ts";
import { removeTempDir, tempDir } from "../tooling/temp-dir.ts";

export const MANIFEST_TEMPLATE = join(ROOT, "plugins", "krew", "ms2m.yaml");
export const RELEASE_DIR = join(ROOT, "dist", "release");

/** The time every archive entry carries (the archive must not depend on when it was built). */
const EPOCH = new Date(0);

export function packageVersion(): Promise<string> {
  return readFile(join(ROOT, "package.json"), "utf8").then(
    (t) => (JSON.parse(t) as { version: string }).version,
  );
}

export const archiveName = (version: string) => `kubectl-ms2m-v${version}.tar.gz`;

/** A gzipped tar of the given files (name → contents, mode), in the given order. */
export async function tarGz(entries: { name: string; data: Buffer; mode: number }[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on("end", resolve);
    pack.on("error", reject);
  });
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry(
        { name: e.name, mode: e.mode, mtime: EPOCH, uid: 0, gid: 0, uname: "", gname: "", type: "file" },
        e.data,
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  }
  pack.finalize();
  await ended;
  // Node's gzip header has no timestamp (MTIME 0).
  return gzipSync(Buffer.concat(chunks), { level: 9 });
}

export interface PluginRelease {
  version: string;
  archive: string;
  sha256: string;
  manifest: string;
  /** The archive's file names, in order. */
  files: string[];
}

/**
 * Bundles the plugin (into a temp folder), packs the archive and writes the manifest with its
 * sha256, both into `outDir`.
 */
export async function buildPluginRelease(outDir = RELEASE_DIR): Promise<PluginRelease> {
  const version = await packageVersion();
  const work = tempDir("krew");
  try {
    const built = await bundle({ outDir: work, names: ["kubectl-ms2m"] });
    const entries = [{ name: "kubectl-ms2m", data: await readFile(built["kubectl-ms2m"].path), mode: 0o755 }];
    const license = join(ROOT, "LICENSE");
    if (existsSync(license)) entries.push({ name: "LICENSE", data: await readFile(license), mode: 0o644 });
    const archive = await tarGz(entries);
    const sha256 = createHash("sha256").update(archive).digest("hex");

    const doc = parseDocument(await readFile(MANIFEST_TEMPLATE, "utf8"));
    const templateVersion = String(doc.getIn(["spec", "version"]));
    if (templateVersion !== `v${version}`)
      throw new Error(`${MANIFEST_TEMPLATE}: spec.version ${templateVersion}, package.json ${version}`);
    const platforms = doc.getIn(["spec", "platforms"]) as { items: unknown[] };
    for (let i = 0; i < platforms.items.length; i++) {
      const uri = String(doc.getIn(["spec", "platforms", i, "uri"]));
      if (!uri.endsWith(`/v${version}/${archiveName(version)}`))
        throw new Error(`${MANIFEST_TEMPLATE}: platform ${i} uri ${uri} is not v${version}'s archive`);
      doc.setIn(["spec", "platforms", i, "sha256"], sha256);
      if (entries.some((e) => e.name === "LICENSE"))
        doc.addIn(["spec", "platforms", i, "files"], doc.createNode({ from: "LICENSE", to: "." }));
    }
    await mkdir(outDir, { recursive: true });
    const archivePath = join(outDir, archiveName(version));
    const manifestPath = join(outDir, "ms2m.yaml");
    await writeFile(archivePath, archive);
    await writeFile(manifestPath, doc.toString());
    return {
      version,
      archive: archivePath,
      sha256,
      manifest: manifestPath,
      files: entries.map((e) => e.name),
    };
  } finally {
    await removeTempDir(work);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { out: { type: "string" } } });
  const r = await buildPluginRelease(values.out ?? RELEASE_DIR);
  console.log(`${r.archive}  (${r.files.join(", ")})`);
  console.log(`sha256 ${r.sha256}`);
  console.log(`${r.manifest}  (kubectl krew install --manifest=${r.manifest} --archive=${r.archive})`);
}
