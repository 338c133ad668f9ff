// StatefulMigrations as the controller leaves them, for the presentation tests.
import type { StatefulMigration } from "../../../src/api/v1alpha1/statefulmigration.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");
export const at = (ms: number) => new Date(T0 + ms).toISOString();

/** Phases with their lengths in ms, one after another from T0 + 100 ms. */
export function timings(lengths: [string, number][], running = false) {
  let t = 100;
  return lengths.map(([phase, ms], i) => {
    const start = t;
    t += ms;
    const last = i === lengths.length - 1;
    return {
      phase,
      startTime: at(start),
      ...(running && last ? {} : { endTime: at(t), durationMillis: ms }),
    };
  });
}

export const completed: StatefulMigration = {
  apiVersion: "migration.ms2m.io/v1alpha1",
  kind: "StatefulMigration",
  metadata: { name: "consumer-to-node-b", namespace: "shop", creationTimestamp: at(0) as never, uid: "u-1" },
  spec: {
    sourcePod: "consumer-abc",
    targetNode: "node-b",
    transferMode: "Direct",
  } as StatefulMigration["spec"],
  status: {
    phase: "Completed",
    strategy: "ShadowPod",
    transferMode: "Direct",
    sourceNode: "node-a",
    targetNode: "node-b",
    targetPod: "consumer-abc-ms2m-1",
    startTime: at(100),
    completionTime: at(2230),
    duration: "2.130s",
    phaseTimings: timings([
      ["Pending", 50],
      ["Checkpointing", 300],
      ["Transferring", 280],
      ["Restoring", 300],
      ["Replaying", 400],
      ["Finalizing", 800],
    ]),
    replay: { messagesReplayed: 12 },
    conditions: [
      {
        type: "Ready",
        status: "True",
        reason: "Completed",
        message: "the target serves",
        lastTransitionTime: at(2230),
      },
    ],
    containers: [
      {
        name: "consumer",
        checkpointDigest: "sha256:0123456789abcdef0123456789",
        checkpointBytes: 1536,
        checkpointVia: "Agent",
      },
    ],
  } as StatefulMigration["status"],
};

export const failed: StatefulMigration = {
  ...completed,
  metadata: { ...completed.metadata, name: "consumer-to-node-c" },
  status: {
    phase: "Failed",
    strategy: "ShadowPod",
    transferMode: "Direct",
    sourceNode: "node-a",
    targetNode: "node-c",
    startTime: at(100),
    completionTime: at(1500),
    phaseTimings: timings([
      ["Pending", 50],
      ["Checkpointing", 300],
      ["Transferring", 1000],
    ]),
    failure: { phase: "Transferring", reason: "TransferFailed", message: "agent on node-c unreachable" },
    conditions: [
      { type: "RolledBack", status: "True", reason: "SourceKept", message: "", lastTransitionTime: at(1500) },
    ],
  } as StatefulMigration["status"],
};
