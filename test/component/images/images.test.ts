// The images `make images` builds (hack/images/images.ts), checked on the OCI archives they ship
// as: their config (entrypoint, user), and their root filesystem unpacked with umoci, where each
// bundle runs under the image's user and environment and must stop at its configuration check,
// never at a missing module. The images are built here when missing or stale; the first build on
// a machine also makes the local bases (mmdebstrap + Node.js from npm: a few minutes).
// Needs root (chroot, buildah), buildah, mmdebstrap, skopeo, umoci, unshare, docker-registry.
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { copyFile, mkdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  IMAGE_NAMES,
  buildImages,
  pushImages,
  type ImageName,
  type ImagesManifest,
} from "../../../hack/images/images.ts";
import { writeFakeCheckpointArchive } from "../../../src/checkpoint/fake-archive.ts";
import { blobPath, describeCheckpointImage, writeLayout } from "../../../src/checkpoint/image.ts";
import { storageReference } from "../../../src/checkpoint/skopeo.ts";
import { digestFile } from "../../../src/checkpoint/stream.ts";
import { startRegistry } from "../../../tooling/agent-fixture.ts";

interface ImageConfig {
  User?: string;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[];
}

interface Unpacked {
  rootfs: string;
  config: ImageConfig;
  layers: string[];
  manifestDigest: string;
}

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

const MODULE_ERROR = /ERR_MODULE_NOT_FOUND|Cannot find (module|package)|ERR_UNSUPPORTED|SyntaxError/;

let manifest: ImagesManifest;
let work: string;
const unpacked = new Map<ImageName, Promise<Unpacked>>();

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function mustRun(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args, undefined, 180_000);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** The archive as shipped: its OCI layout, config, and root filesystem (umoci applies whiteouts). */
function unpack(name: ImageName): Promise<Unpacked> {
  let p = unpacked.get(name);
  if (!p) {
    p = (async () => {
      const layout = join(work, name, "layout");
      const rootfs = join(work, name, "rootfs");
      await mkdir(layout, { recursive: true });
      await mustRun("tar", ["-xf", manifest.images[name].archive, "-C", layout]);
      const json = async <T>(digest: string) =>
        JSON.parse(await readFile(blobPath(layout, digest), "utf8")) as T;
      const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
        manifests: { digest: string; annotations?: Record<string, string> }[];
      };
      expect(index.manifests).toHaveLength(1);
      const desc = index.manifests[0]!;
      const m = await json<{ config: { digest: string }; layers: { digest: string }[] }>(desc.digest);
      const config = (await json<{ config: ImageConfig }>(m.config.digest)).config;
      const ref = desc.annotations?.["org.opencontainers.image.ref.name"] ?? "";
      await mustRun("umoci", ["raw", "unpack", "--image", `${layout}:${ref}`, rootfs]);
      return { rootfs, config, layers: m.layers.map((l) => l.digest), manifestDigest: desc.digest };
    })();
    unpacked.set(name, p);
  }
  return p;
}

/** Runs argv in the image's root filesystem as its user, with its environment (PATH included). */
function runInImage(img: Unpacked, argv: string[], env: Record<string, string> = {}): Promise<Result> {
  const imageEnv = Object.fromEntries(
    (img.config.Env ?? []).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  return run("chroot", [`--userspec=${img.config.User ?? "0:0"}`, img.rootfs, ...argv], {
    ...imageEnv,
    ...env,
  });
}

/** What a runtime starts without overrides: entrypoint + cmd. */
const defaultArgv = (img: Unpacked) => [...(img.config.Entrypoint ?? []), ...(img.config.Cmd ?? [])];
const uid = (img: Unpacked) => Number((img.config.User ?? "0").split(":")[0]);

function expectConfigError(r: Result, binary: string, variable: string) {
  expect(r.stderr).not.toMatch(MODULE_ERROR);
  expect(r.stderr).toContain(`${binary}: invalid configuration`);
  expect(r.stderr).toContain(variable);
  expect(r.code).toBe(2);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "ms2m-images-test-"));
  manifest = await buildImages();
}, 20 * 60_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe("images built by make images", () => {
  it("ships one OCI archive per image, all on the same base layer", async () => {
    const firstLayers: string[] = [];
    for (const name of IMAGE_NAMES) {
      const built = manifest.images[name];
      expect(built.name).toBe(name);
      expect((await stat(built.archive)).size).toBe(built.size);
      const img = await unpack(name);
      expect(img.manifestDigest).toBe(built.digest);
      firstLayers.push(img.layers[0]!);
    }
    // Nodes pull the Debian + Node.js layer once for all three.
    expect(new Set(firstLayers).size).toBe(1);
  }, 180_000);

  it("controller: a non-root user; its bundle loads and stops at the configuration check", async () => {
    const img = await unpack("controller");
    expect(img.config.Entrypoint).toEqual([
      "node",
      "--max-semi-space-size=2",
      "--optimize-for-size",
      "/app/controller.mjs",
    ]);
    expect(uid(img)).toBe(65532);
    // Every controller setting has a default: an invalid one is what stops it before any I/O.
    expectConfigError(
      await runInImage(img, defaultArgv(img), { METRICS_PORT: "not-a-port" }),
      "ms2m-controller",
      "METRICS_PORT",
    );
  }, 120_000);

  it("agent: root, with skopeo; server, send and cleanup load and stop at the configuration check", async () => {
    const img = await unpack("agent");
    expect(img.config.Entrypoint).toEqual(["node", "/app/agent.mjs"]);
    expect(uid(img)).toBe(0);
    const skopeo = await runInImage(img, ["skopeo", "--version"]);
    expect(skopeo.stdout).toMatch(/^skopeo version \d+\./);
    expectConfigError(await runInImage(img, defaultArgv(img)), "ms2m-agent", "NODE_NAME");
    expectConfigError(
      await runInImage(img, [...defaultArgv(img), "send"]),
      "ms2m-agent send",
      "SEND_REQUEST",
    );
    expectConfigError(
      await runInImage(img, [...defaultArgv(img), "cleanup"]),
      "ms2m-agent cleanup",
      "CLEANUP_REQUEST",
    );
  }, 120_000);

  it("agent: its skopeo loads a checkpoint image into containers-storage with the overlay driver", async () => {
    const img = await unpack("agent");
    // A checkpoint image as the agent writes it, inside the image's filesystem.
    const archive = join(work, "checkpoint.tar");
    await writeFakeCheckpointArchive(archive, { size: 256 * 1024, containerName: "app" });
    const image = describeCheckpointImage(await digestFile(archive), "app");
    const layout = join(img.rootfs, "tmp", "layout");
    await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
    await copyFile(archive, blobPath(layout, image.layer.digest));
    await writeLayout(layout, image, "ckpt", "app");
    const graph = join(work, "storage", "graph");
    const runroot = join(work, "storage", "run");
    await mkdir(graph, { recursive: true });
    await mkdir(runroot, { recursive: true });
    const store = {
      driver: "overlay",
      graphRoot: "/var/lib/containers/storage",
      runRoot: "/run/containers/storage",
    } as const;
    // As in a container: the root filesystem is a mount point (containers-storage remounts it
    // private while extracting), /proc is mounted, the node's stores are bind mounts. A private
    // mount namespace drops them all when the command ends.
    const script = [
      'mount --bind "$R" "$R"',
      'mount -t proc proc "$R/proc"',
      'mkdir -p "$R/var/lib/containers/storage" "$R/run/containers/storage"',
      'mount --bind "$GRAPH" "$R/var/lib/containers/storage"',
      'mount --bind "$RUNROOT" "$R/run/containers/storage"',
      'exec chroot "$R" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root TMPDIR=/tmp skopeo --insecure-policy copy --quiet "$SRC" "$DST"',
    ].join(" && ");
    const r = await run(
      "unshare",
      ["--mount", "--propagation", "private", "--fork", "sh", "-ec", script],
      {
        PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
        R: img.rootfs,
        GRAPH: graph,
        RUNROOT: runroot,
        SRC: "oci:/tmp/layout:ckpt",
        DST: storageReference(store, "localhost/ms2m-test/checkpoint:ckpt"),
      },
      120_000,
    );
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    const images = JSON.parse(await readFile(join(graph, "overlay-images", "images.json"), "utf8")) as {
      names?: string[];
    }[];
    expect(images.flatMap((i) => i.names ?? [])).toContain("localhost/ms2m-test/checkpoint:ckpt");
  }, 180_000);

  it("workload: a non-root user; runs the consumer by default and the producer on request", async () => {
    const img = await unpack("workload");
    expect(img.config.Cmd).toEqual(["node", "/app/consumer.mjs"]);
    expect(uid(img)).toBe(1000);
    expectConfigError(await runInImage(img, defaultArgv(img)), "consumer", "AMQP_URL");
    expectConfigError(await runInImage(img, ["node", "/app/producer.mjs"]), "producer", "AMQP_URL");
  }, 120_000);

  it("pushImages puts the archives into a plain-HTTP registry, digests unchanged", async () => {
    const registry = await startRegistry();
    try {
      const refs = await pushImages(registry.host);
      for (const name of IMAGE_NAMES) {
        expect(refs[name]).toBe(`${registry.host}/ms2m/${name}:${manifest.images[name].tag}`);
        const inspected = JSON.parse(
          await mustRun("skopeo", ["inspect", "--tls-verify=false", `docker://${refs[name]}`]),
        ) as { Digest: string };
        expect(inspected.Digest).toBe(manifest.images[name].digest);
      }
      const pinned = await pushImages(registry.host, { pin: true });
      expect(pinned.agent).toBe(`${registry.host}/ms2m/agent@${manifest.images.agent.digest}`);
    } finally {
      await registry.stop();
    }
  }, 300_000);
});
