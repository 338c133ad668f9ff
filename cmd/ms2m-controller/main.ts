// ms2m-controller: reconciles StatefulMigrations. Config from the environment (see
// src/controller/config.ts), leader election on a Lease, graceful shutdown on SIGTERM.
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { loadConfigOrExit } from "../../src/common/config.ts";
import { Ms2mError, describeError } from "../../src/common/errors.ts";
import { createLogger, redactUrl } from "../../src/common/logger.ts";
import { createRegistry } from "../../src/common/metrics.ts";
import { createControllerMetrics } from "../../src/controller/metrics.ts";
import { loadKubeConfig } from "../../src/kube/config.ts";
import { AGENT_SERVER_NAME, AgentClient } from "../../src/transfer/index.ts";
import { AgentTlsManager, KubeSecretStore, ServingTlsManager } from "../../src/controller/certs/index.ts";
import { KubeEvictionCluster, injectCaBundle } from "../../src/controller/adapters/eviction.ts";
import { decide } from "../../src/controller/eviction/decide.ts";
import { EvictionWebhook } from "../../src/controller/eviction/webhook.ts";
import { AgentCheckpointer, AgentLocator, AgentTransfer } from "../../src/controller/adapters/agent.ts";
import { NodeProxyCheckpointer, RoutingCheckpointer } from "../../src/controller/adapters/node-proxy.ts";
import { AgentRuntimeProbe, noRuntimeProbe } from "../../src/controller/adapters/runtime.ts";
import { JobTransfer, RoutedTransfer } from "../../src/controller/adapters/transfer-job/transfer.ts";
import { transferJobSettingsFrom } from "../../src/controller/adapters/transfer-job/jobs.ts";
import { CachedReads } from "../../src/controller/adapters/cached-reads.ts";
import { KubeCluster } from "../../src/controller/adapters/kube-cluster.ts";
import { KubeEvents } from "../../src/controller/adapters/kube-events.ts";
import { KubeLeaseStore } from "../../src/controller/adapters/lease-store.ts";
import { BrokerMessaging } from "../../src/controller/adapters/messaging.ts";
import { controllerEnv, settingsFrom } from "../../src/controller/config.ts";
import { startHttp } from "../../src/engine/health.ts";
import { LeaderElector } from "../../src/engine/leaderelection.ts";
import { realTimerClock } from "../../src/engine/timers.ts";
import type { BaseImagePort, CheckpointPort, RuntimePort, TransferPort } from "../../src/controller/ports.ts";
import { AgentBaseImages } from "../../src/controller/adapters/base-images.ts";
import { systemClock } from "../../src/controller/ports.ts";
import { StatefulMigrationReconciler } from "../../src/controller/reconciler.ts";
import {
  checkpointSweeper,
  setupStatefulMigrationController,
  watchedObjects,
  watchedVersions,
  wholeFromWatch,
} from "../../src/controller/setup.ts";
import { otlpExporterFrom } from "../../src/controller/timeline/otlp.ts";

const cfg = loadConfigOrExit("ms2m-controller", controllerEnv);
const log = createLogger("ms2m-controller", { level: cfg.LOG_LEVEL });
const kc = loadKubeConfig(cfg.KUBECONFIG);
const metrics = createControllerMetrics(createRegistry());

const unavailable = (what: string) => () =>
  Promise.reject(new Ms2mError("ServiceUnavailable", `${what} is not configured`, { retriable: false }));
let checkpointer: CheckpointPort = {
  checkpoint: unavailable("checkpointing"),
  lookup: async () => ({ state: "unknown" }),
};
let transfer: TransferPort = { transfer: unavailable("transfer"), cleanup: async () => undefined };
let runtime: RuntimePort = noRuntimeProbe;
let baseImages: BaseImagePort | undefined;
let agentClient: AgentClient | undefined;
if (cfg.CHECKPOINT_MODE !== "disabled") {
  // With MANAGE_AGENT_TLS the leader hands its client the bundle it maintains, so the mounted
  // file may be missing on a fresh install (the Secret does not exist yet).
  if (!cfg.AGENT_CA_FILE && !cfg.MANAGE_AGENT_TLS) {
    console.error(
      "ms2m-controller: invalid configuration:\n  - AGENT_CA_FILE: is required unless CHECKPOINT_MODE=disabled",
    );
    process.exit(2);
  }
  const client = new AgentClient({
    ca: cfg.AGENT_CA_FILE && existsSync(cfg.AGENT_CA_FILE) ? readFileSync(cfg.AGENT_CA_FILE) : [],
    servername: AGENT_SERVER_NAME,
    token: () => readFileSync(cfg.AGENT_TOKEN_FILE, "utf8").trim(),
  });
  agentClient = client;
  const locator = new AgentLocator(kc, {
    namespace: cfg.AGENT_NAMESPACE ?? cfg.POD_NAMESPACE,
    labelSelector: cfg.AGENT_LABEL_SELECTOR,
    port: cfg.AGENT_PORT,
  });
  const viaAgent = new AgentCheckpointer(client, locator);
  const viaProxy = new NodeProxyCheckpointer(kc);
  checkpointer =
    cfg.CHECKPOINT_MODE === "agent"
      ? viaAgent
      : cfg.CHECKPOINT_MODE === "node-proxy"
        ? viaProxy
        : new RoutingCheckpointer(viaAgent, viaProxy, locator);
  runtime = new AgentRuntimeProbe(client, locator);
  baseImages = new AgentBaseImages(client, locator);
  const agentTransfer = new AgentTransfer(client, locator);
  // Where no agent runs on the source node (or always, with MS2M_TRANSFER_RUNNER=job), a
  // transfer Job sends the archive (src/controller/transfer-job.ts).
  transfer =
    cfg.MS2M_TRANSFER_RUNNER === "agent"
      ? agentTransfer
      : new RoutedTransfer(
          agentTransfer,
          new JobTransfer(kc, { ...transferJobSettingsFrom(cfg), logLevel: cfg.LOG_LEVEL }, locator),
          locator,
          cfg.MS2M_TRANSFER_RUNNER,
        );
}
const messaging = new BrokerMessaging(log);
const traceExporter = otlpExporterFrom(cfg, log);
if (traceExporter)
  log.info({ url: redactUrl(traceExporter.url) }, "exporting migration traces over OTLP/HTTP");
// Reads of objects the watches show unchanged since the controller last read or wrote them are
// answered without a request (adapters/cached-reads.ts).
const cluster = new CachedReads(
  new KubeCluster(kc),
  watchedVersions(() => manager),
  {
    whole: wholeFromWatch(() => manager),
    metadata: watchedObjects(() => manager),
    synced: () => manager.synced,
  },
);
const reconciler = new StatefulMigrationReconciler({
  cluster,
  checkpointer,
  transfer,
  runtime,
  ...(baseImages ? { baseImages } : {}),
  messaging,
  events: new KubeEvents(kc, log),
  clock: systemClock,
  log,
  metrics,
  settings: settingsFrom(cfg),
  sent: new Set(),
  brokerUrls: new Map(),
  ...(traceExporter ? { traceExporter } : {}),
});
const manager = setupStatefulMigrationController({
  kc,
  reconciler,
  log,
  metrics,
  workers: cfg.MAX_CONCURRENT_RECONCILES,
  resyncMs: cfg.RESYNC_SECONDS * 1000,
  ...(cfg.CHECKPOINT_MODE !== "disabled" && cfg.MS2M_TRANSFER_RUNNER !== "agent"
    ? { jobNamespace: cfg.POD_NAMESPACE }
    : {}),
});

// Replaying is driven by the targets' PROGRESS reports (pushed by the broker), not by a poll.
messaging.onProgress((migration) => manager.enqueue(migration));

// Leader only: releases what crashed or interrupted runs left on the agents, after the TTL.
const sweeper = agentClient
  ? checkpointSweeper({
      kc,
      client: agentClient,
      log,
      ttlSeconds: cfg.CHECKPOINT_TTL_SECONDS,
      intervalSeconds: cfg.CHECKPOINT_SWEEP_INTERVAL_SECONDS,
      agentNamespace: cfg.AGENT_NAMESPACE ?? cfg.POD_NAMESPACE,
      agentLabelSelector: cfg.AGENT_LABEL_SELECTOR,
      agentPort: cfg.AGENT_PORT,
    })
  : undefined;

let lastBundle = "";
const agentTls = cfg.MANAGE_AGENT_TLS
  ? new AgentTlsManager({
      store: new KubeSecretStore(kc, cfg.POD_NAMESPACE),
      namespace: cfg.AGENT_NAMESPACE ?? cfg.POD_NAMESPACE,
      secretName: cfg.AGENT_TLS_SECRET,
      caSecretName: cfg.AGENT_TLS_CA_SECRET,
      log,
      onBundle: (bundle) => {
        if (bundle === lastBundle) return;
        lastBundle = bundle;
        agentClient?.updateCa(bundle);
      },
    })
  : undefined;
// The eviction webhook (MigrationPolicy): every replica serves it with the certificate the
// leader keeps in WEBHOOK_TLS_SECRET; the leader also writes the CA into the webhook configuration.
const secrets = new KubeSecretStore(kc, cfg.POD_NAMESPACE);
const webhook =
  cfg.WEBHOOK_PORT > 0
    ? new EvictionWebhook({
        port: cfg.WEBHOOK_PORT,
        host: cfg.WEBHOOK_HOST,
        log: log.child({ component: "eviction-webhook" }),
        decider: (namespace, pod, opts) => decide(new KubeEvictionCluster(kc, log), namespace, pod, opts),
      })
    : undefined;
const webhookTls =
  webhook && cfg.MANAGE_WEBHOOK_TLS
    ? new ServingTlsManager({
        store: secrets,
        secretName: cfg.WEBHOOK_TLS_SECRET,
        caSecretName: cfg.WEBHOOK_CA_SECRET,
        commonName: cfg.WEBHOOK_SERVICE,
        names: [
          cfg.WEBHOOK_SERVICE,
          `${cfg.WEBHOOK_SERVICE}.${cfg.POD_NAMESPACE}`,
          `${cfg.WEBHOOK_SERVICE}.${cfg.POD_NAMESPACE}.svc`,
          `${cfg.WEBHOOK_SERVICE}.${cfg.POD_NAMESPACE}.svc.cluster.local`,
          ...cfg.WEBHOOK_EXTRA_NAMES,
        ],
        what: "webhook TLS",
        log,
        onBundle: (bundle) => {
          injectCaBundle(kc, cfg.WEBHOOK_CONFIG_NAME, bundle, cfg.WEBHOOK_URL).catch((err: unknown) =>
            log.warn({ err: describeError(err) }, "eviction webhook: could not write the CA bundle"),
          );
          void loadWebhookTls();
        },
      })
    : undefined;
async function loadWebhookTls(): Promise<void> {
  if (!webhook) return;
  const s = await secrets.get(cfg.WEBHOOK_TLS_SECRET).catch(() => undefined);
  const cert = s?.data["tls.crt"];
  const key = s?.data["tls.key"];
  if (cert && key) await webhook.setTls(cert, key);
}
// Replicas that do not lead pick the certificate up (and its renewals) from the Secret.
const webhookTlsPoll = webhook
  ? setInterval(() => void loadWebhookTls().catch(() => undefined), 30_000).unref()
  : undefined;
void loadWebhookTls().catch(() => undefined);

// Leader only: issue/rotate the agents' and the webhook's certificates first, then reconcile.
const startLeading = () => {
  agentTls?.start();
  webhookTls?.start();
  manager.startWorkers();
  sweeper?.start();
};

let shuttingDown = false;
const identity = `${cfg.POD_NAME ?? hostname()}_${process.pid}`;
const elector = cfg.LEADER_ELECT
  ? new LeaderElector({
      identity,
      store: new KubeLeaseStore(kc, cfg.POD_NAMESPACE, cfg.LEADER_ELECTION_LEASE_NAME),
      clock: realTimerClock,
      log,
      onStartedLeading: startLeading,
      // Like controller-runtime: a replica that lost the lease exits and starts clean.
      onStoppedLeading: () => void shutdown("lost leadership", 1),
    })
  : undefined;

const health = await startHttp(cfg.HEALTH_PORT, {
  checks: { healthy: () => !shuttingDown, ready: () => manager.synced && !shuttingDown },
  ...(cfg.HEALTH_PORT === cfg.METRICS_PORT ? { registry: metrics.registry } : {}),
});
const metricsServer =
  cfg.HEALTH_PORT === cfg.METRICS_PORT
    ? undefined
    : await startHttp(cfg.METRICS_PORT, { registry: metrics.registry });

async function shutdown(why: string, code = 0): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  log.info({ why }, "shutting down");
  const force = setTimeout(() => process.exit(code || 1), 25_000);
  force.unref();
  try {
    await agentTls?.stop();
    await webhookTls?.stop();
    if (webhookTlsPoll) clearInterval(webhookTlsPoll);
    await webhook?.stop();
    await sweeper?.stop();
    await manager.stop(); // finishes reconciles in flight
    await elector?.stop(); // releases the lease: another replica takes over at once
    await messaging.close();
    await traceExporter?.flush();
  } catch (err) {
    log.error({ err: describeError(err) }, "shutdown");
  }
  health.close();
  metricsServer?.close();
  process.exit(code);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

await manager.startInformers();
log.info(
  { identity, leaderElect: cfg.LEADER_ELECT, workers: cfg.MAX_CONCURRENT_RECONCILES },
  "informers synced",
);
if (elector) elector.start();
else startLeading();
