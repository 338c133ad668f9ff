// Writes crd/ from the zod schemas: `make manifests`. `--check` exits 1 when the committed
// file differs from what the generator produces.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { renderCrdYaml, crdPath } from "../src/api/v1alpha1/render.ts";

const path = fileURLToPath(new URL(`../${crdPath}`, import.meta.url));
const rendered = renderCrdYaml();
if (process.argv.includes("--check")) {
  const committed = readFileSync(path, "utf8");
  if (committed !== rendered) {
    console.error(`${crdPath} is out of date: run \`make manifests\``);
    process.exit(1);
  }
} else {
  writeFileSync(path, rendered);
  console.log(`wrote ${crdPath}`);
}
