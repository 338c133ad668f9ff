// The reference workload on a cluster: namespaces, consumer pods (Deployment, StatefulSet, bare
// pod), the producer, their logs.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { isAlreadyExists } from "../../src/kube/errors.ts";
import { LOCAL_BROKER_URL } from "../broker/queues.ts";
import { waitFor } from "../exec.ts";
import { mustSucceed } from "./manifests.ts";
import { Producer } from "../../workload/producer.ts";
import { CONSUMER_IMAGE, type ControllerTestEnv, SYSTEM_NS, type StackEnv, imagesOf } from "./env.ts";

export async function createNamespace(env: ControllerTestEnv, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString("hex")}`;
  await prepareWorkloadNamespace(env, name);
  return name;
}

/**
 * What a workload namespace needs for migrations, idempotently (bench:eval --kubeconfig reuses
 * one): the namespace, the `broker` Secret with the broker URL as pods reach it, and — as the
 * docs say a namespace owner grants it — the controller's right to read Secrets there, nowhere else.
 */
export async function prepareWorkloadNamespace(env: ControllerTestEnv, name: string): Promise<void> {
  const created = <T>(p: Promise<T>) =>
    p.then(
      () => undefined,
      (err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      },
    );
  await created(env.core.createNamespace({ body: { metadata: { name } } }));
  await waitFor(
    `default ServiceAccount in ${name}`,
    () => env.core.readNamespacedServiceAccount({ name: "default", namespace: name }).then(() => true),
    { timeoutMs: 30_000 },
  );
  const secret = { metadata: { name: "broker" }, stringData: { url: env.brokerUrl } };
  await env.core.createNamespacedSecret({ namespace: name, body: secret }).catch(async (err: unknown) => {
    if (!isAlreadyExists(err)) throw err;
    await env.core.replaceNamespacedSecret({ name: "broker", namespace: name, body: secret });
  });
  await created(
    env.kc.makeApiClient(k8s.RbacAuthorizationV1Api).createNamespacedRoleBinding({
      namespace: name,
      body: {
        metadata: { name: "ms2m-broker-secret-reader" },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: "ms2m-broker-secret-reader",
        },
        subjects: [{ kind: "ServiceAccount", name: "ms2m-controller", namespace: SYSTEM_NS }],
      },
    }),
  );
}

/** One workload's broker names, state file and producer. */
export interface Workload {
  name: string;
  exchange: string;
  queue: string;
  /** Each consumer writes its final state to <stateDir>/<pod name at start>.json on SIGTERM. */
  stateDir: string;
  /**
   * One queue per pod (`<queue>.<pod>`, each bound to the fan-out exchange): replicas that
   * share one queue cannot be replayed loss- and duplicate-free, since the replay queue holds
   * what the other replicas took from the shared queue too.
   */
  queuePerPod?: boolean;
  /** Each consumer appends "<epoch ms> <seq>" per applied message to <appliedLogDir>/<pod>.applied. */
  appliedLogDir?: string;
}

export function workloadNames(ns: string, name: string, work: string, queuePerPod = false): Workload {
  return {
    queuePerPod,
    name,
    exchange: `ex.${ns}.${name}`,
    queue: `q.${ns}.${name}`,
    stateDir: join(work, `${ns}-${name}`),
  };
}

/** The reference consumer as a pod template, pinned to a node. */
export function consumerTemplate(
  w: Workload,
  env: ControllerTestEnv,
  /** Pinned to this node; undefined: the scheduler places the pod (and its replacements). */
  nodeName?: string,
): k8s.V1PodTemplateSpec {
  const real = env.cluster.runtime === "real";
  // Real pods write through hostPath volumes as the consumer image's non-root user.
  mkdirSync(w.stateDir, { recursive: true, mode: 0o777 });
  if (real) chmodSync(w.stateDir, 0o777);
  if (w.appliedLogDir) {
    mkdirSync(w.appliedLogDir, { recursive: true, mode: 0o777 });
    if (real) chmodSync(w.appliedLogDir, 0o777);
  }
  // The same folders at the same paths inside the container (real nodes have mount namespaces;
  // the simulator runs containers in the host's).
  const hostDirs = [
    { name: "state", path: w.stateDir },
    ...(w.appliedLogDir ? [{ name: "applied", path: w.appliedLogDir }] : []),
  ];
  return {
    metadata: { labels: { app: w.name, tier: "consumer" } },
    spec: {
      ...(nodeName ? { nodeName } : {}),
      terminationGracePeriodSeconds: 10,
      // Test machines give root no CAP_SYS_RESOURCE, and without it CRIU cannot read the rlimits
      // of a process of another user (prlimit: EPERM), so real nodes only checkpoint root
      // processes here. Real clusters have no such limit; the image itself runs as non-root.
      ...(real ? { securityContext: { runAsUser: 0 } } : {}),
      containers: [
        {
          name: "consumer",
          image: real ? imagesOf(env).workload : CONSUMER_IMAGE,
          imagePullPolicy: "IfNotPresent",
          env: [
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "AMQP_URL", value: env.brokerUrl },
            { name: "EXCHANGE", value: w.exchange },
            { name: "QUEUE", value: w.queuePerPod ? `${w.queue}.$(POD_NAME)` : w.queue },
            { name: "PREFETCH", value: "20" },
            // Files named after the pod the process runs in *now* (a restored process keeps the
            // source's environment): read from the Downward API when written.
            { name: "STATE_DIR", value: w.stateDir },
            { name: "LOG_LEVEL", value: "info" },
            ...(w.appliedLogDir ? [{ name: "APPLIED_LOG_DIR", value: w.appliedLogDir }] : []),
          ],
          volumeMounts: [
            { name: "podinfo", mountPath: "/etc/podinfo" },
            ...(real ? hostDirs.map((d) => ({ name: d.name, mountPath: d.path })) : []),
          ],
        },
      ],
      volumes: [
        {
          name: "podinfo",
          downwardAPI: {
            items: [
              { path: "name", fieldRef: { fieldPath: "metadata.name" } },
              { path: "uid", fieldRef: { fieldPath: "metadata.uid" } },
              // A fresh process in a migration's target pod (a failed restore) waits for the controller.
              { path: "labels", fieldRef: { fieldPath: "metadata.labels" } },
            ],
          },
        },
        ...(real
          ? hostDirs.map((d) => ({ name: d.name, hostPath: { path: d.path, type: "Directory" } }))
          : []),
      ],
    },
  };
}

export async function createDeployment(
  env: ControllerTestEnv,
  ns: string,
  w: Workload,
  node: string | undefined,
  replicas = 1,
) {
  const template = consumerTemplate(w, env, node);
  return env.apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: { replicas, selector: { matchLabels: { app: w.name } }, template },
    },
  });
}

export async function createStatefulSet(
  env: ControllerTestEnv,
  ns: string,
  w: Workload,
  node: string | undefined,
  replicas = 1,
) {
  const template = consumerTemplate(w, env, node);
  return env.apps.createNamespacedStatefulSet({
    namespace: ns,
    body: {
      metadata: { name: w.name },
      spec: {
        replicas,
        serviceName: w.name,
        podManagementPolicy: "Parallel",
        selector: { matchLabels: { app: w.name } },
        template,
      },
    },
  });
}

export async function createBarePod(env: ControllerTestEnv, ns: string, w: Workload, node: string) {
  const template = consumerTemplate(w, env, node);
  return env.core.createNamespacedPod({
    namespace: ns,
    body: { metadata: { name: w.name, labels: template.metadata?.labels ?? {} }, spec: template.spec! },
  });
}

export const isReady = (pod: k8s.V1Pod) =>
  !pod.metadata?.deletionTimestamp &&
  pod.status?.phase === "Running" &&
  pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/** Pods matching the app label, ready, with their log showing the consumer is consuming. */
export async function waitForConsumers(
  env: ControllerTestEnv,
  ns: string,
  app: string,
  count: number,
): Promise<k8s.V1Pod[]> {
  const pods = await waitFor(
    `${count} ready ${app} pods`,
    async () => {
      const list = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
      const ready = list.items.filter(isReady);
      return ready.length === count ? ready : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  for (const p of pods) {
    await waitFor(
      `consumer ${p.metadata?.name} started`,
      async () => {
        const name = p.metadata?.name ?? "";
        // On the simulated cluster straight from the node; on any other (bench:eval --kubeconfig)
        // through the API server, as `kubectl logs` does.
        const log = await containerLog(env, ns, name, "consumer", p.spec?.nodeName ?? "");
        return /consumer started/.test(log) ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
  }
  return pods;
}

/**
 * A container's log: from the simulated node's files, from the real node's /var/log/pods, or (a
 * cluster reached only through its API: bench:eval --kubeconfig) through the API server.
 */
export async function containerLog(
  env: Pick<StackEnv, "cluster" | "core">,
  ns: string,
  pod: string,
  container: string,
  node: string,
): Promise<string> {
  if (!env.cluster) {
    return env.core.readNamespacedPodLog({ namespace: ns, name: pod, container }).catch(() => "");
  }
  if (env.cluster.runtime === "real") return env.cluster.realNode(node).containerLog(ns, pod, container);
  return env.cluster.node(node).containerLog(ns, pod, container);
}

export class TestProducer {
  readonly confirmed: number[] = [];
  readonly producer: Producer;
  private started = false;

  constructor(env: ControllerTestEnv, w: Workload, rate: number) {
    this.producer = new Producer({
      url: LOCAL_BROKER_URL,
      exchange: w.exchange,
      rate,
      producerId: w.name,
      onConfirmed: (seq) => this.confirmed.push(seq),
    });
  }

  async start(): Promise<void> {
    await this.producer.start();
    this.started = true;
  }

  async stop(): Promise<void> {
    if (this.started) await this.producer.stop();
  }
}

/** Stops every consumer of a workload: scale to 0, or delete the bare pod. */
export function stopper(env: ControllerTestEnv, ns: string, kind: "deploy" | "sts" | "pod", name: string) {
  return async () => {
    if (kind === "pod") {
      const pods = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${name}` });
      for (const p of pods.items)
        await env.core.deleteNamespacedPod({ namespace: ns, name: p.metadata?.name ?? "" });
      return;
    }
    mustSucceed(await env.kubectl(["-n", ns, "scale", `${kind}/${name}`, "--replicas=0"]), "scale to 0");
  };
}

export const controllerOf = (p: k8s.V1Pod) => p.metadata?.ownerReferences?.find((o) => o.controller);

/** Pods of a workload that are not being deleted. */
export async function livePods(env: ControllerTestEnv, ns: string, app: string): Promise<k8s.V1Pod[]> {
  const list = await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` });
  return list.items.filter((p) => !p.metadata?.deletionTimestamp);
}
