import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { kinds } from "../../../../src/api/v1alpha1/crd.ts";
import { crdPath, renderCrdYaml, renderKustomization } from "../../../../src/api/v1alpha1/render.ts";
import { referencePath, renderReference } from "../../../../src/api/v1alpha1/reference.ts";

const repo = (rel: string) => new URL(`../../../../${rel}`, import.meta.url);

describe("generated manifests (run `make manifests` when these fail)", () => {
  it.each(kinds.map((k) => [k.kind, k] as const))(
    "the committed %s CRD is what the generator produces",
    (_n, k) => {
      expect(readFileSync(repo(crdPath(k)), "utf8")).toBe(renderCrdYaml(k));
    },
  );

  it("crd/kustomization.yaml lists every CRD", () => {
    expect(readFileSync(repo("crd/kustomization.yaml"), "utf8")).toBe(renderKustomization());
  });

  it("the API reference is what the generator produces", () => {
    expect(readFileSync(repo(referencePath), "utf8")).toBe(renderReference());
  });
});
