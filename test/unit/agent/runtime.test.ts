import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { inspectRuntime, requestedRuntime } from "../../../src/agent/runtime.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";

// src/agent/runtime.ts: finding and reading the runtime's files in the mounted folders (the
// rules they feed are tested in runtime-config.test.ts).
describe("reading the node's folders", () => {
  const folders = () => {
    const root = tempDir("runtime");
    onTestFinished(() => removeTempDir(root));
    const dirs = { crio: join(root, "crio"), containerd: join(root, "containerd") };
    mkdirSync(dirs.crio);
    mkdirSync(dirs.containerd);
    return { root, dirs };
  };

  it("CRI-O: crio.conf, then crio.conf.d walked recursively in lexical order, named by node path", async () => {
    const { dirs } = folders();
    mkdirSync(join(dirs.crio, "crio.conf.d", "15-sub"), { recursive: true });
    writeFileSync(join(dirs.crio, "crio.conf"), "[crio.runtime]\nenable_criu_support = false\n");
    writeFileSync(
      join(dirs.crio, "crio.conf.d", "10-crio.conf"),
      "[crio.runtime]\nenable_criu_support = false\n",
    );
    writeFileSync(
      join(dirs.crio, "crio.conf.d", "15-sub", "x.conf"),
      "[crio.runtime]\nenable_criu_support = true\n",
    );
    writeFileSync(join(dirs.crio, "crio.conf.d", "2-late.conf"), "[crio.image]\n");
    const report = await inspectRuntime(dirs);
    expect(report.runtime).toBe("cri-o");
    expect(report.source).toBe(
      "/etc/crio/crio.conf, /etc/crio/crio.conf.d/10-crio.conf, /etc/crio/crio.conf.d/15-sub/x.conf, /etc/crio/crio.conf.d/2-late.conf",
    );
    expect(report.checkpoint).toBe(true);
    expect(report.settings?.enable_criu_support?.file).toBe("/etc/crio/crio.conf.d/15-sub/x.conf");
  });

  it("empty folders (what DirectoryOrCreate leaves where a runtime is absent) are no runtime", async () => {
    const { dirs } = folders();
    const report = await inspectRuntime(dirs);
    expect(report.runtime).toBe("unknown");
    expect(report.checkpoint).toBeUndefined();
    expect(report.detail).toContain("no CRI-O");
    // Asked for the runtime the node reports: its defaults apply.
    const asked = await inspectRuntime(dirs, "cri-o");
    expect(asked).toMatchObject({
      runtime: "cri-o",
      checkpoint: true,
      source: "(no configuration files: defaults)",
    });
    // Missing folders altogether read the same.
    expect(
      (await inspectRuntime({ crio: "/nonexistent/crio", containerd: "/nonexistent/ctrd" })).runtime,
    ).toBe("unknown");
  });

  it("both runtimes configured: unknown unless the caller names one", async () => {
    const { dirs } = folders();
    mkdirSync(join(dirs.crio, "crio.conf.d"));
    writeFileSync(
      join(dirs.crio, "crio.conf.d", "10-crio.conf"),
      "[crio.runtime]\nenable_criu_support = true\n",
    );
    writeFileSync(join(dirs.containerd, "config.toml"), "version = 3\n");
    expect((await inspectRuntime(dirs)).runtime).toBe("unknown");
    expect((await inspectRuntime(dirs, "containerd")).runtime).toBe("containerd");
    expect((await inspectRuntime(dirs, "cri-o")).restore).toBeUndefined();
  });

  it("containerd imports inside /etc/containerd are read; elsewhere they decide nothing", async () => {
    const { dirs } = folders();
    mkdirSync(join(dirs.containerd, "conf.d"));
    writeFileSync(join(dirs.containerd, "config.toml"), 'version = 3\nimports = ["conf.d/*.toml"]\n');
    writeFileSync(
      join(dirs.containerd, "conf.d", "restore.toml"),
      '[plugins."io.containerd.cri.v1.runtime"]\nenable_experimental_restore_via_create = true\n',
    );
    writeFileSync(join(dirs.containerd, "conf.d", "ignored.txt"), "not toml at all [");
    const report = await inspectRuntime(dirs);
    expect(report).toMatchObject({
      runtime: "containerd",
      restore: true,
      source: "/etc/containerd/config.toml, /etc/containerd/conf.d/restore.toml",
    });
    writeFileSync(
      join(dirs.containerd, "config.toml"),
      'version = 3\nimports = ["/opt/containerd/*.toml"]\n',
    );
    const outside = await inspectRuntime(dirs);
    expect(outside.restore).toBeUndefined();
    expect(outside.detail).toContain("outside /etc/containerd");
    expect(outside.settings).toBeUndefined();
  });

  it("a symlink leading out of the mount is not followed", async () => {
    const { root, dirs } = folders();
    mkdirSync(join(dirs.crio, "crio.conf.d"));
    writeFileSync(join(root, "elsewhere.conf"), "[crio.runtime]\nenable_criu_support = true\n");
    symlinkSync(join(root, "elsewhere.conf"), join(dirs.crio, "crio.conf.d", "10-link.conf"));
    writeFileSync(
      join(dirs.crio, "crio.conf.d", "05-real.conf"),
      "[crio.runtime]\nenable_criu_support = true\n",
    );
    symlinkSync("05-real.conf", join(dirs.crio, "crio.conf.d", "06-inside.conf"));
    const report = await inspectRuntime(dirs);
    expect(report.checkpoint).toBeUndefined();
    expect(report.detail).toBe(
      "/etc/crio/crio.conf.d/10-link.conf is a symlink that leads out of /etc/crio/crio.conf.d: not read",
    );
  });

  it("?runtime= takes only the runtimes it knows", () => {
    expect(requestedRuntime(null)).toBeUndefined();
    expect(requestedRuntime("cri-o")).toBe("cri-o");
    expect(() => requestedRuntime("docker")).toThrow(/runtime must be one of cri-o, containerd/);
  });
});
