// `make deploy`: ms2m on the local cluster of `make cluster-up` as a user installs it: config/default
// rendered with kustomize, the controller and agent images set to the ones in the cluster's
// registry (.cluster/info.json: `make cluster-up RUNTIME=real` builds them with `make images` and
// pushes them there), applied with kubectl. The controller runs as its Deployment and issues the
// agents' TLS itself (MANAGE_AGENT_TLS). On simulated nodes the images map to the sources.
// `make undeploy` removes it again: the namespace with everything in it, the cluster-wide RBAC and
// the webhook configuration; the CRDs (and with them every migration) only with --crds.
//   node hack/deploy.ts [--undeploy [--crds]]
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ClusterInfo } from "../tooling/cluster/nodes.ts";
import { stackEnv, SYSTEM_NS } from "../tooling/stack/index.ts";
import {
  clusterImages,
  deployMs2mWithController,
  removeMs2m,
  waitForControllerLeading,
} from "../tooling/stack/deployment.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const infoPath = join(root, ".cluster", "info.json");

const info = JSON.parse(
  await readFile(infoPath, "utf8").catch(() => {
    console.error(`no local cluster (${infoPath} is missing): make cluster-up [RUNTIME=real] first`);
    process.exit(2);
  }),
) as ClusterInfo;
const env = stackEnv(info);
try {
  if (process.argv.includes("--undeploy")) {
    const crds = process.argv.includes("--crds");
    await removeMs2m(env, { crds });
    console.log(
      `ms2m removed from ${info.server}: namespace ${SYSTEM_NS}, cluster RBAC, webhook configuration` +
        (crds ? ", CRDs" : " (the CRDs stay: make undeploy CRDS=1 removes them and every migration)"),
    );
  } else {
    const started = Date.now();
    const images = clusterImages(env);
    console.log(`deploying config/default to ${info.server} (${env.cluster.runtime} nodes)`);
    console.log(`  controller ${images.controller}`);
    console.log(`  agent      ${images.agent}`);
    await deployMs2mWithController(env);
    const leader = await waitForControllerLeading(env);
    console.log(
      `ms2m deployed in ${((Date.now() - started) / 1000).toFixed(1)} s: controller ${SYSTEM_NS}/${leader} leading, ` +
        `an agent Ready on ${env.cluster.nodeNames().join(", ")}`,
    );
    console.log(`  export KUBECONFIG=${info.kubeconfig}`);
  }
} finally {
  await env.kc.closeConnections();
}
