import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../../src/common/logger.ts";
import { ImageError, ImageService, normalizeImage } from "../../../sim/images.ts";
import { NodePaths } from "../../../sim/paths.ts";

describe("image names", () => {
  it("normalizes as the kubelet and CRI-O compare them", () => {
    expect(normalizeImage("nginx")).toBe("docker.io/library/nginx:latest");
    expect(normalizeImage("me/app:1")).toBe("docker.io/me/app:1");
    expect(normalizeImage("localhost/ckpt:v1")).toBe("localhost/ckpt:v1");
    expect(normalizeImage("198.51.100.1:5000/x")).toBe("198.51.100.1:5000/x:latest");
    expect(normalizeImage("ms2m.test/counter:dev")).toBe("ms2m.test/counter:dev");
  });
});

describe("image pull policies", () => {
  let dir: string;
  let images: ImageService;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ms2m-sim-images-"));
    const paths = new NodePaths(dir);
    images = new ImageService({
      store: paths.storageConfig("vfs"),
      simulatedList: paths.simulatedImages,
      workDir: dir,
      insecureRegistries: [],
      pullLatencyMs: () => 0,
      log: createLogger("test", { level: "silent" }),
    });
    images.setCommands({ "ms2m.test/app:1": { command: ["true"], args: [], env: {} } });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("gives ErrImageNeverPull for Never and a missing image", async () => {
    const err = await images.ensure("ms2m.test/app:1", "Never").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect((err as ImageError).reason).toBe("ErrImageNeverPull");
  });

  it("pulls a mapped image with IfNotPresent, after which Never finds it", async () => {
    await images.ensure("ms2m.test/app:1", "IfNotPresent");
    expect(await images.isPresent("ms2m.test/app:1")).toBe(true);
    await expect(images.ensure("ms2m.test/app:1", "Never")).resolves.toMatchObject({
      name: "ms2m.test/app:1",
    });
  });

  it("cannot pull a localhost image that is not in containers-storage", async () => {
    const err = await images.ensure("localhost/missing:1", "IfNotPresent").catch((e: unknown) => e);
    expect((err as ImageError).reason).toBe("ErrImagePull");
  });
});

describe("images marked present", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "ms2m-sim-preload-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("pods pulling at once on a node all see their images, and the list stays readable", async () => {
    const paths = new NodePaths(dir);
    const images = new ImageService({
      store: paths.storageConfig("vfs"),
      simulatedList: paths.simulatedImages,
      workDir: dir,
      insecureRegistries: [],
      pullLatencyMs: () => 0,
      log: createLogger("test", { level: "silent" }),
    });
    const names = Array.from(
      { length: 40 },
      (_, i) => `ms2m.test/image-with-a-longer-name-${"x".repeat(i)}:${i}`,
    );
    await Promise.all(names.map((n) => images.preload(n)));
    for (const n of names) expect(await images.isPresent(n)).toBe(true);
  });
});
