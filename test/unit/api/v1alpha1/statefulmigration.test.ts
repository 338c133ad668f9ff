import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { StatefulMigration, StatefulMigrationSpec } from "../../../../src/api/v1alpha1/statefulmigration.ts";
import { invalidCases } from "./invalid-manifests.ts";

const repo = (rel: string) => new URL(`../../../../${rel}`, import.meta.url);

describe("StatefulMigration schema", () => {
  // The StatefulMigration samples (config/samples also holds a MigrationPolicy: migrationpolicy.test.ts).
  const samples = readdirSync(repo("config/samples")).filter(
    (f) =>
      f.endsWith(".yaml") &&
      f !== "kustomization.yaml" &&
      (parse(readFileSync(repo(`config/samples/${f}`), "utf8")) as { kind: string }).kind ===
        "StatefulMigration",
  );
  it("has one sample per strategy and transfer mode", () => {
    const combos = samples.map((f) => {
      const spec = (
        parse(readFileSync(repo(`config/samples/${f}`), "utf8")) as { spec: Record<string, string> }
      ).spec;
      return `${spec.migrationStrategy ?? "detected"}/${spec.transferMode ?? "Registry"}`;
    });
    expect(new Set(combos).size).toBe(samples.length);
    expect(samples.length).toBeGreaterThanOrEqual(4);
  });

  it.each(samples)("sample %s parses", (file) => {
    const obj = StatefulMigration.parse(parse(readFileSync(repo(`config/samples/${file}`), "utf8")));
    expect(obj.spec.replayCutoffSeconds).toBeGreaterThan(0);
  });

  it("applies the defaults the CRD declares", () => {
    const spec = StatefulMigrationSpec.parse({
      sourcePod: "p",
      checkpointImageRepository: "registry:5000/ms2m",
    });
    expect(spec.transferMode).toBe("Registry");
    expect(spec.replayCutoffSeconds).toBe(120);
  });

  const zodCases = invalidCases.filter((c) => !c.serverOnly);
  it.each(zodCases.map((c) => [c.name, c] as const))("rejects %s, naming the field", (_name, c) => {
    const result = StatefulMigrationSpec.safeParse(c.spec);
    expect(result.success).toBe(false);
    const paths = result.error!.issues.map((i) => ["spec", ...i.path].join("."));
    expect(paths).toContain(c.field);
  });
});
