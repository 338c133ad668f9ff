// The plugin's version: the package's, as released (package.json, Chart.yaml and the images move
// together; test/component/charts/drift.test.ts checks they agree).
export const VERSION = "0.1.0";
