import { stringify } from "yaml";
import { crdManifest } from "./crd.ts";

export const crdPath = "crd/migration.ms2m.io_statefulmigrations.yaml";

export function renderCrdYaml(): string {
  return (
    "# Generated from src/api/v1alpha1 by `make manifests`. Do not edit.\n---\n" +
    stringify(crdManifest(), { lineWidth: 0 })
  );
}
