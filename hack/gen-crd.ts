// Writes crd/ and the API reference from the zod schemas: `make manifests`. `--check`
// exits 1 when a committed file differs from what the generator produces.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { kinds } from "../src/api/v1alpha1/crd.ts";
import { crdPath, renderCrdYaml, renderKustomization } from "../src/api/v1alpha1/render.ts";
import { referencePath, renderReference } from "../src/api/v1alpha1/reference.ts";

const outputs: [string, string][] = [
  ...kinds.map((k): [string, string] => [crdPath(k), renderCrdYaml(k)]),
  ["crd/kustomization.yaml", renderKustomization()],
  [referencePath, renderReference()],
];
let stale = false;
for (const [rel, rendered] of outputs) {
  const path = fileURLToPath(new URL(`../${rel}`, import.meta.url));
  if (process.argv.includes("--check")) {
    let committed: string;
    try {
      committed = readFileSync(path, "utf8");
    } catch {
      committed = "";
    }
    if (committed !== rendered) {
      console.error(`${rel} is out of date: run \`make manifests\``);
      stale = true;
    }
  } else {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, rendered);
    console.log(`wrote ${rel}`);
  }
}
process.exit(stale ? 1 : 0);
