import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as k8s from "@kubernetes/client-node";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import { mkdir, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { dirname } from "node:path";
import { COUNTER_IMAGE, INSPECT_IMAGE } from "../../../tooling/cluster/nodes.ts";
import {
  counterPod,
  createNamespace,
  isReady,
  kubectl,
  simCluster,
  waitForGone,
  waitForLog,
  waitForPod,
} from "./helpers.ts";

// Simulated nodes under the real control plane: registration, heartbeats, and pods driven by
// the real scheduler and controllers.
const { cluster, kc, core, apps } = simCluster();
const coord = kc.makeApiClient(k8s.CoordinationV1Api);
let ns: string;

beforeAll(async () => {
  ns = await createNamespace(core, "sim-nodes");
});

afterAll(async () => {
  await core.deleteNamespace({ name: ns }).catch(() => undefined);
});

describe("node registration", () => {
  it("registers node-a and node-b Ready, with address, capacity and kubelet port", async () => {
    for (const name of ["node-a", "node-b"]) {
      const node = await core.readNode({ name });
      const ready = node.status?.conditions?.find((c) => c.type === "Ready");
      expect(ready?.status).toBe("True");
      expect(node.status?.addresses).toContainEqual({ type: "InternalIP", address: cluster.node(name).ip });
      expect(node.status?.daemonEndpoints?.kubeletEndpoint?.Port).toBe(10250);
      expect(node.status?.allocatable?.cpu).toBeDefined();
      expect(node.metadata?.labels?.["kubernetes.io/hostname"]).toBe(name);
    }
    const out = await kubectl(cluster.info.kubeconfig, ["get", "nodes", "--no-headers"]);
    expect(out).toMatch(/^node-a\s+Ready\s/m);
    expect(out).toMatch(/^node-b\s+Ready\s/m);
  });

  it("keeps its Lease fresh and stays Ready", async () => {
    const renew = async () =>
      new Date(
        (await coord.readNamespacedLease({ name: "node-a", namespace: "kube-node-lease" })).spec?.renewTime ??
          0,
      ).getTime();
    const first = await renew();
    await waitFor("lease renewal", async () => ((await renew()) > first ? true : undefined), {
      timeoutMs: 15_000,
      intervalMs: 250,
    });
    const node = await core.readNode({ name: "node-a" });
    expect(node.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
  });

  it("reports NotReady when told to, and Ready again", async () => {
    const node = cluster.node("node-b");
    const readyOf = async () =>
      (await core.readNode({ name: "node-b" })).status?.conditions?.find((c) => c.type === "Ready")?.status;
    try {
      await node.setReady(false);
      expect(await readyOf()).toBe("False");
    } finally {
      await node.setReady(true);
    }
    expect(await readyOf()).toBe("True");
  });
});

describe("pods", () => {
  it("runs a Deployment's pods, placed by the real scheduler, to Running and Ready", async () => {
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: "counter" },
        spec: {
          replicas: 4,
          selector: { matchLabels: { app: "counter-deploy" } },
          template: {
            metadata: { labels: { app: "counter-deploy" } },
            spec: {
              containers: [{ name: "counter", image: COUNTER_IMAGE, imagePullPolicy: "IfNotPresent" }],
            },
          },
        },
      },
    });
    const deploy = await waitFor(
      "deployment available",
      async () => {
        const d = await apps.readNamespacedDeployment({ name: "counter", namespace: ns });
        return d.status?.readyReplicas === 4 ? d : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(deploy.status?.availableReplicas).toBe(4);
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: "app=counter-deploy" });
    expect(pods.items).toHaveLength(4);
    for (const pod of pods.items) {
      expect(isReady(pod)).toBe(true);
      expect(["node-a", "node-b"]).toContain(pod.spec?.nodeName);
      expect(pod.status?.podIP).toBe(cluster.node(pod.spec?.nodeName ?? "").ip);
      expect(pod.status?.containerStatuses?.[0]?.state?.running).toBeDefined();
    }
    // The scheduler spreads replicas of one owner over both nodes.
    expect(new Set(pods.items.map((p) => p.spec?.nodeName)).size).toBe(2);
    await apps.deleteNamespacedDeployment({ name: "counter", namespace: ns });
  });

  it("scales a StatefulSet up and down through the real controller-manager", async () => {
    const replicasReady = (n: number) =>
      waitFor(
        `statefulset at ${n} ready replicas`,
        async () => {
          const s = await apps.readNamespacedStatefulSet({ name: "web", namespace: ns });
          const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: "app=web" });
          return (s.status?.readyReplicas ?? 0) === n && pods.items.length === n ? pods.items : undefined;
        },
        { timeoutMs: 45_000, intervalMs: 100 },
      );
    await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: {
        metadata: { name: "web" },
        spec: {
          serviceName: "web",
          replicas: 1,
          selector: { matchLabels: { app: "web" } },
          template: {
            metadata: { labels: { app: "web" } },
            spec: {
              terminationGracePeriodSeconds: 5,
              containers: [{ name: "counter", image: COUNTER_IMAGE, imagePullPolicy: "IfNotPresent" }],
            },
          },
        },
      },
    });
    await replicasReady(1);
    await apps.patchNamespacedStatefulSetScale({
      name: "web",
      namespace: ns,
      body: [{ op: "replace", path: "/spec/replicas", value: 3 }],
    });
    const up = await replicasReady(3);
    expect(up.map((p) => p.metadata?.name).sort()).toEqual(["web-0", "web-1", "web-2"]);
    // The restored-hostname contract relies on HOSTNAME being the pod's name.
    await waitForLog(cluster, up[2]!.spec!.nodeName!, ns, "web-2", /count=\d+ pod=\? host=web-2/);
    await apps.patchNamespacedStatefulSetScale({
      name: "web",
      namespace: ns,
      body: [{ op: "replace", path: "/spec/replicas", value: 1 }],
    });
    const down = await replicasReady(1);
    expect(down[0]?.metadata?.name).toBe("web-0");
    await apps.deleteNamespacedStatefulSet({ name: "web", namespace: ns });
  });

  it("honours the grace period on deletion: SIGTERM, then SIGKILL once it has passed", async () => {
    const pod = counterPod("stubborn", "node-a", { terminationGracePeriodSeconds: 2 });
    pod.spec!.containers[0]!.env = [{ name: "IGNORE_SIGTERM", value: "1" }];
    await core.createNamespacedPod({ namespace: ns, body: pod });
    await waitForPod(core, ns, "stubborn", "ready", isReady);
    await waitForLog(cluster, "node-a", ns, "stubborn", /count=/); // the SIGTERM handler is in place
    const started = Date.now();
    await core.deleteNamespacedPod({ name: "stubborn", namespace: ns });
    // Still there (terminating) while the grace period runs.
    await sleep(1_000);
    const terminating = await core.readNamespacedPod({ name: "stubborn", namespace: ns });
    expect(terminating.metadata?.deletionTimestamp).toBeDefined();
    await waitForGone(core, ns, "stubborn");
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(2_000);
    expect(took).toBeLessThan(6_000);
  });

  it("ends a pod whose process handles SIGTERM without waiting for the grace period", async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: counterPod("polite", "node-b", { terminationGracePeriodSeconds: 30 }),
    });
    await waitForPod(core, ns, "polite", "ready", isReady);
    await waitForLog(cluster, "node-b", ns, "polite", /count=/);
    const started = Date.now();
    await core.deleteNamespacedPod({ name: "polite", namespace: ns });
    await waitForGone(core, ns, "polite");
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("writes its Ready back when someone else marks the pod NotReady (as the kubelet's status manager does)", async () => {
    await core.createNamespacedPod({ namespace: ns, body: counterPod("steady", "node-a") });
    await waitForPod(core, ns, "steady", "ready", isReady);
    // What kube-controller-manager's node lifecycle controller does when it loses track of a node.
    const pod = await core.readNamespacedPod({ name: "steady", namespace: ns });
    const conditions = (pod.status?.conditions ?? []).map((c) =>
      c.type === "Ready" ? { ...c, status: "False", reason: "NodeNotReady" } : c,
    );
    await core.replaceNamespacedPodStatus({
      name: "steady",
      namespace: ns,
      body: { ...pod, status: { ...pod.status, conditions } },
    });
    const back = await waitForPod(core, ns, "steady", "Ready again", isReady);
    expect(back.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    await core.deleteNamespacedPod({ name: "steady", namespace: ns, gracePeriodSeconds: 0 });
  });

  it("restarts a crashing container with back-off and counts restarts", async () => {
    await cluster.node("node-a").setImages({
      "ms2m.test/crasher:dev": {
        command: [process.execPath, "-e", "setTimeout(() => process.exit(3), 100)"],
      },
    });
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "crasher" },
        spec: {
          nodeName: "node-a",
          containers: [{ name: "c", image: "ms2m.test/crasher:dev", imagePullPolicy: "IfNotPresent" }],
        },
      },
    });
    const pod = await waitForPod(
      core,
      ns,
      "crasher",
      "restarted",
      (p) => (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1,
    );
    const cs = pod.status?.containerStatuses?.[0];
    expect(cs?.lastState?.terminated?.exitCode).toBe(3);
    await core.deleteNamespacedPod({ name: "crasher", namespace: ns, gracePeriodSeconds: 0 });
  });

  it("runs a Job's pod to completion (phase Succeeded) and the Job completes", async () => {
    await cluster
      .node("node-a")
      .setImages({ "ms2m.test/once:dev": { command: [process.execPath, "-e", "0"] } });
    await cluster
      .node("node-b")
      .setImages({ "ms2m.test/once:dev": { command: [process.execPath, "-e", "0"] } });
    const batch = kc.makeApiClient(k8s.BatchV1Api);
    await batch.createNamespacedJob({
      namespace: ns,
      body: {
        metadata: { name: "once" },
        spec: {
          backoffLimit: 0,
          template: {
            spec: {
              restartPolicy: "Never",
              containers: [{ name: "c", image: "ms2m.test/once:dev", imagePullPolicy: "IfNotPresent" }],
            },
          },
        },
      },
    });
    const job = await waitFor(
      "job complete",
      async () => {
        const j = await batch.readNamespacedJob({ name: "once", namespace: ns });
        return j.status?.succeeded === 1 ? j : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(job.status?.conditions?.some((c) => c.type === "Complete" && c.status === "True")).toBe(true);
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: "job-name=once" });
    expect(pods.items[0]?.status?.phase).toBe("Succeeded");
    expect(pods.items[0]?.status?.containerStatuses?.[0]?.state?.terminated?.reason).toBe("Completed");
    await batch.deleteNamespacedJob({ name: "once", namespace: ns, propagationPolicy: "Background" });
  });

  it("lets pods reach the broker through the relay on the host's bridge address", async (ctx) => {
    const local = await new Promise<boolean>((resolve) => {
      const s = connect(5672, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (!local) ctx.skip(); // no RabbitMQ on this machine
    const probe = [
      "const u = new URL(process.env.MS2M_BROKER_URL);",
      "const s = require('net').connect(Number(u.port), u.hostname);",
      "s.on('connect', () => s.write(Buffer.from([65, 77, 81, 80, 0, 0, 9, 1])));",
      "s.on('data', (d) => { console.log('broker answered ' + d.length); process.exit(0); });",
      "s.on('error', (e) => { console.log('broker error ' + e.message); process.exit(1); });",
    ].join(" ");
    await cluster
      .node("node-b")
      .setImages({ "ms2m.test/amqp-probe:dev": { command: [process.execPath, "-e", probe] } });
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "amqp-probe" },
        spec: {
          nodeName: "node-b",
          restartPolicy: "Never",
          containers: [
            { name: "counter", image: "ms2m.test/amqp-probe:dev", imagePullPolicy: "IfNotPresent" },
          ],
        },
      },
    });
    await waitForPod(core, ns, "amqp-probe", "finished", (p) =>
      ["Succeeded", "Failed"].includes(p.status?.phase ?? ""),
    );
    expect(await cluster.node("node-b").containerLog(ns, "amqp-probe", "counter")).toMatch(
      /broker answered \d+/,
    );
  });

  it("serves container logs through the API server (kubectl logs)", async () => {
    await core.createNamespacedPod({ namespace: ns, body: counterPod("talker", "node-b") });
    await waitForPod(core, ns, "talker", "ready", isReady);
    await waitForLog(cluster, "node-b", ns, "talker", /count=2/);
    const out = await kubectl(cluster.info.kubeconfig, ["logs", "-n", ns, "talker", "--tail=2"]);
    expect(out).toMatch(/count=\d+ pod=talker host=talker/);
    await core.deleteNamespacedPod({ name: "talker", namespace: ns });
  });

  it("gives containers the pod's environment, volumes and ServiceAccount identity", async () => {
    const node = cluster.node("node-a");
    const seed = node.hostPath("/srv/data/seed.txt");
    await mkdir(dirname(seed), { recursive: true });
    await writeFile(seed, "seed");
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "app" }, data: { greeting: "hello" } },
    });
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: "app" }, stringData: { password: "s3cret" } },
    });
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: "inspect" },
        spec: {
          nodeName: "node-a",
          containers: [
            {
              name: "counter",
              image: INSPECT_IMAGE,
              imagePullPolicy: "IfNotPresent",
              env: [
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
                { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
                { name: "APP_GREETING", valueFrom: { configMapKeyRef: { name: "app", key: "greeting" } } },
                { name: "APP_PASSWORD", valueFrom: { secretKeyRef: { name: "app", key: "password" } } },
                { name: "MY_URL", value: "http://$(POD_NAME).svc" },
              ],
              volumeMounts: [
                { name: "config", mountPath: "/etc/config" },
                { name: "data", mountPath: "/data" },
              ],
            },
          ],
          volumes: [
            { name: "config", configMap: { name: "app" } },
            { name: "data", hostPath: { path: "/srv/data", type: "DirectoryOrCreate" } },
          ],
        },
      },
    });
    await waitForPod(core, ns, "inspect", "ready", isReady);
    const log = await waitFor(
      "inspect report",
      async () => {
        const text = await node.containerLog(ns, "inspect", "counter");
        return /^report /m.test(text) ? text : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    const report = JSON.parse(/^report (.*)$/m.exec(log)![1]!) as Record<string, unknown>;
    expect(report).toEqual({
      env: {
        POD_NAME: "inspect",
        NODE_NAME: "node-a",
        POD_IP: node.ip,
        APP_GREETING: "hello",
        APP_PASSWORD: "s3cret",
        MY_URL: "http://inspect.svc",
        HOSTNAME: "inspect",
      },
      namespaceFile: ns,
      config: "hello",
      data: "seed",
      user: `system:serviceaccount:${ns}:default`,
    });
    await core.deleteNamespacedPod({ name: "inspect", namespace: ns });
  });
});

describe("probes and node lifecycle", () => {
  it("gates Ready on an httpGet readiness probe", async () => {
    const node = cluster.node("node-b");
    const server = "require('http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT))";
    await node.setImages({ "ms2m.test/web:dev": { command: [process.execPath, "-e", server] } });
    const pod = (name: string, port: number, probePort: number): k8s.V1Pod => ({
      metadata: { name },
      spec: {
        nodeName: "node-b",
        containers: [
          {
            name: "web",
            image: "ms2m.test/web:dev",
            imagePullPolicy: "IfNotPresent",
            env: [{ name: "PORT", value: String(port) }],
            ports: [{ name: "http", containerPort: port }],
            readinessProbe: { httpGet: { path: "/", port: probePort }, periodSeconds: 1 },
          },
        ],
      },
    });
    await core.createNamespacedPod({ namespace: ns, body: pod("probed", 18080, 18080) });
    await core.createNamespacedPod({ namespace: ns, body: pod("unready", 18081, 18089) });
    await waitForPod(core, ns, "probed", "ready", isReady);
    const unready = await waitForPod(core, ns, "unready", "running", (p) => p.status?.phase === "Running");
    expect(unready.status?.phase).toBe("Running");
    expect(unready.status?.containerStatuses?.[0]?.ready).toBe(false);
    expect(unready.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("False");
    for (const name of ["probed", "unready"]) {
      await core.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 });
    }
  });

  it("takes the configured latencies for pull, start and readiness", async () => {
    const node = cluster.node("node-b");
    await node.setImages({
      "ms2m.test/slow:dev": { command: [process.execPath, "-e", "setInterval(() => {}, 1000)"] },
    });
    await node.setLatencies({ imagePullMs: 300, containerStartMs: 300, readinessMs: 300 });
    try {
      const started = Date.now();
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: "slow" },
          spec: {
            nodeName: "node-b",
            containers: [{ name: "c", image: "ms2m.test/slow:dev", imagePullPolicy: "Always" }],
          },
        },
      });
      const running = await waitForPod(core, ns, "slow", "running", (p) => p.status?.phase === "Running");
      const runningAt = Date.now();
      expect(runningAt - started).toBeGreaterThanOrEqual(600);
      expect(isReady(running)).toBe(false);
      await waitForPod(core, ns, "slow", "ready", isReady);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    } finally {
      await node.setLatencies({ imagePullMs: 0, containerStartMs: 0, readinessMs: 0 });
    }
    await core.deleteNamespacedPod({ name: "slow", namespace: ns, gracePeriodSeconds: 0 });
  });

  it("starts an extra node that registers Ready, and stopping it ends its containers", async () => {
    const extra = await cluster.startNode("node-x", { latencies: { containerStartMs: 50 } });
    try {
      await waitFor(
        "node-x Ready",
        async () => {
          const n = await core.readNode({ name: "node-x" });
          return n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
            ? true
            : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 100 },
      );
      await core.createNamespacedPod({ namespace: ns, body: counterPod("on-x", "node-x") });
      await waitForPod(core, ns, "on-x", "ready", isReady);
      expect((await extra.pids()).length).toBeGreaterThanOrEqual(2); // simulator + container
    } finally {
      await cluster.stopNode("node-x");
    }
    expect(await extra.pids()).toEqual([]);
    await expect(core.readNode({ name: "node-x" })).rejects.toThrow();
    await core
      .deleteNamespacedPod({ name: "on-x", namespace: ns, gracePeriodSeconds: 0 })
      .catch(() => undefined);
  });
});
