// Images on a simulated node. Two kinds:
//  - real images in the node's containers-storage (registry pulls, checkpoint images loaded with
//    skopeo): present when containers-storage lists them;
//  - mapped images (image name -> host command): "pulled" by waiting the pull latency and
//    recording the name, since there is no image content to fetch.
// Pull policies behave as on a real node, so `Never` with a missing image is ErrImageNeverPull.
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  listStoredImages,
  runSkopeo,
  storageReference,
  type StorageConfig,
} from "../src/checkpoint/skopeo.ts";
import { CHECKPOINT_NAME_ANNOTATION } from "../src/checkpoint/image.ts";
import type { Logger } from "../src/common/logger.ts";
import { readCheckpointArchive, type ReadArchive } from "./archive.ts";
import type { ImageCommand } from "./config.ts";

/** docker.io/library/x:latest style: how the kubelet and CRI-O compare image names. */
export function normalizeImage(image: string): string {
  let name = image;
  const slash = name.indexOf("/");
  const first = slash < 0 ? "" : name.slice(0, slash);
  if (slash < 0 || !(first.includes(".") || first.includes(":") || first === "localhost")) {
    name = `docker.io/${slash < 0 ? "library/" : ""}${name}`;
  }
  const lastPart = name.slice(name.lastIndexOf("/") + 1);
  if (!lastPart.includes(":") && !lastPart.includes("@")) name += ":latest";
  return name;
}

export class ImageError extends Error {
  readonly reason: "ErrImageNeverPull" | "ErrImagePull" | "InvalidImageName";

  constructor(reason: ImageError["reason"], message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface ResolvedImage {
  /** Normalized name. */
  name: string;
  /** imageID reported in container statuses. */
  imageId: string;
  /** Set when the image is a checkpoint image. */
  checkpoint?: ReadArchive & { containerName: string };
}

export interface ImageServiceOptions {
  store: StorageConfig;
  simulatedList: string;
  workDir: string;
  insecureRegistries: string[];
  pullLatencyMs: () => number;
  log: Logger;
}

export class ImageService {
  private readonly opts: ImageServiceOptions;
  private commands = new Map<string, ImageCommand>();
  private readonly checkpoints = new Map<string, Promise<ResolvedImage["checkpoint"]>>();
  private pulls = new Map<string, Promise<void>>();
  /** The last preload: they run one after another. */
  private preloading: Promise<void> = Promise.resolve();

  constructor(opts: ImageServiceOptions) {
    this.opts = opts;
  }

  setCommands(map: Record<string, ImageCommand>): void {
    for (const [image, cmd] of Object.entries(map)) this.commands.set(normalizeImage(image), cmd);
  }

  commandFor(image: string): ImageCommand | undefined {
    return this.commands.get(normalizeImage(image));
  }

  async storedNames(): Promise<Set<string>> {
    return new Set((await listStoredImages(this.opts.store)).map(normalizeImage));
  }

  private async simulatedNames(): Promise<Set<string>> {
    const raw = await readFile(this.opts.simulatedList, "utf8").catch(() => "[]");
    return new Set(JSON.parse(raw) as string[]);
  }

  async list(): Promise<string[]> {
    return [...(await this.storedNames()), ...(await this.simulatedNames())].sort();
  }

  async isPresent(image: string): Promise<boolean> {
    const name = normalizeImage(image);
    return (await this.storedNames()).has(name) || (await this.simulatedNames()).has(name);
  }

  /** Marks a mapped image as present, as if it had been pulled earlier. */
  preload(image: string): Promise<void> {
    // One at a time, each replacing the file whole: pods pulling at once on a node used to
    // interleave their writes and leave a file no read could parse (every later pull failed).
    const next = this.preloading.then(async () => {
      const names = await this.simulatedNames();
      names.add(normalizeImage(image));
      const tmp = `${this.opts.simulatedList}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify([...names].sort()));
      await rename(tmp, this.opts.simulatedList);
    });
    this.preloading = next.catch(() => undefined);
    return next;
  }

  /** Makes the image present according to the pull policy, then describes it. */
  async ensure(image: string, policy: string | undefined): Promise<ResolvedImage> {
    const name = normalizeImage(image);
    const effective = policy ?? (name.endsWith(":latest") ? "Always" : "IfNotPresent");
    const present = await this.isPresent(name);
    if (effective === "Never" && !present) {
      throw new ImageError(
        "ErrImageNeverPull",
        `Container image "${image}" is not present with pull policy of Never`,
      );
    }
    if (effective === "Always" || !present) {
      // One pull per image at a time, as the kubelet's serialized puller would.
      let pull = this.pulls.get(name);
      if (!pull) {
        pull = this.pull(name).finally(() => this.pulls.delete(name));
        this.pulls.set(name, pull);
      }
      await pull;
    }
    return this.describe(name);
  }

  private async pull(name: string): Promise<void> {
    await sleep(this.opts.pullLatencyMs());
    if (this.commands.has(name)) {
      await this.preload(name);
      return;
    }
    const host = name.slice(0, name.indexOf("/"));
    if (host === "localhost") {
      throw new ImageError(
        "ErrImagePull",
        `pull access denied for ${name}: local image not in containers-storage`,
      );
    }
    const tls = isInsecure(this.opts.insecureRegistries, host) ? ["--src-tls-verify=false"] : [];
    try {
      await runSkopeo([
        "copy",
        "--quiet",
        ...tls,
        `docker://${name}`,
        storageReference(this.opts.store, name),
      ]);
      this.opts.log.info({ image: name }, "pulled image");
    } catch (err) {
      throw new ImageError("ErrImagePull", `failed to pull image "${name}": ${(err as Error).message}`);
    }
  }

  private async describe(name: string): Promise<ResolvedImage> {
    if (!(await this.storedNames()).has(name)) return { name, imageId: `sim://${name}` };
    const manifestText = await runSkopeo(["inspect", "--raw", storageReference(this.opts.store, name)]);
    const manifest = JSON.parse(manifestText) as { annotations?: Record<string, string> };
    const imageId = await this.imageId(name);
    const containerName = manifest.annotations?.[CHECKPOINT_NAME_ANNOTATION];
    if (!containerName) return { name, imageId };
    let cached = this.checkpoints.get(imageId);
    if (!cached) {
      cached = this.extractCheckpoint(name, containerName);
      this.checkpoints.set(imageId, cached);
      cached.catch(() => this.checkpoints.delete(imageId));
    }
    const checkpoint = await cached;
    return checkpoint ? { name, imageId, checkpoint } : { name, imageId };
  }

  private async imageId(name: string): Promise<string> {
    const raw = await readFile(
      join(this.opts.store.graphRoot, `${this.opts.store.driver}-images`, "images.json"),
      "utf8",
    );
    const images = JSON.parse(raw) as { id: string; names?: string[] }[];
    const found = images.find((i) => (i.names ?? []).some((n) => normalizeImage(n) === name));
    return found ? `sha256:${found.id}` : `sim://${name}`;
  }

  /** Copies the image out of containers-storage and reads the archive that is its only layer. */
  private async extractCheckpoint(name: string, containerName: string): Promise<ResolvedImage["checkpoint"]> {
    const dir = await mkdtemp(join(this.opts.workDir, "restore-"));
    try {
      await runSkopeo(["copy", "--quiet", storageReference(this.opts.store, name), `oci:${dir}:image`]);
      const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as {
        manifests: { digest: string }[];
      };
      const manifestDigest = index.manifests[0]?.digest ?? "";
      const manifest = JSON.parse(await readFile(blob(dir, manifestDigest), "utf8")) as {
        layers: { digest: string }[];
      };
      const layer = manifest.layers[0];
      if (manifest.layers.length !== 1 || !layer)
        throw new Error(`checkpoint image ${name} must have one layer`);
      const archive = await readCheckpointArchive(blob(dir, layer.digest));
      return { ...archive, containerName };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** Exact host[:port] entries, or `host:*` for every port of a host. */
export function isInsecure(entries: string[], host: string): boolean {
  const bare = host.replace(/:\d+$/, "");
  return entries.some((e) => e === host || e === `${bare}:*`);
}

function blob(layout: string, digest: string): string {
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw new Error(`bad digest ${digest}`);
  return join(layout, "blobs", "sha256", digest.slice(7));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
