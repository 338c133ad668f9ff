import { describe, expect, it } from "vitest";
import { Authenticator } from "../../../src/agent/auth.ts";
import { checkpointArchivePattern, resolveArchiveName } from "../../../src/checkpoint/kubelet-archives.ts";
import { parseAgentConfig } from "../../../src/agent/config.ts";
import { ConfigError } from "../../../src/common/config.ts";
import {
  parseImageReference,
  describeCheckpointImage,
  CHECKPOINT_NAME_ANNOTATION,
} from "../../../src/checkpoint/image.ts";
import { FakeReviewer, TOKENS } from "../../component/agent/helpers.ts";

describe("Authenticator", () => {
  it("maps outcomes to 401/403/503 and caches decisions by token hash", async () => {
    const r = new FakeReviewer();
    const a = new Authenticator(r, "node-1", { ttlMs: 60_000 });
    await expect(a.check(undefined, "receive")).rejects.toMatchObject({ code: 401 });
    await expect(a.check("Basic abc", "receive")).rejects.toMatchObject({ code: 401 });
    await expect(a.check("Bearer nope", "receive")).rejects.toMatchObject({ code: 401 });
    await expect(a.check(`Bearer ${TOKENS.noRights}`, "receive")).rejects.toMatchObject({ code: 403 });
    await expect(a.check(`Bearer ${TOKENS.user}`, "receive")).rejects.toMatchObject({ code: 403 });
    const p = await a.check(`Bearer ${TOKENS.agent}`, "receive");
    expect(p.serviceAccount).toBe("ms2m-system/ms2m-agent");
    await expect(a.check(`Bearer ${TOKENS.agent}`, "send")).rejects.toMatchObject({ code: 403 });
    const calls = r.calls.authenticate;
    await a.check(`Bearer ${TOKENS.agent}`, "receive");
    expect(r.calls.authenticate).toBe(calls);
  });

  it("never caches an outage", async () => {
    const r = new FakeReviewer();
    const a = new Authenticator(r, "node-1", { ttlMs: 60_000 });
    r.down = true;
    await expect(a.check(`Bearer ${TOKENS.agent}`, "receive")).rejects.toMatchObject({ code: 503 });
    r.down = false;
    await expect(a.check(`Bearer ${TOKENS.agent}`, "receive")).resolves.toBeTruthy();
  });
});

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

describe("config and image helpers", () => {
  it("config errors name the variable", () => {
    expect(() => parseAgentConfig({ NODE_NAME: "n1", AGENT_PORT: "99999" })).toThrow(ConfigError);
  });
  it("parses strict image references", () => {
    expect(parseImageReference("127.0.0.1:5000/ms2m/ckpt:m1-app")).toEqual({
      host: "127.0.0.1:5000",
      repository: "ms2m/ckpt",
      tag: "m1-app",
    });
    for (const bad of [
      "busybox",
      "localhost/x",
      "localhost/X:y",
      "localhost/x:y@sha256:1",
      "localhost/../x:y",
    ]) {
      expect(() => parseImageReference(bad)).toThrow();
    }
  });
  it("describes a deterministic annotated image", () => {
    const d = `sha256:${"a".repeat(64)}`;
    const one = describeCheckpointImage({ digest: d, size: 10 }, "app");
    expect(
      one.manifest.bytes.equals(describeCheckpointImage({ digest: d, size: 10 }, "app").manifest.bytes),
    ).toBe(true);
    const m = JSON.parse(one.manifest.bytes.toString());
    expect(m.annotations[CHECKPOINT_NAME_ANNOTATION]).toBe("app");
    expect(m.layers[0].mediaType).toBe("application/vnd.oci.image.layer.v1.tar");
  });
});
