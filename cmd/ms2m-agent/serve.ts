// The ms2m-agent server (the DaemonSet; started by ./main.ts): configuration from the
// environment (exit 2 when invalid), TLS from the operator-managed Secret (re-read when
// re-issued), TokenReview/SubjectAccessReview against the API server, graceful shutdown on SIGTERM.
import { readFile } from "node:fs/promises";
import { PooledKubeConfig } from "../../src/kube/config.ts";
import { CONFIG_EXIT_CODE, ConfigError } from "../../src/common/config.ts";
import { createLogger } from "../../src/common/logger.ts";
import { parseAgentConfig, type AgentConfig } from "../../src/agent/config.ts";
import { KubeReviewer } from "../../src/agent/kube-reviewer.ts";
import { createMetrics } from "../../src/agent/metrics.ts";
import { AgentServer } from "../../src/agent/server.ts";

let config: AgentConfig;
try {
  config = parseAgentConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(CONFIG_EXIT_CODE);
  }
  throw err;
}

const log = createLogger("ms2m-agent", { level: config.LOG_LEVEL });
const readTls = async () => ({
  cert: await readFile(config.AGENT_TLS_CERT_FILE),
  key: await readFile(config.AGENT_TLS_KEY_FILE),
});

const kc = new PooledKubeConfig();
kc.loadFromCluster();
let tls = await readTls();
const agent = new AgentServer(
  { config, reviewer: new KubeReviewer(kc), logger: log, metrics: createMetrics({ defaultMetrics: true }) },
  tls,
);
await agent.listen();

// The operator re-issues the certificate into the Secret; the kubelet updates the mounted files.
const reload = setInterval(() => {
  readTls()
    .then((next) => {
      if (next.cert.equals(tls.cert) && next.key.equals(tls.key)) return;
      agent.reloadTls(next);
      tls = next;
      log.info("serving certificate reloaded");
    })
    .catch((err: unknown) =>
      log.warn({ err: String(err) }, "certificate reload failed; keeping the current one"),
    );
}, 30_000);
reload.unref();

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    agent
      .shutdown()
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err: String(err) }, "shutdown failed");
        process.exit(1);
      });
  });
}
