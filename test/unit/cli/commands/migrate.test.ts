import { describe, expect, it } from "vitest";
import { UsageError } from "../../../../src/cli/command.ts";
import { buildMigration, migrationName, secretRef } from "../../../../src/cli/commands/migrate.ts";

describe("migrationName", () => {
  it("POD-to-NODE, or POD-migration without a node", () => {
    expect(migrationName("consumer-1", "node-b")).toBe("consumer-1-to-node-b");
    expect(migrationName("consumer-1", undefined)).toBe("consumer-1-migration");
  });
  it("cut to 253 characters, never ending in - or .", () => {
    const name = migrationName(`${"a".repeat(245)}-b`, "node-b");
    expect(name.length).toBeLessThanOrEqual(253);
    expect(name).toMatch(/[a-z0-9]$/);
  });
});

describe("secretRef", () => {
  it("NAME, or NAME:KEY", () => {
    expect(secretRef("rabbit")).toEqual({ name: "rabbit", key: "url" });
    expect(secretRef("rabbit:amqp")).toEqual({ name: "rabbit", key: "amqp" });
    expect(() => secretRef(":amqp")).toThrow(UsageError);
  });
});

describe("buildMigration", () => {
  it("the fewest fields: the pod, Direct", () => {
    expect(buildMigration("m", "p", {})).toEqual({
      apiVersion: "migration.ms2m.io/v1alpha1",
      kind: "StatefulMigration",
      metadata: { name: "m" },
      spec: { sourcePod: "p", transferMode: "Direct" },
    });
  });

  it("every flag, names matched without regard to case", () => {
    expect(
      buildMigration("m", "p", {
        to: "node-b",
        strategy: "shadowpod",
        transfer: "registry",
        imageRepository: "registry.example.com/ms2m/checkpoints",
        container: "app",
        queue: "orders",
        exchange: "orders.topic",
        routingKey: "eu.*",
        brokerUrl: "amqp://rabbitmq.shop:5672",
        replayCutoff: "30",
        onRestoreFailure: "coldstart",
      }).spec,
    ).toEqual({
      sourcePod: "p",
      containerName: "app",
      targetNode: "node-b",
      migrationStrategy: "ShadowPod",
      transferMode: "Registry",
      checkpointImageRepository: "registry.example.com/ms2m/checkpoints",
      replayCutoffSeconds: 30,
      onRestoreFailure: "ColdStart",
      messageQueueConfig: {
        queueName: "orders",
        exchangeName: "orders.topic",
        routingKey: "eu.*",
        brokerUrl: "amqp://rabbitmq.shop:5672",
      },
    });
  });

  it("an image repository alone means Registry", () => {
    expect(buildMigration("m", "p", { imageRepository: "r.example.com/x" }).spec.transferMode).toBe(
      "Registry",
    );
  });

  it.each([
    [{ strategy: "Fast" }, /--strategy must be one of ShadowPod, Sequential \(got "Fast"\)/],
    [{ transfer: "Teleport" }, /--transfer must be one of Registry, Direct/],
    [{ queue: "q" }, /--queue and --exchange go together/],
    [{ exchange: "e", brokerUrl: "amqp://x" }, /--queue and --exchange go together/],
    [{ queue: "q", exchange: "e" }, /exactly one of --broker-secret NAME\[:KEY\] or --broker-url URL/],
    [{ queue: "q", exchange: "e", brokerUrl: "amqp://x", brokerSecret: "s" }, /exactly one of/],
    [{ replayCutoff: "soon" }, /--replay-cutoff must be whole seconds/],
    [{ onRestoreFailure: "Retry" }, /--on-restore-failure must be one of Rollback, ColdStart/],
    [{ transfer: "Registry" }, /checkpointImageRepository/],
    [{ to: "Not A Node!" }, /targetNode/],
  ])("%j is a usage error", (flags, message) => {
    expect(() => buildMigration("m", "p", flags)).toThrow(UsageError);
    expect(() => buildMigration("m", "p", flags)).toThrow(message);
  });
});
