import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// docs/controller.md's layout table names every part of the controller and the engine, and only
// parts that exist: a new module without a line there, or a line for a module that moved, fails.
const root = fileURLToPath(new URL("../../..", import.meta.url));
const doc = readFileSync(join(root, "docs/controller.md"), "utf8");
const table = doc.slice(doc.indexOf("## Layout"), doc.indexOf("## Guarantees"));
/** Every `path` in the table's first column. */
const listed = table
  .split("\n")
  .filter((l) => l.startsWith("| `"))
  .flatMap((l) => [...(l.split("|")[1] ?? "").matchAll(/`([^`]+)`/g)].map((m) => m[1]!));

/** The modules and folders the table must cover: each entry of src/controller and src/engine. */
function parts(dir: string): string[] {
  return readdirSync(join(root, dir)).map(
    (e) => `${dir}/${e}${statSync(join(root, dir, e)).isDirectory() ? "/" : ""}`,
  );
}

describe("docs/controller.md layout table", () => {
  it("names only paths that exist", () => {
    expect(listed.length).toBeGreaterThan(10);
    for (const p of listed) expect(existsSync(join(root, p)), p).toBe(true);
  });

  it("names every module and folder of src/controller and src/engine", () => {
    const missing = [
      ...parts("src/controller"),
      ...parts("src/engine"),
      "cmd/ms2m-controller/main.ts",
    ].filter((p) => !listed.includes(p));
    expect(missing).toEqual([]);
  });
});
