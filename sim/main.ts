// A simulated node: kubelet + container runtime in one process. Started by the harness inside
// the node's network namespace (`ip netns exec <ns> node sim/main.ts <config.json>`), so the
// kubelet API listens on the node's address and containers share that namespace.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createLogger } from "../src/common/logger.ts";
import { ApiClient } from "./api-client.ts";
import { Checkpointer } from "./checkpoint.ts";
import { loadNodeConfig, type Latencies } from "./config.ts";
import { startControlServer } from "./control.ts";
import { writeCrioConfig } from "./crio-config.ts";
import { EventRecorder } from "./events.ts";
import { ImageService } from "./images.ts";
import { KubeletAuth } from "./kubelet-auth.ts";
import { startKubeletServer } from "./kubelet-server.ts";
import { NodeStatusReporter } from "./node-status.ts";
import { NodePaths } from "./paths.ts";
import { PodManager } from "./pod-manager.ts";
import { ProcessRuntime } from "./runtime.ts";
import { VolumeManager } from "./volumes.ts";

const configPath = process.argv[2];
if (!configPath) {
  console.error("usage: node sim/main.ts <node-config.json>");
  process.exit(2);
}
const config = await loadNodeConfig(configPath);
const log = createLogger("ms2m-sim").child({ node: config.nodeName });
const paths = new NodePaths(config.dir);
let latencies: Latencies = { ...config.latencies };

for (const d of [
  paths.checkpoints,
  paths.storage.graphRoot,
  paths.storage.runRoot,
  paths.host("/var/log/pods"),
]) {
  await mkdir(d, { recursive: true, mode: 0o700 });
}
// The runtime's configuration in the node's /etc (read by the agent through its hostPath mount).
await writeCrioConfig(paths, config.runtime);
const workDir = join(config.dir, "work");
await mkdir(workDir, { recursive: true, mode: 0o700 });

const api = await ApiClient.create({
  server: config.apiServer,
  caFile: config.caFile,
  certFile: config.clientCert,
  keyFile: config.clientKey,
});
const images = new ImageService({
  store: paths.storageConfig(config.storageDriver),
  simulatedList: paths.simulatedImages,
  workDir,
  insecureRegistries: config.insecureRegistries,
  pullLatencyMs: () => latencies.imagePullMs,
  log,
});
images.setCommands(config.images);
const runtime = new ProcessRuntime(paths.containerPids, (id) => paths.checkpointSocket(id));
const volumes = new VolumeManager(api, paths);
const events = new EventRecorder(api, config.nodeName, log);
const pods = new PodManager({
  api,
  config,
  paths,
  images,
  runtime,
  volumes,
  events,
  log,
  latencies: () => latencies,
});
const status = new NodeStatusReporter(api, config, log);
const checkpointer = new Checkpointer(pods, runtime, paths, () => latencies, log, config.runtime);

let stopping: Promise<void> | undefined;
function shutdown(): Promise<void> {
  stopping ??= (async () => {
    log.info("shutting down: stopping every container");
    status.stop();
    await pods.stop();
    await api.close();
    process.exit(0);
  })();
  return stopping;
}
process.on("SIGTERM", () => void shutdown());
process.on("SIGINT", () => void shutdown());

await startControlServer(paths.controlSocket, {
  status: async () => ({
    name: config.nodeName,
    ip: config.nodeIp,
    ready: status.ready,
    heartbeatsPaused: status.heartbeatsPaused,
    latencies,
    images: await images.list(),
    pods: pods.list().map((w) => ({
      namespace: w.namespace,
      name: w.name,
      uid: w.uid,
      containers: (w.current.spec?.containers ?? []).map((c) => ({
        name: c.name,
        pid: w.container(c.name)?.pid,
        logFile: w.logFile(c.name),
      })),
    })),
  }),
  setLatencies: (l) => {
    latencies = { ...latencies, ...l };
  },
  setImages: (map) => images.setCommands(map),
  preload: (image) => images.preload(image),
  setReady: (ready, reason, message) => status.setReady(ready, reason, message),
  pauseHeartbeats: (paused) => status.pauseHeartbeats(paused),
  shutdown: () => void shutdown(),
});

await status.register();
await pods.start();
await startKubeletServer({
  host: config.nodeIp,
  port: config.kubeletPort,
  caFile: config.caFile,
  certFile: config.servingCert,
  keyFile: config.servingKey,
  auth: new KubeletAuth(api, config.nodeName),
  pods,
  checkpointer,
  log,
});
await writeFile(join(config.dir, "ready"), String(process.pid));
log.info({ address: `${config.nodeIp}:${config.kubeletPort}` }, "node up");
process.send?.({ type: "ready" });
