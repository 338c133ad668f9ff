// Loading an OCI layout into containers-storage (the store CRI-O reads) with skopeo.
import { execFile } from "node:child_process";
import { Ms2mError } from "../common/errors.ts";

export interface StorageConfig {
  /** "overlay" on nodes (what CRI-O uses); "vfs" where overlay is unavailable (tests). */
  driver: "overlay" | "vfs";
  graphRoot: string;
  runRoot: string;
}

export interface SkopeoOptions {
  /** skopeo binary (default "skopeo" on PATH). */
  binary?: string;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
}

/** containers-storage transport reference with an explicit store: never the host default by accident. */
export function storageReference(store: StorageConfig, image: string): string {
  for (const p of [store.graphRoot, store.runRoot]) {
    if (!p.startsWith("/") || /[\]\s+@:]/.test(p))
      throw new Ms2mError("BadRequest", `unusable storage path ${p}`);
  }
  return `containers-storage:[${store.driver}@${store.graphRoot}+${store.runRoot}]${image}`;
}

/** Runs skopeo; failures become InternalError with the tail of stderr. */
export function runSkopeo(args: string[], opts: SkopeoOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      opts.binary ?? "skopeo",
      // Signature policy: the agent verifies digests itself and only loads images it built.
      // --tmpdir: skopeo 1.9 stages containers-storage layers in /var/tmp whatever TMPDIR says,
      // and the agent's root filesystem is read-only (found on real nodes).
      ["--insecure-policy", "--tmpdir", process.env.TMPDIR ?? "/var/tmp", ...args],
      {
        maxBuffer: 16 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 15 * 60_000,
        signal: opts.signal,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: process.env.HOME ?? "/",
          TMPDIR: process.env.TMPDIR ?? "/var/tmp",
        },
      },
      (err, stdout, stderr) => {
        if (err) {
          const tail = String(stderr).trim().split("\n").slice(-3).join(" | ").slice(0, 600);
          reject(
            new Ms2mError(
              opts.signal?.aborted ? "ServiceUnavailable" : "InternalError",
              `skopeo ${args[0]} failed: ${tail || err.message}`,
              {
                cause: err,
              },
            ),
          );
        } else resolve(String(stdout));
      },
    );
  });
}

/** Copies `oci:<layoutDir>:<tag>` into containers-storage as `image` (e.g. localhost/name:tag). */
export async function loadLayoutIntoStorage(
  layoutDir: string,
  tag: string,
  store: StorageConfig,
  image: string,
  opts: SkopeoOptions = {},
): Promise<void> {
  await runSkopeo(["copy", "--quiet", `oci:${layoutDir}:${tag}`, storageReference(store, image)], opts);
}

/** The manifest of an image in containers-storage, or null if it is not there. */
export async function storedManifest(
  store: StorageConfig,
  image: string,
  opts: SkopeoOptions = {},
): Promise<unknown> {
  try {
    return JSON.parse(await runSkopeo(["inspect", "--raw", storageReference(store, image)], opts));
  } catch (err) {
    if (
      err instanceof Ms2mError &&
      /does not exist|not known|unknown|does not resolve to an image|identifier is not an image/i.test(
        err.message,
      )
    )
      return null;
    throw err;
  }
}

/** Lists image names in a store (tests and diagnostics). */
export async function listStoredImages(store: StorageConfig): Promise<string[]> {
  // skopeo has no "list"; containers-storage keeps images.json in <graphRoot>/<driver>-images.
  const { readFile } = await import("node:fs/promises");
  try {
    const raw = await readFile(`${store.graphRoot}/${store.driver}-images/images.json`, "utf8");
    const images = JSON.parse(raw) as { names?: string[] }[];
    return images.flatMap((i) => i.names ?? []);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/**
 * Removes `image` from a store (`skopeo delete containers-storage:…`). Returns "absent" when it
 * is not there. An image that carries other names too (identical content loaded under another
 * name) is kept ("shared"): deleting it would take the other names with it. containers-storage
 * itself refuses to delete an image a container uses (CRI-O's containers): that refusal is
 * thrown (InternalError naming "in use").
 */
export async function deleteStoredImage(
  store: StorageConfig,
  image: string,
  opts: SkopeoOptions = {},
): Promise<"deleted" | "absent" | "shared"> {
  const { readFile } = await import("node:fs/promises");
  let images: { names?: string[] }[] = [];
  try {
    images = JSON.parse(await readFile(`${store.graphRoot}/${store.driver}-images/images.json`, "utf8")) as {
      names?: string[];
    }[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const entry = images.find((i) => (i.names ?? []).includes(image));
  if (!entry) return "absent";
  if ((entry.names ?? []).length > 1) return "shared";
  try {
    await runSkopeo(["delete", storageReference(store, image)], opts);
    return "deleted";
  } catch (err) {
    if (
      err instanceof Ms2mError &&
      /does not resolve to an image|identifier is not an image/i.test(err.message)
    )
      return "absent";
    throw err;
  }
}
