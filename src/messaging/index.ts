// Controller-side replay protocol. See migration.ts for the call order and the loss-free argument.
export { BrokerPool, type BrokerPoolOptions } from "./broker-pool.ts";
export { toMs2mError } from "./broker-errors.ts";
export { sendControl, sendFence, buildControl, type ControlRequest } from "./control.ts";
export {
  decideCutover,
  isDrained,
  replayRate,
  type CutoverDecision,
  type CutoverPolicy,
  type DrainStatus,
} from "./drain.ts";
export {
  ReplayMigration,
  type CutoverReport,
  type CutoverRequest,
  type ReplayMigrationOptions,
} from "./migration.ts";
export { StatusInbox } from "./status-inbox.ts";
export {
  cleanupMigration,
  migrationQueues,
  queueDepth,
  replayTopologySchema,
  setupReplay,
  unbindReplay,
  type CleanupResult,
  type ReplayTopology,
  type ReplayTopologyInput,
  type SetupResult,
} from "./topology.ts";
