import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { referencePath, renderReference } from "../../../../src/api/v1alpha1/reference.ts";

const repo = (rel: string) => new URL(`../../../../${rel}`, import.meta.url);

describe("StatefulMigration schema", () => {
  it("the committed API reference is what the generator produces (run `make manifests`)", () => {
    expect(readFileSync(repo(referencePath), "utf8")).toBe(renderReference());
  });
});
