import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { crdPath, renderCrdYaml } from "../../../../src/api/v1alpha1/render.ts";

const repo = (rel: string) => new URL(`../../../../${rel}`, import.meta.url);

describe("StatefulMigration schema", () => {
  it("the committed CRD is what the generator produces (run `make manifests`)", () => {
    expect(readFileSync(repo(crdPath), "utf8")).toBe(renderCrdYaml());
  });
});
