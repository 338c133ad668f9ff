export * from "./statefulmigration.ts";
export * from "./migrationpolicy.ts";
export { crdManifest, kinds } from "./crd.ts";
