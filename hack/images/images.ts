// The project's container images (controller, agent, workload), built without a Docker daemon
// from the project's Dockerfiles, and pushed to a registry.
//
//   buildImages(options?): Promise<ImagesManifest>
//     Bundles the entry points (bundle.ts), makes sure the local bases exist (bases.sh, cached),
//     then per image `buildah bud` (chroot isolation, vfs store under $MS2M_CACHE/images/buildah)
//     with --build-arg BASE=<local base>, and `buildah push` to an OCI archive in .build/images/.
//     An image whose inputs (Dockerfile, bundles, base image) are unchanged is not rebuilt.
//     Writes and returns .build/images/manifest.json: per image its tag, archive, size, digest
//     and build seconds.
//   pushImages(registry, options?): Promise<Record<ImageName, string>>
//     Copies the archives with skopeo to <registry>/ms2m/<name>:<tag> (TLS not verified, so a
//     plain-HTTP registry works) and returns those references (by digest with `pin: true`). The
//     registry keeps the manifests as they are: the digests equal those in the manifest.
//   readManifest(): Promise<ImagesManifest | undefined>
//
// Command line (make images, make images-push, hack/images/push.sh):
//   node hack/images/images.ts build [--tag TAG] [--force]
//   node hack/images/images.ts push REGISTRY [--tag TAG] [--pin]   prints {"controller": "<ref>", ...}
// Needs root, buildah, mmdebstrap and skopeo (Debian packages); the bundles need `npm ci`.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pathToFileURL } from "node:url";
import { BUNDLE_DIR, ROOT, bundle, type BundleName } from "./bundle.ts";

export const IMAGE_NAMES = ["controller", "agent", "workload"] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];

export const IMAGES_DIR = join(ROOT, ".build", "images");
export const MANIFEST_PATH = join(IMAGES_DIR, "manifest.json");

export interface BuiltImage {
  name: ImageName;
  tag: string;
  /** The image in the buildah store: localhost/ms2m/<name>:<tag>. */
  image: string;
  /** OCI archive (absolute path): skopeo's and podman's `oci-archive:` transport. */
  archive: string;
  /** Archive size in bytes (compressed layers). */
  size: number;
  /** Manifest digest; a registry that takes the archive unchanged serves it under this digest. */
  digest: string;
  /** Seconds the last actual build (bud + push to the archive) took. */
  buildSeconds: number;
  /** The base image (build argument BASE). */
  base: string;
  /** Hash of the Dockerfile, the bundles and the base image ID: unchanged means not rebuilt. */
  inputs: string;
}

export interface ImagesManifest {
  images: Record<ImageName, BuiltImage>;
}

export interface BuildOptions {
  /** Image tag (default: package.json's version). */
  tag?: string;
  /** Rebuild even when the inputs are unchanged. */
  force?: boolean;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

export interface PushOptions {
  /** Manifest to push (default: .build/images/manifest.json). */
  manifest?: ImagesManifest;
  /** Tag to push as (default: the tag the images were built with). */
  tag?: string;
  /** Return <registry>/ms2m/<name>@<digest> instead of the tag reference. */
  pin?: boolean;
}

interface ImageSpec {
  dockerfile: string;
  base: "node" | "agent";
  bundles: BundleName[];
}

const SPECS: Record<ImageName, ImageSpec> = {
  controller: { dockerfile: "Dockerfile", base: "node", bundles: ["controller"] },
  agent: { dockerfile: "Dockerfile.agent", base: "agent", bundles: ["agent"] },
  workload: { dockerfile: "workload/Dockerfile", base: "node", bundles: ["consumer", "producer"] },
};

interface Bases {
  node: string;
  agent: string;
  buildahRoot: string;
  buildahRunroot: string;
}

/** Runs a command; resolves with its stdout. stderr goes to ours (build progress, errors). */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}`)),
    );
  });
}

async function ensureBases(): Promise<Bases> {
  const out = await run("bash", [join(ROOT, "hack", "images", "bases.sh")]);
  const vars = Object.fromEntries(
    out
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  const get = (k: string): string => {
    const v = vars[k];
    if (!v) throw new Error(`hack/images/bases.sh printed no ${k}`);
    return v;
  };
  return {
    node: get("BASE_NODE"),
    agent: get("BASE_AGENT"),
    buildahRoot: get("BUILDAH_ROOT"),
    buildahRunroot: get("BUILDAH_RUNROOT"),
  };
}

async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

export async function readManifest(): Promise<ImagesManifest | undefined> {
  try {
    return JSON.parse(await readFile(MANIFEST_PATH, "utf8")) as ImagesManifest;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

async function writeAtomically(path: string, data: string): Promise<void> {
  await writeFile(`${path}.tmp`, data);
  await rename(`${path}.tmp`, path);
}

/**
 * Runs fn holding an exclusive lock file (pid inside): a test and `make images` may start builds
 * at the same time, and one's bundle step would replace files the other's build is copying.
 */
async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  for (;;) {
    try {
      await writeFile(path, String(process.pid), { flag: "wx" });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number(await readFile(path, "utf8").catch(() => ""));
      if (!holder || !isAlive(holder)) await rm(path, { force: true });
      else await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function buildImages(options: BuildOptions = {}): Promise<ImagesManifest> {
  return withLock(join(IMAGES_DIR, ".lock"), () => build(options));
}

async function build(options: BuildOptions): Promise<ImagesManifest> {
  const log = options.log ?? ((line: string) => console.error(line));
  const tag = options.tag ?? (await packageVersion());
  let t0 = performance.now();
  await bundle();
  log(`[images] bundles in ${seconds(t0)} s`);
  t0 = performance.now();
  const bases = await ensureBases();
  log(`[images] bases ${bases.node}, ${bases.agent} ready in ${seconds(t0)} s`);
  const buildah = (...args: string[]) =>
    run("buildah", [
      "--root",
      bases.buildahRoot,
      "--runroot",
      bases.buildahRunroot,
      "--storage-driver",
      "vfs",
      ...args,
    ]);

  await mkdir(IMAGES_DIR, { recursive: true });
  const previous = (await readManifest())?.images;
  const images = {} as Record<ImageName, BuiltImage>;
  let built = 0;
  for (const name of IMAGE_NAMES) {
    const spec = SPECS[name];
    const base = bases[spec.base];
    const image = `localhost/ms2m/${name}:${tag}`;
    const archive = join(IMAGES_DIR, `${name}.tar`);
    const baseId = (await buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", base)).trim();
    const hash = createHash("sha256").update(`${tag}\n${base}\n${baseId}\n`);
    for (const file of [
      spec.dockerfile,
      ".dockerignore",
      ...spec.bundles.map((b) => relative(ROOT, join(BUNDLE_DIR, `${b}.mjs`))),
    ]) {
      hash.update(`${file}\n`).update(await readFile(resolve(ROOT, file)));
    }
    const inputs = hash.digest("hex").slice(0, 32);
    const old = previous?.[name];
    if (!options.force && old?.inputs === inputs && (await sizeOf(archive)) === old.size) {
      images[name] = old;
      log(`[images] ${name}: up to date (${mb(old.size)}, ${old.digest})`);
      continue;
    }
    t0 = performance.now();
    await buildah(
      "bud",
      "--quiet",
      "--isolation",
      "chroot",
      "--pull=never",
      "--layers=false",
      // A failed build leaves no working container behind (each one is a full vfs copy).
      "--force-rm",
      "--label",
      `org.opencontainers.image.version=${tag}`,
      "--build-arg",
      `BASE=${base}`,
      "-f",
      join(ROOT, spec.dockerfile),
      "-t",
      image,
      ROOT,
    );
    // Written beside and renamed: a reader never sees half an archive.
    const work = await mkdtemp(join(IMAGES_DIR, `.${name}-`));
    try {
      const digestFile = join(work, "digest");
      const tmpArchive = join(work, "image.tar");
      await buildah(
        "push",
        "--quiet",
        "--digestfile",
        digestFile,
        image,
        `oci-archive:${tmpArchive}:${image}`,
      );
      await rename(tmpArchive, archive);
      images[name] = {
        name,
        tag,
        image,
        archive,
        size: (await stat(archive)).size,
        digest: (await readFile(digestFile, "utf8")).trim(),
        buildSeconds: Number(seconds(t0)),
        base,
        inputs,
      };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    built++;
    log(
      `[images] ${name}: built in ${images[name].buildSeconds} s (${mb(images[name].size)}, ${images[name].digest})`,
    );
  }
  const manifest: ImagesManifest = { images };
  await writeAtomically(MANIFEST_PATH, `${JSON.stringify(manifest, null, 2)}\n`);
  // Every vfs layer is a full copy of its root filesystem: drop the images the new ones replaced.
  if (built > 0) await buildah("rmi", "--prune").catch(() => undefined);
  return manifest;
}

export async function pushImages(
  registry: string,
  options: PushOptions = {},
): Promise<Record<ImageName, string>> {
  const manifest = options.manifest ?? (await readManifest());
  if (!manifest) throw new Error(`no images built (${MANIFEST_PATH} is missing): run \`make images\` first`);
  const host = registry.replace(/^docker:\/\//, "").replace(/\/+$/, "");
  const work = await mkdtemp(join(tmpdir(), "ms2m-push-"));
  try {
    const refs = await Promise.all(
      IMAGE_NAMES.map(async (name) => {
        const img = manifest.images[name];
        const tag = options.tag ?? img.tag;
        const repo = `${host}/ms2m/${name}`;
        const digestFile = join(work, name);
        // Our own archives: no signature policy to consult. TLS is not verified, so skopeo also
        // speaks plain HTTP to a registry that has no TLS (the test registry).
        await run("skopeo", [
          "--insecure-policy",
          "copy",
          "--quiet",
          "--dest-tls-verify=false",
          "--digestfile",
          digestFile,
          `oci-archive:${img.archive}`,
          `docker://${repo}:${tag}`,
        ]);
        const digest = (await readFile(digestFile, "utf8")).trim();
        return [name, options.pin ? `${repo}@${digest}` : `${repo}:${tag}`] as const;
      }),
    );
    return Object.fromEntries(refs) as Record<ImageName, string>;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  return (await stat(path).catch(() => undefined))?.size;
}

const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(1);
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { tag: { type: "string" }, force: { type: "boolean" }, pin: { type: "boolean" } },
  });
  const [command, registry] = positionals;
  if (command === "build") {
    const started = performance.now();
    const manifest = await buildImages({
      ...(values.tag ? { tag: values.tag } : {}),
      ...(values.force ? { force: true } : {}),
    });
    for (const img of Object.values(manifest.images)) {
      console.log(`${img.image.padEnd(30)} ${mb(img.size).padStart(9)}  ${img.archive}`);
    }
    console.log(`manifest: ${MANIFEST_PATH} (${seconds(started)} s)`);
  } else if (command === "push" && registry) {
    const refs = await pushImages(registry, {
      ...(values.tag ? { tag: values.tag } : {}),
      ...(values.pin ? { pin: true } : {}),
    });
    console.log(JSON.stringify(refs, null, 2));
  } else {
    console.error(
      "usage: node hack/images/images.ts build [--tag TAG] [--force] | push REGISTRY [--tag TAG] [--pin]",
    );
    process.exit(2);
  }
}
