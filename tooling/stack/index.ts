// The ms2m stack on a cluster, without vitest (shared by the cluster and real-node tests, `make
// demo` and the benchmarks): ms2m deployed from config/ (deploy.ts), a registry on the bridge
// (registry.ts), the controller binary acting as its ServiceAccount (controller-process.ts), the
// reference workload and a producer (workload.ts), migrations (migrations.ts), the message
// accounting and downtime (accounting.ts).
export * from "./env.ts";
export * from "./deploy.ts";
export * from "./controller-process.ts";
export * from "./registry.ts";
export * from "./workload.ts";
export * from "./migrations.ts";
export * from "./accounting.ts";
export * from "./agent-seconds.ts";
export * from "./setup.ts";
