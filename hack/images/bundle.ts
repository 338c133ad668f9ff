// Bundles each image's entry point into one ESM file, dist/bundle/<name>.mjs, with esbuild. An image
// copies only its bundle: its file set is exactly what the entry point imports (a new import can
// no longer be missed by a hand-kept folder list), and it needs no node_modules.
//   node hack/images/bundle.ts [--sourcemap]      (npm run bundle)
import { mkdir, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BUNDLE_DIR = join(ROOT, "dist", "bundle");

/** Bundle name -> entry point. The names are the files the Dockerfiles copy. */
export const ENTRY_POINTS = {
  controller: "cmd/ms2m-controller/main.ts",
  agent: "cmd/ms2m-agent/main.ts",
  consumer: "workload/consumer.ts",
  producer: "workload/producer.ts",
  // The kubectl plugin: the npm package's bin and the krew archive (no image copies it).
  "kubectl-ms2m": "cmd/kubectl-ms2m/main.ts",
} as const;

export type BundleName = keyof typeof ENTRY_POINTS;

export interface BundleOptions {
  outDir?: string;
  /** Write <name>.mjs.map next to each bundle (run with `node --enable-source-maps` to use them). */
  sourcemap?: boolean;
  /** Only these bundles (default: all). */
  names?: BundleName[];
}

// CommonJS dependencies (amqplib, prom-client, ...) call require() for Node built-ins, which an
// ESM file lacks; esbuild's require shim uses this one. The import is aliased so it cannot clash
// with a bundled module's own. Not bundleable, and not used: pino transports (worker threads that
// load pino's files by path); the loggers write to stdout in-process.
const banner = [
  'import { createRequire as __ms2mCreateRequire } from "node:module";',
  "const require = __ms2mCreateRequire(import.meta.url);",
].join("\n");

/** Builds the bundles (all, or `names`); returns each bundle's path and size. */
export async function bundle(
  options: BundleOptions = {},
): Promise<Record<BundleName, { path: string; bytes: number }>> {
  const outDir = options.outDir ?? BUNDLE_DIR;
  const names = options.names ?? (Object.keys(ENTRY_POINTS) as BundleName[]);
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: Object.fromEntries(names.map((n) => [n, ENTRY_POINTS[n]])),
    outdir: outDir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node24",
    banner: { js: banner },
    // Class and function names appear in logs and errors (err.name, constructor names): keep them
    // even where bundling renames a clashing top-level identifier.
    keepNames: true,
    // Without comments and indentation: the bundle's text is held in memory by every process that
    // runs it, and one non-Latin-1 character in a dependency's comment made V8 hold all of it as
    // a two-byte string (controller: 11 MiB of text). Names stay (keepNames); lines and columns
    // of a stack trace map back with `--sourcemap`.
    minifyWhitespace: true,
    sourcemap: options.sourcemap ? "linked" : false,
    legalComments: "eof",
    logLevel: "warning",
  });
  const out = {} as Record<BundleName, { path: string; bytes: number }>;
  for (const name of names) {
    const path = join(outDir, `${name}.mjs`);
    out[name] = { path, bytes: (await stat(path)).size };
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const started = performance.now();
  const result = await bundle({ sourcemap: process.argv.includes("--sourcemap") });
  for (const [name, { path, bytes }] of Object.entries(result)) {
    console.log(`${name.padEnd(10)} ${(bytes / 1024).toFixed(0).padStart(6)} KiB  ${path}`);
  }
  console.log(`bundled in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
