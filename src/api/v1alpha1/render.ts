import { stringify } from "yaml";
import { crdManifest, kinds, type KindDefinition } from "./crd.ts";
import { group } from "./statefulmigration.ts";

export const crdPath = (def: KindDefinition = kinds[0]!) => `crd/${group}_${def.plural}.yaml`;

export function renderCrdYaml(def: KindDefinition = kinds[0]!): string {
  return (
    "# Generated from src/api/v1alpha1 by `make manifests`. Do not edit.\n---\n" +
    stringify(crdManifest(def), { lineWidth: 0 })
  );
}

/** crd/kustomization.yaml: every generated CRD. */
export function renderKustomization(): string {
  return [
    "# Generated from src/api/v1alpha1 by `make manifests`. Do not edit.",
    "apiVersion: kustomize.config.k8s.io/v1beta1",
    "kind: Kustomization",
    "resources:",
    ...kinds.map((k) => `  - ${crdPath(k).slice("crd/".length)}`),
    "",
  ].join("\n");
}
