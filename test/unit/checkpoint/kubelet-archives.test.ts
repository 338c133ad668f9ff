import { describe, expect, it } from "vitest";
import { checkpointArchivePattern, resolveArchiveName } from "../../../src/checkpoint/kubelet-archives.ts";

describe("archive names", () => {
  const ids = { namespace: "default", pod: "web-0", container: "app" };
  it("accepts the kubelet's name, as path or basename", () => {
    const name = "checkpoint-web-0_default-app-2025-01-02T03:04:05Z.tar";
    expect(checkpointArchivePattern("default", "web-0", "app").test(name)).toBe(true);
    expect(
      resolveArchiveName("/var/lib/kubelet/checkpoints", `/var/lib/kubelet/checkpoints/${name}`, ids),
    ).toBe(`/var/lib/kubelet/checkpoints/${name}`);
  });
  it("maps the kubelet's path onto the agent's mount of the checkpoints folder", () => {
    const name = "checkpoint-web-0_default-app-2025-01-02T03:04:05Z.tar";
    expect(resolveArchiveName("/mnt/ckpt", `/var/lib/kubelet/checkpoints/${name}`, ids)).toBe(
      `/mnt/ckpt/${name}`,
    );
    expect(() => resolveArchiveName("/mnt/ckpt", `/var/lib/kubelet/checkpoints/../${name}`, ids)).toThrow();
    expect(() => resolveArchiveName("/mnt/ckpt", `/var/lib/kubelet/${name}`, ids)).toThrow();
  });
  it.each([
    "/etc/shadow",
    "/var/lib/kubelet/checkpoints/../../../etc/shadow",
    "/var/lib/kubelet/checkpoints/sub/checkpoint-web-0_default-app-2025-01-02T03:04:05Z.tar",
    "checkpoint-web-1_default-app-2025-01-02T03:04:05Z.tar",
    "checkpoint-web-0_default-app-2025-01-02T03:04:05Z.tar.gz",
    "checkpoint-web-0_default-app-x.tar",
  ])("refuses %s", (archive) => {
    expect(() => resolveArchiveName("/var/lib/kubelet/checkpoints", archive, ids)).toThrow(
      /checkpoint|folder/,
    );
  });
});
