export * from "./statefulmigration.ts";
export { crdManifest } from "./crd.ts";
