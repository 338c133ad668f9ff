import { describe, expect, it } from "vitest";
import {
  assessRuntime,
  containerdImports,
  parseContainerdConfig,
  parseCrioConfig,
  parseRuntimeVersion,
  runtimeReport,
  type ConfigFile,
} from "../../../src/checkpoint/runtime-config.ts";

const DROP_IN = "/etc/crio/crio.conf.d/10-crio.conf";
const crio = (...files: [string, string][]): ConfigFile[] => files.map(([path, text]) => ({ path, text }));
const v = (text: string) => parseRuntimeVersion(text);

describe("runtime versions", () => {
  it("reads the name and numbers the node reports", () => {
    expect(v("cri-o://1.36.1")).toMatchObject({ name: "cri-o", major: 1, minor: 36, patch: 1 });
    expect(v("containerd://v2.3.4-k3s1")).toMatchObject({ name: "containerd", major: 2, minor: 3, patch: 4 });
    expect(v("docker://24.0")).toMatchObject({ name: "docker", major: 24, minor: 0, patch: 0 });
    expect(v("ms2m-sim://0.1.0")?.name).toBe("ms2m-sim");
    expect(v("garbage")).toBeUndefined();
    expect(parseRuntimeVersion(undefined)).toBeUndefined();
  });
});

describe("CRI-O configuration", () => {
  it("applies crio.conf, then the drop-ins in order: the last file that sets a key wins", () => {
    const files = crio(
      ["/etc/crio/crio.conf", "[crio.runtime]\nenable_criu_support = true\n"],
      [DROP_IN, '[crio.runtime]\ndefault_runtime = "runc"\nenable_criu_support = false\n'],
      ["/etc/crio/crio.conf.d/20-other.conf", '[crio.image]\npause_image = "x"\n'],
    );
    const parsed = parseCrioConfig(files);
    expect(parsed.files).toEqual(files.map((f) => f.path));
    expect(parsed.settings.enable_criu_support).toEqual({
      value: false,
      file: DROP_IN,
      table: "[crio.runtime]",
    });
    const a = assessRuntime("cri-o", parsed.settings, v("cri-o://1.36.1"));
    expect(a.checkpoint.able).toBe(false);
    expect(a.restore.able).toBe(false);
    expect(a.restore.why).toBe(`enable_criu_support = false in [crio.runtime] (${DROP_IN})`);
    expect(a.restore.fix).toBe(
      `set enable_criu_support = true in [crio.runtime] (${DROP_IN}), then restart CRI-O`,
    );
    // A later drop-in turning it back on wins.
    const again = parseCrioConfig([
      ...files,
      ...crio(["/etc/crio/crio.conf.d/99-ms2m.conf", "[crio.runtime]\nenable_criu_support = true\n"]),
    ]);
    expect(assessRuntime("cri-o", again.settings, v("cri-o://1.36.1")).restore.able).toBe(true);
  });

  it("CRI-O 1.36.1 (no [crio.checkpoint_restore]): enable_criu_support alone decides, set or default", () => {
    const on = parseCrioConfig(crio([DROP_IN, "[crio.runtime]\nenable_criu_support = true\n"]));
    expect(assessRuntime("cri-o", on.settings, v("cri-o://1.36.1"))).toMatchObject({
      checkpoint: { able: true },
      restore: { able: true },
    });
    const defaults = parseCrioConfig([]);
    const a = assessRuntime("cri-o", defaults.settings, v("cri-o://1.36.1"));
    expect(a.checkpoint).toMatchObject({ able: true, why: expect.stringContaining("not set") });
    expect(a.restore.able).toBe(true);
    // 1.36.1 ignores the newer table: a checkpoint_only there changes nothing.
    const ignored = parseCrioConfig(
      crio([DROP_IN, '[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_only"\n']),
    );
    expect(assessRuntime("cri-o", ignored.settings, v("cri-o://1.36.1")).restore.able).toBe(true);
  });

  it("restore is not known when [crio.checkpoint_restore] is unset and the version may have it", () => {
    const parsed = parseCrioConfig(crio([DROP_IN, "[crio.runtime]\nenable_criu_support = true\n"]));
    for (const version of [undefined, v("cri-o://1.36.4"), v("cri-o://1.37.0")]) {
      const a = assessRuntime("cri-o", parsed.settings, version);
      expect(a.checkpoint.able).toBe(true);
      expect(a.restore.able).toBeUndefined();
      expect(a.restore.why).toContain('default to "checkpoint_only"');
      expect(a.restore.fix).toBe(
        'set container_level_enabled = "checkpoint_restore" in [crio.checkpoint_restore] (a file in /etc/crio/crio.conf.d/), then restart CRI-O',
      );
    }
  });

  it.each([
    ["none", false, false],
    ["checkpoint_only", true, false],
    ["checkpoint_restore", true, true],
  ])("container_level_enabled = %s → checkpoint %s, restore %s", (level, checkpoint, restore) => {
    const parsed = parseCrioConfig(
      crio([DROP_IN, `[crio.checkpoint_restore]\ncontainer_level_enabled = "${level}"\n`]),
    );
    const a = assessRuntime("cri-o", parsed.settings, v("cri-o://1.36.4"));
    expect(a.checkpoint.able).toBe(checkpoint);
    expect(a.restore.able).toBe(restore);
    if (!restore) {
      expect(a.restore.why).toBe(
        `container_level_enabled = "${level}" in [crio.checkpoint_restore] (${DROP_IN})`,
      );
      expect(a.restore.fix).toBe(
        `set container_level_enabled = "checkpoint_restore" in [crio.checkpoint_restore] (${DROP_IN}), then restart CRI-O`,
      );
    }
  });

  it("enable_criu_support = false wins over a container_level_enabled that allows restore", () => {
    const parsed = parseCrioConfig(
      crio([
        DROP_IN,
        '[crio.runtime]\nenable_criu_support = false\n[crio.checkpoint_restore]\ncontainer_level_enabled = "checkpoint_restore"\n',
      ]),
    );
    expect(assessRuntime("cri-o", parsed.settings).restore.able).toBe(false);
  });

  it("an unknown level, malformed TOML or a wrong type decide nothing and say why", () => {
    const unknownLevel = parseCrioConfig(
      crio([DROP_IN, '[crio.checkpoint_restore]\ncontainer_level_enabled = "always"\n']),
    );
    const a = assessRuntime("cri-o", unknownLevel.settings, v("cri-o://1.37.0"));
    expect(a.restore.able).toBeUndefined();
    expect(a.restore.why).toContain('"always"');

    const malformed = parseCrioConfig(
      crio(
        [DROP_IN, "[crio.runtime]\nenable_criu_support = true\n"],
        ["/etc/crio/crio.conf.d/20-bad.conf", "[crio.runtime\n"],
      ),
    );
    expect(malformed.problem).toMatch(/^\/etc\/crio\/crio\.conf\.d\/20-bad\.conf is not valid TOML \(/);
    const report = runtimeReport("cri-o", malformed);
    expect(report).toEqual({
      runtime: "cri-o",
      source: `${DROP_IN}, /etc/crio/crio.conf.d/20-bad.conf`,
      detail: malformed.problem,
    });

    const duplicate = parseCrioConfig(
      crio([DROP_IN, "[crio.runtime]\nenable_criu_support = true\nenable_criu_support = false\n"]),
    );
    expect(duplicate.problem).toContain("not valid TOML");

    const wrongType = parseCrioConfig(crio([DROP_IN, '[crio.runtime]\nenable_criu_support = "yes"\n']));
    expect(wrongType.problem).toBe(`enable_criu_support in [crio.runtime] of ${DROP_IN} is not a boolean`);
  });

  it("the agent's report carries the settings, what the files alone decide, and the files", () => {
    const parsed = parseCrioConfig(crio([DROP_IN, "[crio.runtime]\nenable_criu_support = false\n"]));
    expect(runtimeReport("cri-o", parsed)).toEqual({
      runtime: "cri-o",
      checkpoint: false,
      restore: false,
      source: DROP_IN,
      detail: expect.stringContaining(
        `checkpoint: enable_criu_support = false in [crio.runtime] (${DROP_IN})`,
      ),
      settings: { enable_criu_support: { value: false, file: DROP_IN, table: "[crio.runtime]" } },
    });
    const defaults = runtimeReport("cri-o", parseCrioConfig([]));
    expect(defaults.source).toBe("(no configuration files: defaults)");
    expect(defaults.checkpoint).toBe(true);
    expect(defaults.restore).toBeUndefined();
  });
});

describe("containerd configuration", () => {
  const CONFIG = "/etc/containerd/config.toml";
  const v3 = (body: string) => [
    { path: CONFIG, text: `version = 3\n[plugins."io.containerd.cri.v1.runtime"]\n${body}` },
  ];

  it("enable_experimental_restore_via_create in the cri.v1.runtime plugin (version 3) decides restore", () => {
    const on = parseContainerdConfig(v3("enable_experimental_restore_via_create = true\n"));
    expect(on.settings.enable_experimental_restore_via_create).toEqual({
      value: true,
      file: CONFIG,
      table: '[plugins."io.containerd.cri.v1.runtime"]',
    });
    expect(assessRuntime("containerd", on.settings, v("containerd://2.3.4"))).toMatchObject({
      checkpoint: { able: true },
      restore: { able: true },
    });
    const off = parseContainerdConfig(v3("enable_experimental_restore_via_create = false\n"));
    const a = assessRuntime("containerd", off.settings, v("containerd://2.3.4"));
    expect(a.restore.able).toBe(false);
    expect(a.restore.fix).toBe(
      `set enable_experimental_restore_via_create = true in [plugins."io.containerd.cri.v1.runtime"] (${CONFIG}), then restart containerd`,
    );
  });

  it("unset: off on 2.2.7+ and 2.3.4+ (their default), not known elsewhere", () => {
    const unset = parseContainerdConfig(v3(""));
    for (const version of ["containerd://2.2.7", "containerd://2.3.4", "containerd://v2.3.9"]) {
      const a = assessRuntime("containerd", unset.settings, v(version));
      expect(a.restore.able, version).toBe(false);
      expect(a.restore.why).toContain(`${version} does not restore without it`);
    }
    for (const version of [undefined, v("containerd://2.1.3"), v("containerd://2.3.3")]) {
      expect(assessRuntime("containerd", unset.settings, version).restore.able).toBeUndefined();
    }
    // The agent has no version: checkpoint is not decided either.
    expect(runtimeReport("containerd", unset)).toMatchObject({ runtime: "containerd", source: CONFIG });
    expect(runtimeReport("containerd", unset).checkpoint).toBeUndefined();
  });

  it("containerd 2.4 has no restore through CreateContainer; enable_criu = false turns both off", () => {
    const on = parseContainerdConfig(v3("enable_experimental_restore_via_create = true\n"));
    expect(assessRuntime("containerd", on.settings, v("containerd://2.4.0")).restore.able).toBe(false);
    const criu = parseContainerdConfig(v3("enable_criu = false\n"));
    const a = assessRuntime("containerd", criu.settings, v("containerd://2.3.4"));
    expect(a.checkpoint.able).toBe(false);
    expect(a.restore.fix).toBe(
      `set enable_criu = true in [plugins."io.containerd.cri.v1.runtime"] (${CONFIG}), then restart containerd`,
    );
  });

  it("a version 2 file keeps the setting in the grpc.v1.cri plugin, and the fix says so", () => {
    const parsed = parseContainerdConfig([
      { path: CONFIG, text: 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "pause"\n' },
    ]);
    const a = assessRuntime("containerd", parsed.settings, v("containerd://2.2.7"));
    expect(a.restore.fix).toContain('[plugins."io.containerd.grpc.v1.cri"]');
    const set = parseContainerdConfig([
      {
        path: CONFIG,
        text: 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nenable_experimental_restore_via_create = true\n',
      },
    ]);
    expect(assessRuntime("containerd", set.settings, v("containerd://2.2.7")).restore.able).toBe(true);
  });

  it("imports override the main file in order", () => {
    const main = { path: CONFIG, text: 'version = 3\nimports = ["/etc/containerd/conf.d/*.toml"]\n' };
    expect(containerdImports(main)).toEqual(["/etc/containerd/conf.d/*.toml"]);
    const parsed = parseContainerdConfig([
      main,
      {
        path: "/etc/containerd/conf.d/10-a.toml",
        text: v3("enable_experimental_restore_via_create = false\n")[0]!.text,
      },
      {
        path: "/etc/containerd/conf.d/20-b.toml",
        text: v3("enable_experimental_restore_via_create = true\n")[0]!.text,
      },
    ]);
    expect(parsed.settings.enable_experimental_restore_via_create?.file).toBe(
      "/etc/containerd/conf.d/20-b.toml",
    );
  });
});
