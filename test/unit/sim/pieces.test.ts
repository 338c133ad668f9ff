import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../../src/common/logger.ts";
import { nodeConfigSchema } from "../../../sim/config.ts";
import { expand } from "../../../sim/env.ts";
import { ImageError, ImageService, normalizeImage } from "../../../sim/images.ts";
import { requestAttributes } from "../../../sim/kubelet-auth.ts";
import { NodePaths } from "../../../sim/paths.ts";
import { fieldValue } from "../../../sim/volumes.ts";

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

describe("kubelet authorization attributes", () => {
  it("maps paths to nodes subresources as the kubelet does", () => {
    expect(requestAttributes("POST", "/checkpoint/ns/p/c")).toEqual({
      verb: "create",
      subresources: ["checkpoint"],
    });
    expect(requestAttributes("GET", "/pods")).toEqual({ verb: "get", subresources: ["pods", "proxy"] });
    expect(requestAttributes("GET", "/healthz")).toEqual({ verb: "get", subresources: ["healthz", "proxy"] });
    expect(requestAttributes("GET", "/containerLogs/ns/p/c")).toEqual({
      verb: "get",
      subresources: ["proxy"],
    });
    expect(requestAttributes("GET", "/stats/summary").subresources).toEqual(["stats"]);
    expect(requestAttributes("GET", "/checkpointer").subresources).toEqual(["proxy"]);
  });
});

describe("environment and Downward API", () => {
  it("expands $(VAR) from earlier variables, keeps unknown ones, and unescapes $$", () => {
    expect(expand("$(A)-$(B)-$$(A)", { A: "x" })).toBe("x-$(B)-$(A)");
  });

  it("resolves field paths of the new pod", () => {
    const ctx = {
      nodeIp: "198.51.100.2",
      pod: {
        metadata: { name: "p", namespace: "ns", uid: "u", labels: { app: "a", tier: "b" } },
        spec: { nodeName: "node-a", containers: [] },
      },
    };
    expect(fieldValue(ctx, "metadata.name")).toBe("p");
    expect(fieldValue(ctx, "metadata.labels['app']")).toBe("a");
    expect(fieldValue(ctx, "metadata.labels")).toBe('app="a"\ntier="b"');
    expect(fieldValue(ctx, "spec.nodeName")).toBe("node-a");
    expect(fieldValue(ctx, "status.podIP")).toBe("198.51.100.2");
    expect(() => fieldValue(ctx, "spec.nope")).toThrow(/unsupported/);
  });
});

describe("node folders", () => {
  it("keeps node paths inside the node's root, whatever the input", () => {
    const paths = new NodePaths("/tmp/n");
    expect(paths.host("/var/lib/kubelet/checkpoints")).toBe("/tmp/n/root/var/lib/kubelet/checkpoints");
    expect(paths.host("/../../etc/passwd")).toBe("/tmp/n/root/etc/passwd");
    expect(paths.checkpoints).toBe("/tmp/n/root/var/lib/kubelet/checkpoints");
  });

  it("fills config defaults", () => {
    const cfg = nodeConfigSchema.parse({
      nodeName: "node-a",
      nodeIp: "198.51.100.2",
      dir: "/tmp/n",
      apiServer: "https://198.51.100.1:6443",
      apiServerHost: "198.51.100.1",
      apiServerPort: 6443,
      caFile: "ca",
      clientCert: "c",
      clientKey: "k",
      servingCert: "s",
      servingKey: "sk",
    });
    expect(cfg.kubeletPort).toBe(10250);
    expect(cfg.latencies).toEqual({
      imagePullMs: 0,
      containerStartMs: 0,
      readinessMs: 0,
      restoreMs: 0,
      checkpointMs: 0,
    });
    expect(() => nodeConfigSchema.parse({ ...cfg, nodeName: "Bad_Name" })).toThrow();
  });
});
