// The SDK's restore detection: which pod the process is in (Downward API files, never HOSTNAME,
// POD_NAME only as a declared last resort), and when a change of identity means "restored".
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import {
  identityChange,
  isMigrationTargetPod,
  podInfoFiles,
  readPodIdentity,
  type PodIdentity,
} from "../../../src/sdk/pod-identity.ts";
import { removeTempDir, tempDir } from "../../../tooling/temp-dir.ts";

/** A Downward API folder with these files, removed when the test finishes. */
function podinfo(files: Record<string, string>): string {
  const dir = tempDir("podinfo");
  onTestFinished(() => removeTempDir(dir));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe("readPodIdentity", () => {
  it("reads name and uid from the Downward API files and ignores POD_NAME and HOSTNAME then", () => {
    const dir = podinfo({ name: "target-pod\n", uid: "uid-2\n" });
    expect(
      readPodIdentity({
        MS2M_POD_NAME_FILE: join(dir, "name"),
        POD_NAME: "source-pod",
        HOSTNAME: "source-pod",
      }),
    ).toEqual({ name: "target-pod", uid: "uid-2", source: "downward-api" });
  });

  it("finds the uid beside the name file unless MS2M_POD_UID_FILE names another one", () => {
    const dir = podinfo({ name: "p", uid: "beside" });
    const other = podinfo({ theuid: "elsewhere" });
    expect(podInfoFiles({})).toEqual({
      name: "/etc/podinfo/name",
      uid: "/etc/podinfo/uid",
      labels: "/etc/podinfo/labels",
    });
    expect(readPodIdentity({ MS2M_POD_NAME_FILE: join(dir, "name") }).uid).toBe("beside");
    expect(
      readPodIdentity({ MS2M_POD_NAME_FILE: join(dir, "name"), MS2M_POD_UID_FILE: join(other, "theuid") })
        .uid,
    ).toBe("elsewhere");
  });

  it("has no uid when the volume has no uid item", () => {
    const dir = podinfo({ name: "p" });
    expect(readPodIdentity({ MS2M_POD_NAME_FILE: join(dir, "name") })).toEqual({
      name: "p",
      source: "downward-api",
    });
  });

  it("falls back to POD_NAME without a name file, and says so; never to HOSTNAME", () => {
    const missing = join(podinfo({}), "name");
    expect(readPodIdentity({ MS2M_POD_NAME_FILE: missing, POD_NAME: "env-pod", HOSTNAME: "h" })).toEqual({
      name: "env-pod",
      source: "env",
    });
    // An empty file (a volume without the item yet) counts as absent.
    const empty = podinfo({ name: "  \n" });
    expect(readPodIdentity({ MS2M_POD_NAME_FILE: join(empty, "name"), POD_NAME: "env-pod" }).source).toBe(
      "env",
    );
    expect(() => readPodIdentity({ MS2M_POD_NAME_FILE: missing, HOSTNAME: "source-pod" })).toThrow(
      /POD_NAME/,
    );
  });

  it("reads afresh at every call: a restore rewrites the files under the same path", () => {
    const dir = podinfo({ name: "source-pod" });
    const env = { MS2M_POD_NAME_FILE: join(dir, "name") };
    expect(readPodIdentity(env).name).toBe("source-pod");
    writeFileSync(join(dir, "name"), "target-pod");
    expect(readPodIdentity(env).name).toBe("target-pod");
  });

  it("treats an unreadable name file (a directory) as absent", () => {
    const dir = podinfo({});
    mkdirSync(join(dir, "name"));
    expect(readPodIdentity({ MS2M_POD_NAME_FILE: join(dir, "name"), POD_NAME: "e" }).source).toBe("env");
  });
});

describe("identityChange", () => {
  const file = (name: string, uid?: string): PodIdentity =>
    uid ? { name, uid, source: "downward-api" } : { name, source: "downward-api" };

  it("the first identity is just taken", () => {
    expect(identityChange(undefined, file("a"))).toBe("first");
  });

  it("the same pod, with or without a uid, is no restore", () => {
    expect(identityChange(file("a"), file("a"))).toBe("same");
    expect(identityChange(file("a", "u1"), file("a", "u1"))).toBe("same");
    // A uid known on one side only cannot prove anything.
    expect(identityChange(file("a", "u1"), file("a"))).toBe("same");
    expect(identityChange(file("a"), file("a", "u1"))).toBe("same");
    expect(identityChange({ name: "a", source: "env" }, { name: "a", source: "env" })).toBe("same");
  });

  it("another name, or the same name with another uid (a StatefulSet pod), is a restore", () => {
    expect(identityChange(file("src"), file("src-ms2m-1"))).toBe("restored");
    expect(identityChange(file("web-0", "u1"), file("web-0", "u2"))).toBe("restored");
    // Snapshot identities (simulated runtime) carry no source.
    expect(identityChange({ name: "src" }, file("dst"))).toBe("restored");
    // The file appearing where there was none still tells the truth.
    expect(identityChange({ name: "src", source: "env" }, file("dst"))).toBe("restored");
  });

  it("refuses to go from the Downward API back to POD_NAME, which a restored process inherited", () => {
    expect(() => identityChange(file("src"), { name: "src", source: "env" })).toThrow(/POD_NAME/);
  });
});

describe("isMigrationTargetPod", () => {
  it("reads the Downward API labels file: only ms2m's target role counts", () => {
    const target = podinfo({ name: "p", labels: 'app="orders"\nmigration.ms2m.io/role="target"\n' });
    const plain = podinfo({ name: "p", labels: 'app="orders"\nrole="target"\n' });
    const none = podinfo({ name: "p" });
    expect(isMigrationTargetPod({ MS2M_POD_NAME_FILE: join(target, "name") })).toBe(true);
    expect(isMigrationTargetPod({ MS2M_POD_NAME_FILE: join(plain, "name") })).toBe(false);
    expect(isMigrationTargetPod({ MS2M_POD_NAME_FILE: join(none, "name") })).toBe(false);
    expect(
      isMigrationTargetPod({
        MS2M_POD_NAME_FILE: join(none, "name"),
        MS2M_POD_LABELS_FILE: join(target, "labels"),
      }),
    ).toBe(true);
  });
});
