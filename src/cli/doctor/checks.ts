// `kubectl ms2m doctor`: why a cluster is (not) ready for live migrations. Each check says what it
// found and, when something is wrong, what to do. The checks, in order:
//   crd         the StatefulMigration CRD is installed, Established, serving v1alpha1
//   controller  the Deployment's pods are Ready and one of them holds the leader Lease
//   agents      an ms2m-agent pod is Ready on every Ready node (and the agents' TLS Secret exists)
//   runtime     each node's runtime can checkpoint and restore (the agent's GET /v1/runtime,
//               judged as the controller's preflight judges it)
//   kubelet     each node's kubelet checkpoint API answers the agent (a checkpoint of a pod that
//               does not exist: the kubelet says "pod does not exist", nothing is checkpointed)
//   rbac        ms2m's ServiceAccounts may do what they need (SubjectAccessReviews)
//   broker      with --broker-secret: the Secret, the controller's right to read it, a connection
import * as k8s from "@kubernetes/client-node";
import { describeError, isMs2mError } from "../../common/errors.ts";
import { getOrUndefined } from "../../kube/errors.ts";
import { group, plural, version } from "../../api/v1alpha1/statefulmigration.ts";
import { runtimeOf, parseRuntimeVersion } from "../../checkpoint/runtime-config.ts";
import type { Kube } from "../kube.ts";
import { AgentAccess, type AgentAccessMode } from "./agents.ts";
import { brokerFinding } from "./broker.ts";
import { describePermission, requiredPermissions } from "./permissions.ts";
import { fromFindings, worst, type CheckResult, type DoctorReport, type Finding } from "./report.ts";
import { judgeNode } from "./runtime.ts";

export interface DoctorOptions {
  /** Where ms2m runs (default ms2m-system). */
  systemNamespace: string;
  /** The workload namespace (the broker Secret's). */
  namespace: string;
  /** NAME[:KEY] of the broker Secret in `namespace`. */
  brokerSecret?: string | undefined;
  agentAccess: AgentAccessMode;
  /** Per call (agent, broker). */
  timeoutMs: number;
  /** Leave out the kubelet checkpoint probe. */
  skip?: string[];
}

const CRD = `${plural}.${group}`;
const CONTROLLER = "ms2m-controller";
const AGENT_LABEL = "app.kubernetes.io/name=ms2m-agent";
const CONTROLLER_LABEL = "app.kubernetes.io/name=ms2m-controller";
const AGENT_TLS_SECRET = "ms2m-agent-tls";

const install =
  "install ms2m: helm install ms2m charts/ms2m -n ms2m-system --create-namespace, or kubectl apply -k config/default";

function isReady(p: k8s.V1Pod): boolean {
  return (
    !p.metadata?.deletionTimestamp &&
    Boolean(p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
  );
}

/** Why a pod is not Ready, from its container states. */
export function podProblem(p: k8s.V1Pod): string {
  if (p.metadata?.deletionTimestamp) return "terminating";
  for (const s of [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]) {
    const w = s.state?.waiting;
    if (w?.reason && w.reason !== "PodInitializing")
      return `${s.name}: ${w.reason}${w.message ? ` (${w.message.slice(0, 200)})` : ""}`;
    const t = s.state?.terminated ?? s.lastState?.terminated;
    if (t && !s.ready)
      return `${s.name}: exited ${t.exitCode}${t.reason ? ` (${t.reason})` : ""}${t.message ? `: ${t.message.slice(0, 200)}` : ""}`;
  }
  const unscheduled = p.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (unscheduled) return `not scheduled: ${unscheduled.message ?? unscheduled.reason}`;
  const notReady = p.status?.conditions?.find((c) => c.type === "Ready" && c.status !== "True");
  return `${p.status?.phase ?? "Pending"}${notReady?.message ? `: ${notReady.message}` : ", not Ready"}`;
}

function nodeReady(n: k8s.V1Node): boolean {
  return n.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** Shared state: what the first checks found, the later ones use. */
interface State {
  nodes: k8s.V1Node[];
  /** Ready agent pods by node. */
  agents: Map<string, k8s.V1Pod>;
  access?: AgentAccess;
  /** Why the agents cannot be asked (no CA, no token). */
  noAccess?: string;
}

async function checkCrd(kube: Kube): Promise<CheckResult> {
  const title = "CustomResourceDefinition";
  const ext = kube.kc.makeApiClient(k8s.ApiextensionsV1Api);
  const crd = await getOrUndefined(() => ext.readCustomResourceDefinition({ name: CRD }));
  if (!crd) return { id: "crd", title, status: "fail", message: `${CRD} is not installed: ${install}` };
  const established = crd.status?.conditions?.find((c) => c.type === "Established");
  if (established?.status !== "True")
    return {
      id: "crd",
      title,
      status: "fail",
      message: `${CRD} is not Established: ${established?.message ?? "no condition yet"}`,
    };
  const v = crd.spec.versions.find((x) => x.name === version);
  if (!v?.served)
    return {
      id: "crd",
      title,
      status: "fail",
      message: `${CRD} does not serve ${version} (served: ${
        crd.spec.versions
          .filter((x) => x.served)
          .map((x) => x.name)
          .join(", ") || "none"
      }): upgrade ms2m`,
    };
  return { id: "crd", title, status: "ok", message: `${CRD} installed, serving ${version}` };
}

async function checkController(kube: Kube, o: DoctorOptions): Promise<CheckResult> {
  const title = "Controller";
  const ns = o.systemNamespace;
  const deployment = await getOrUndefined(() =>
    kube.apps.readNamespacedDeployment({ name: CONTROLLER, namespace: ns }),
  );
  if (!deployment)
    return {
      id: "controller",
      title,
      status: "fail",
      message: `Deployment ${ns}/${CONTROLLER} not found: ${install}`,
    };
  const pods = (await kube.core.listNamespacedPod({ namespace: ns, labelSelector: CONTROLLER_LABEL })).items;
  const ready = pods.filter(isReady);
  const want = deployment.spec?.replicas ?? 1;
  const findings: Finding[] = pods.map((p) => ({
    subject: `pod ${p.metadata?.name}`,
    status: isReady(p) ? "ok" : "fail",
    message: isReady(p) ? `Ready on ${p.spec?.nodeName}` : podProblem(p),
  }));
  if (want === 0)
    return {
      id: "controller",
      title,
      status: "fail",
      message: `Deployment ${ns}/${CONTROLLER} is scaled to 0`,
      findings,
    };
  if (pods.length === 0)
    return {
      id: "controller",
      title,
      status: "fail",
      message: `no pod of Deployment ${ns}/${CONTROLLER}: ${
        deployment.status?.conditions
          ?.map((c) => c.message)
          .filter(Boolean)
          .join("; ") || "none created"
      }`,
    };
  // The leader: the Lease's holder (<pod>_<pid>), renewed within its duration.
  const coordination = kube.kc.makeApiClient(k8s.CoordinationV1Api);
  const lease = await getOrUndefined(() =>
    coordination.readNamespacedLease({ name: CONTROLLER, namespace: ns }),
  );
  const holder = lease?.spec?.holderIdentity ?? "";
  const renewed = lease?.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
  const durationMs = (lease?.spec?.leaseDurationSeconds ?? 15) * 1000;
  const fresh = holder !== "" && Date.now() - renewed <= durationMs + 5000;
  const leaderPod = pods.find((p) => holder.startsWith(`${p.metadata?.name}_`));
  if (!lease)
    findings.push({
      subject: `Lease ${ns}/${CONTROLLER}`,
      status: "fail",
      message: "not found: no controller ever led (is LEADER_ELECT on?)",
    });
  else if (!fresh)
    findings.push({
      subject: `Lease ${ns}/${CONTROLLER}`,
      status: "fail",
      message: holder
        ? `held by ${holder} but not renewed for ${Math.round((Date.now() - renewed) / 1000)} s: no controller leads`
        : "released: no controller leads",
    });
  else if (!leaderPod)
    findings.push({
      subject: `Lease ${ns}/${CONTROLLER}`,
      status: "warn",
      message: `held by ${holder}, not a pod of the Deployment (another controller?)`,
    });
  else if (!isReady(leaderPod))
    findings.push({
      subject: `Lease ${ns}/${CONTROLLER}`,
      status: "fail",
      message: `held by ${leaderPod.metadata?.name}, which is not Ready`,
    });
  else
    findings.push({
      subject: `Lease ${ns}/${CONTROLLER}`,
      status: "ok",
      message: `held by ${leaderPod.metadata?.name}`,
    });
  const status = worst(findings.map((f) => f.status));
  const message =
    status === "ok"
      ? `${ready.length}/${want} Ready, ${leaderPod?.metadata?.name} leading`
      : ready.length === 0
        ? `0/${want} pods Ready`
        : (findings.find((f) => f.status !== "ok")?.message ?? "");
  return { id: "controller", title, status, message, findings };
}

async function checkAgents(kube: Kube, o: DoctorOptions, state: State): Promise<CheckResult> {
  const title = "Agents";
  const ns = o.systemNamespace;
  const ds = await getOrUndefined(() =>
    kube.apps.readNamespacedDaemonSet({ name: "ms2m-agent", namespace: ns }),
  );
  if (!ds)
    return {
      id: "agents",
      title,
      status: "fail",
      message: `DaemonSet ${ns}/ms2m-agent not found: ${install}`,
    };
  const pods = (await kube.core.listNamespacedPod({ namespace: ns, labelSelector: AGENT_LABEL })).items;
  const findings: Finding[] = [];
  for (const node of state.nodes) {
    const name = node.metadata?.name ?? "";
    const onNode = pods.filter((p) => p.spec?.nodeName === name);
    const ready = onNode.find(isReady);
    if (ready) {
      state.agents.set(name, ready);
      findings.push({ subject: name, status: "ok", message: `${ready.metadata?.name} Ready` });
    } else if (!nodeReady(node)) {
      findings.push({ subject: name, status: "warn", message: "node not Ready: no migration can use it" });
    } else if (onNode.length > 0) {
      findings.push({
        subject: name,
        status: "fail",
        message: `${onNode[0]!.metadata?.name} not Ready: ${podProblem(onNode[0]!)}`,
      });
    } else {
      findings.push({
        subject: name,
        status: node.spec?.unschedulable ? "warn" : "fail",
        message: `no ms2m-agent pod (the DaemonSet's nodeSelector, affinity or tolerations leave this node out${node.spec?.unschedulable ? "; the node is cordoned" : ""}): migrations from or to it cannot checkpoint or receive`,
      });
    }
  }
  const secret = await getOrUndefined(() =>
    kube.core.readNamespacedSecret({ name: AGENT_TLS_SECRET, namespace: ns }),
  );
  if (!secret?.data?.["ca.crt"] || !secret.data["tls.crt"]) {
    findings.push({
      subject: `Secret ${ns}/${AGENT_TLS_SECRET}`,
      status: "fail",
      message: secret
        ? "lacks tls.crt or ca.crt"
        : "not found: the controller issues it once it leads (MANAGE_AGENT_TLS=true), or provide it (tls.crt, tls.key, ca.crt)",
    });
  }
  return fromFindings("agents", title, findings, `Ready on ${state.agents.size}/${state.nodes.length} nodes`);
}

/** The agents' CA and a controller token: what doctor needs to ask agents anything. */
async function openAccess(kube: Kube, o: DoctorOptions, state: State): Promise<void> {
  const ns = o.systemNamespace;
  const secret = await getOrUndefined(() =>
    kube.core.readNamespacedSecret({ name: AGENT_TLS_SECRET, namespace: ns }),
  ).catch((err: unknown) => {
    state.noAccess = `cannot read Secret ${ns}/${AGENT_TLS_SECRET} (${describeError(err)})`;
    return undefined;
  });
  if (state.noAccess) return;
  const ca = secret?.data?.["ca.crt"];
  if (!ca) {
    state.noAccess = `no agent CA (Secret ${ns}/${AGENT_TLS_SECRET})`;
    return;
  }
  let token: string | undefined;
  try {
    const res = await kube.core.createNamespacedServiceAccountToken({
      name: CONTROLLER,
      namespace: ns,
      body: { spec: { audiences: ["ms2m-agent"], expirationSeconds: 600 } },
    });
    token = res.status?.token;
  } catch (err) {
    state.noAccess = `cannot act as ${ns}/${CONTROLLER} (create serviceaccounts/token: ${describeError(err).slice(0, 200)}); run doctor with rights to do so`;
    return;
  }
  if (!token) {
    state.noAccess = `no token issued for ${ns}/${CONTROLLER}`;
    return;
  }
  state.access = new AgentAccess(kube, {
    mode: o.agentAccess,
    ca: Buffer.from(ca, "base64").toString("utf8"),
    token,
    timeoutMs: o.timeoutMs,
  });
}

/** One finding per node with a Ready agent (others: skipped, the agents check said why). */
async function perAgent(
  state: State,
  fn: (node: k8s.V1Node, pod: k8s.V1Pod, access: AgentAccess) => Promise<Finding>,
): Promise<Finding[]> {
  return Promise.all(
    state.nodes.map(async (node): Promise<Finding> => {
      const name = node.metadata?.name ?? "";
      const pod = state.agents.get(name);
      if (!pod) return { subject: name, status: "skip", message: "no Ready agent to ask" };
      if (!state.access)
        return { subject: name, status: "skip", message: state.noAccess ?? "agents cannot be asked" };
      try {
        return await fn(node, pod, state.access);
      } catch (err) {
        return {
          subject: name,
          status: "fail",
          message: `agent ${pod.metadata?.name}: ${describeError(err)}`,
        };
      }
    }),
  );
}

async function checkRuntime(state: State): Promise<CheckResult> {
  const findings = await perAgent(state, async (node, pod, access) => {
    const name = node.metadata?.name ?? "";
    const versionText = node.status?.nodeInfo?.containerRuntimeVersion;
    const endpoint = await access.endpoint(pod);
    const report = await access.client.runtime(endpoint.url, runtimeOf(parseRuntimeVersion(versionText)));
    return judgeNode(name, versionText, report);
  });
  return fromFindings(
    "runtime",
    "Checkpoint/restore runtime",
    findings,
    `every node can checkpoint and restore`,
  );
}

/** The pod doctor asks the kubelet to checkpoint: it exists nowhere, so nothing is checkpointed. */
export const PROBE_NAMESPACE = "ms2m-doctor";
export const PROBE_POD = "ms2m-doctor-no-such-pod";

/** What the agent answered to a checkpoint of a pod that does not exist, as a finding. */
export function kubeletFinding(node: string, err: unknown): Finding {
  const message = describeError(err);
  if (isMs2mError(err, "NotFound") && /pod does not exist/.test(message))
    return {
      subject: node,
      status: "ok",
      message: "the agent reached the kubelet's checkpoint API (it answered: pod does not exist)",
    };
  if (isMs2mError(err, "NotFound") && /404 page not found/.test(message))
    return {
      subject: node,
      status: "fail",
      message:
        "the kubelet has no checkpoint API: enable its ContainerCheckpoint feature gate (on by default since Kubernetes 1.30)",
    };
  if (isMs2mError(err, "NotFound") && /not configured/.test(message))
    return {
      subject: node,
      status: "fail",
      message: `${message}: set AGENT_KUBELET_URL on the agent DaemonSet`,
    };
  if (isMs2mError(err, "Forbidden"))
    return {
      subject: node,
      status: "fail",
      message: `${message} (the agent's ServiceAccount needs create on nodes/checkpoint; an agent token the kubelet cannot review also ends here)`,
    };
  if (/certificate|self.signed|CERT|SSL|TLS/i.test(message))
    return {
      subject: node,
      status: "fail",
      message: `${message}: the agent cannot verify the kubelet's serving certificate; set AGENT_KUBELET_CA_FILE (chart: agent.kubelet.caFile) to the CA that signs it`,
    };
  if (/ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|unreachable/.test(message))
    return {
      subject: node,
      status: "fail",
      message: `${message}: check the agent's AGENT_KUBELET_URL (chart: agent.kubelet.url, default https://$(NODE_IP):10250) and that the kubelet serves there`,
    };
  return { subject: node, status: "fail", message };
}

async function checkKubelet(state: State): Promise<CheckResult> {
  const findings = await perAgent(state, async (node, pod, access) => {
    const name = node.metadata?.name ?? "";
    const endpoint = await access.endpoint(pod);
    try {
      await access.client.checkpoint(endpoint.url, {
        namespace: PROBE_NAMESPACE,
        pod: PROBE_POD,
        container: "probe",
        timeoutSeconds: 10,
      });
    } catch (err) {
      return kubeletFinding(name, err);
    }
    return {
      subject: name,
      status: "fail",
      message: `the kubelet checkpointed ${PROBE_NAMESPACE}/${PROBE_POD}, which should not exist`,
    };
  });
  return fromFindings(
    "kubelet",
    "Kubelet checkpoint API",
    findings,
    "every node's kubelet answers the agent",
  );
}

async function checkRbac(kube: Kube, o: DoctorOptions): Promise<CheckResult> {
  const authz = kube.kc.makeApiClient(k8s.AuthorizationV1Api);
  const results = await Promise.all(
    requiredPermissions.map(async (p) => {
      const res = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user: `system:serviceaccount:${o.systemNamespace}:${p.serviceAccount}`,
            groups: [
              "system:serviceaccounts",
              `system:serviceaccounts:${o.systemNamespace}`,
              "system:authenticated",
            ],
            resourceAttributes: {
              verb: p.verb,
              group: p.group,
              resource: p.resource,
              ...(p.subresource ? { subresource: p.subresource } : {}),
              ...(p.name ? { name: p.name } : {}),
              ...(p.scope === "system" ? { namespace: o.systemNamespace } : {}),
            },
          },
        },
      });
      return { p, allowed: Boolean(res.status?.allowed) };
    }),
  );
  const denied = results.filter((r) => !r.allowed);
  const findings: Finding[] = denied.map(({ p }) => ({
    subject: `${o.systemNamespace}/${p.serviceAccount}`,
    status: "fail",
    message: `may not ${describePermission(p, o.systemNamespace)} (needed ${p.why})`,
  }));
  if (denied.length === 0)
    return {
      id: "rbac",
      title: "RBAC",
      status: "ok",
      message: `ms2m's ServiceAccounts have the ${results.length} permissions they need`,
    };
  return {
    id: "rbac",
    title: "RBAC",
    status: "fail",
    message: `${denied.length} of ${results.length} permissions missing (re-apply config/rbac or the chart)`,
    findings,
  };
}

async function checkBroker(kube: Kube, o: DoctorOptions): Promise<CheckResult> {
  const title = "Broker";
  if (!o.brokerSecret)
    return {
      id: "broker",
      title,
      status: "skip",
      message: "not checked: give --broker-secret NAME[:KEY] (in -n NAMESPACE), as migrations name it",
    };
  const [name, key = "url"] = o.brokerSecret.split(":");
  const subject = `Secret ${o.namespace}/${name}`;
  const findings: Finding[] = [];
  const secret = await getOrUndefined(() =>
    kube.core.readNamespacedSecret({ name: name!, namespace: o.namespace }),
  );
  const raw = secret?.data?.[key];
  if (!secret) findings.push({ subject, status: "fail", message: "not found" });
  else if (!raw)
    findings.push({
      subject,
      status: "fail",
      message: `has no key ${key} (keys: ${Object.keys(secret.data ?? {}).join(", ") || "none"})`,
    });
  const authz = kube.kc.makeApiClient(k8s.AuthorizationV1Api);
  const review = await authz.createSubjectAccessReview({
    body: {
      spec: {
        user: `system:serviceaccount:${o.systemNamespace}:${CONTROLLER}`,
        groups: [
          "system:serviceaccounts",
          `system:serviceaccounts:${o.systemNamespace}`,
          "system:authenticated",
        ],
        resourceAttributes: { verb: "get", resource: "secrets", name: name!, namespace: o.namespace },
      },
    },
  });
  findings.push(
    review.status?.allowed
      ? {
          subject: "controller access",
          status: "ok",
          message: `${o.systemNamespace}/${CONTROLLER} may read it`,
        }
      : {
          subject: "controller access",
          status: "fail",
          message:
            `${o.systemNamespace}/${CONTROLLER} may not read it: kubectl -n ${o.namespace} create rolebinding ms2m-broker-secret-reader ` +
            `--clusterrole=ms2m-broker-secret-reader --serviceaccount=${o.systemNamespace}:${CONTROLLER}`,
        },
  );
  if (raw)
    findings.push(
      await brokerFinding("connection", Buffer.from(raw, "base64").toString("utf8").trim(), o.timeoutMs),
    );
  return fromFindings(
    "broker",
    title,
    findings,
    `${subject}: readable by the controller, the broker answers`,
  );
}

export async function runDoctor(kube: Kube, o: DoctorOptions): Promise<DoctorReport> {
  const checks: CheckResult[] = [];
  const guard = async (id: string, title: string, fn: () => Promise<CheckResult>) => {
    try {
      checks.push(await fn());
    } catch (err) {
      checks.push({ id, title, status: "fail", message: `could not check: ${describeError(err)}` });
    }
  };
  const state: State = { nodes: [], agents: new Map() };
  try {
    state.nodes = (await kube.core.listNode()).items.sort((a, b) =>
      (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""),
    );
  } catch (err) {
    return {
      ok: false,
      checks: [
        {
          id: "api",
          title: "Kubernetes API",
          status: "fail",
          message: `cannot list nodes: ${describeError(err)}`,
        },
      ],
    };
  }
  await guard("crd", "CustomResourceDefinition", () => checkCrd(kube));
  await guard("controller", "Controller", () => checkController(kube, o));
  await guard("agents", "Agents", () => checkAgents(kube, o, state));
  try {
    await openAccess(kube, o, state);
    await guard("runtime", "Checkpoint/restore runtime", () => checkRuntime(state));
    if (!o.skip?.includes("kubelet"))
      await guard("kubelet", "Kubelet checkpoint API", () => checkKubelet(state));
  } finally {
    await state.access?.close();
  }
  await guard("rbac", "RBAC", () => checkRbac(kube, o));
  await guard("broker", "Broker", () => checkBroker(kube, o));
  return { ok: checks.every((c) => c.status !== "fail"), checks };
}
