// ms2m consumer SDK: import this in a service to make it migratable.
export {
  MigratingConsumer,
  type ConsumerSnapshot,
  type Delivery,
  type MigratingConsumerOptions,
} from "./consumer.ts";
export {
  serveCheckpoints,
  loadRestoredState,
  type CheckpointServer,
  type StateProvider,
} from "./checkpoint.ts";
export { DedupWindow, DEFAULT_DEDUP_CAPACITY } from "./dedup.ts";
export { readPodName, DEFAULT_POD_NAME_FILE } from "./pod-name.ts";
export { registerConsumerMetrics } from "./metrics.ts";
export * from "./protocol.ts";
