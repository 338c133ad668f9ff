// Invalid StatefulMigrations, shared by the admission tests (real API server) and the zod
// schema tests: each names the field the error must point at and a phrase of the message.

export interface InvalidCase {
  name: string;
  spec: Record<string, unknown>;
  /** Field path the API server's error names. */
  field: string;
  /** A phrase the error message contains (case-insensitive). */
  says: string;
  /** Only the API server can catch it (unknown fields, transition rules). */
  serverOnly?: boolean;
  metadataName?: string;
}

const mq = { queueName: "orders", exchangeName: "orders.fanout", brokerUrl: "amqp://rabbitmq:5672" };
const base = { sourcePod: "consumer-0", transferMode: "Direct", messageQueueConfig: mq };

export const invalidCases: InvalidCase[] = [
  {
    name: "missing sourcePod",
    spec: { transferMode: "Direct" },
    field: "spec.sourcePod",
    says: "Required value",
  },
  {
    name: "sourcePod not a DNS name",
    spec: { ...base, sourcePod: "Consumer_0" },
    field: "spec.sourcePod",
    says: "should match",
  },
  {
    name: "sourcePod too long",
    spec: { ...base, sourcePod: "a".repeat(254) },
    field: "spec.sourcePod",
    says: "253",
  },
  {
    name: "containerName not a DNS label",
    spec: { ...base, containerName: "web.app" },
    field: "spec.containerName",
    says: "should match",
  },
  {
    name: "targetNode not a DNS name",
    spec: { ...base, targetNode: "Node B" },
    field: "spec.targetNode",
    says: "should match",
  },
  {
    name: "unknown strategy",
    spec: { ...base, migrationStrategy: "Live" },
    field: "spec.migrationStrategy",
    says: "Unsupported value",
  },
  {
    name: "unknown transfer mode",
    spec: { ...base, transferMode: "Ftp" },
    field: "spec.transferMode",
    says: "Unsupported value",
  },
  {
    name: "cutoff below 1",
    spec: { ...base, replayCutoffSeconds: 0 },
    field: "spec.replayCutoffSeconds",
    says: "greater than or equal to 1",
  },
  {
    name: "cutoff above a day",
    spec: { ...base, replayCutoffSeconds: 86401 },
    field: "spec.replayCutoffSeconds",
    says: "less than or equal to 86400",
  },
  {
    name: "cutoff not an integer",
    spec: { ...base, replayCutoffSeconds: 1.5 },
    field: "spec.replayCutoffSeconds",
    says: "integer",
  },
  {
    name: "Registry without repository",
    spec: { sourcePod: "consumer-0", transferMode: "Registry" },
    field: "spec.checkpointImageRepository",
    says: "required when transferMode is Registry",
  },
  {
    name: "default mode (Registry) without repository",
    spec: { sourcePod: "consumer-0" },
    field: "spec.checkpointImageRepository",
    says: "required when transferMode is Registry",
  },
  {
    name: "repository with a tag",
    spec: { sourcePod: "consumer-0", checkpointImageRepository: "registry:5000/ms2m:latest" },
    field: "spec.checkpointImageRepository",
    says: "should match",
  },
  {
    name: "broker URL with http scheme",
    spec: { ...base, messageQueueConfig: { ...mq, brokerUrl: "http://rabbitmq:15672" } },
    field: "spec.messageQueueConfig.brokerUrl",
    says: "amqp:// or amqps://",
  },
  {
    name: "broker URL with credentials",
    spec: { ...base, messageQueueConfig: { ...mq, brokerUrl: "amqp://guest:guest@rabbitmq:5672" } },
    field: "spec.messageQueueConfig.brokerUrl",
    says: "must not carry credentials",
  },
  {
    name: "both broker URL and Secret",
    spec: { ...base, messageQueueConfig: { ...mq, brokerSecretRef: { name: "rabbit", key: "url" } } },
    field: "spec.messageQueueConfig",
    says: "exactly one of brokerUrl or brokerSecretRef",
  },
  {
    name: "neither broker URL nor Secret",
    spec: { ...base, messageQueueConfig: { queueName: "orders", exchangeName: "orders.fanout" } },
    field: "spec.messageQueueConfig",
    says: "exactly one of brokerUrl or brokerSecretRef",
  },
  {
    name: "missing queueName",
    spec: { ...base, messageQueueConfig: { exchangeName: "orders.fanout", brokerUrl: "amqp://rabbitmq" } },
    field: "spec.messageQueueConfig.queueName",
    says: "Required value",
  },
  {
    name: "queueName too long",
    spec: { ...base, messageQueueConfig: { ...mq, queueName: "q".repeat(256) } },
    field: "spec.messageQueueConfig.queueName",
    says: "255",
  },
  {
    name: "Secret reference without key",
    spec: {
      ...base,
      messageQueueConfig: { queueName: "q", exchangeName: "x", brokerSecretRef: { name: "rabbit" } },
    },
    field: "spec.messageQueueConfig.brokerSecretRef.key",
    says: "Required value",
  },
  {
    name: "unknown field in spec",
    spec: { ...base, targetNod: "node-b" },
    field: "spec.targetNod",
    says: "unknown field",
    serverOnly: true,
  },
  {
    name: "unknown field in messageQueueConfig",
    spec: { ...base, messageQueueConfig: { ...mq, password: "hunter2" } },
    field: "spec.messageQueueConfig.password",
    says: "unknown field",
    serverOnly: true,
  },
  {
    name: "invalid object name",
    spec: base,
    metadataName: "Bad_Name",
    field: "metadata.name",
    says: "RFC 1123",
    serverOnly: true,
  },
];
