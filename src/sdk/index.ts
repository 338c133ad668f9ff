// ms2m consumer SDK: import this in a service to make it migratable. Under CRIU nothing else is
// needed; the simulator's cooperative checkpoint contract is in ./simulated-runtime.ts, on purpose
// not exported here (it is a detail of the test runtime, see docs/simulator.md).
export {
  MigratingConsumer,
  type ConsumerSnapshot,
  type Delivery,
  type MigratingConsumerOptions,
  type RestoreInfo,
} from "./consumer.ts";
export { DedupWindow, DEFAULT_DEDUP_CAPACITY } from "./dedup.ts";
export {
  readPodIdentity,
  identityChange,
  podInfoFiles,
  DEFAULT_POD_NAME_FILE,
  type IdentityChange,
  type PodIdentity,
} from "./pod-identity.ts";
export { registerConsumerMetrics } from "./metrics.ts";
export * from "../protocol/replay.ts";
