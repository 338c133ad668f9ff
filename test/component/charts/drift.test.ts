// One source of truth for the manifests: config/ (kustomize) is what the repository's tests and
// `make deploy` install; the Helm chart (charts/ms2m) must install the same objects.
//  - Everything without values the chart takes from config/ and crd/ through links (files/): the
//    CRDs, ServiceAccounts and RBAC (as their kustomization.yaml lists them), the node-proxy role,
//    the alert rules and the dashboard. They cannot drift; this test proves the chart reads them.
//  - The objects with values (controller Deployment, agent DaemonSet, metrics Services,
//    ServiceMonitor) are templates: rendered with the default values they must equal
//    `kubectl kustomize config/default` after normalisation (Helm's own labels removed, the
//    Namespace left out: Helm installs into the release namespace). The failure names each field
//    that differs.
// The real helm (hack/build-helm.sh) and the real kubectl kustomize.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { controlPlaneBinaries } from "../../../tooling/cluster/binaries.ts";
import { CHART_DIR, helmOk } from "../../../tooling/helm.ts";
import { run } from "../../../tooling/exec.ts";
import { repoPath } from "../../../tooling/stack/manifests.ts";

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [k: string]: unknown;
};

const NS = "ms2m-system";
const HELM_LABELS = [
  "helm.sh/chart",
  "app.kubernetes.io/managed-by",
  "app.kubernetes.io/instance",
  "app.kubernetes.io/version",
];

let work: string;
let kubectl: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ms2m-chart-drift-"));
  kubectl = `${(await controlPlaneBinaries()).kubeBin}/kubectl`;
}, 600_000);
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const docs = (text: string): Obj[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => Boolean(o?.kind));

async function chart(set: string[] = []): Promise<Obj[]> {
  // `--set-string` for node labels: `true` would be a boolean.
  const flag = (s: string) => (s.includes("nodeSelector") ? "--set-string" : "--set");
  const args = ["template", "ms2m", CHART_DIR, "-n", NS, ...set.flatMap((s) => [flag(s), s])];
  return docs(await helmOk(args));
}

async function kustomize(dir: string): Promise<Obj[]> {
  return docs(await run(kubectl, ["kustomize", dir]));
}

/** config/default plus components, through a throwaway overlay (kustomize wants relative paths). */
async function kustomizeWith(components: string[]): Promise<Obj[]> {
  const dir = await mkdtemp(join(work, "overlay-"));
  const rel = (p: string) => relative(dir, repoPath(p));
  await writeFile(
    join(dir, "kustomization.yaml"),
    [
      "apiVersion: kustomize.config.k8s.io/v1beta1",
      "kind: Kustomization",
      "resources:",
      `  - ${rel("config/default")}`,
      "components:",
      ...components.map((c) => `  - ${rel(c)}`),
      "",
    ].join("\n"),
  );
  return kustomize(dir);
}

const keyOf = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
const isHook = (o: Obj) => Boolean(o.metadata.annotations?.["helm.sh/hook"]);

/** Without Helm's labels (on objects and pod templates) and the chart's documented additions. */
function normalise(o: Obj, options: { partOf?: boolean } = {}): Obj {
  const c = structuredClone(o);
  const strip = (labels: Record<string, string> | undefined) => {
    if (!labels) return undefined;
    for (const l of HELM_LABELS) delete labels[l];
    if (options.partOf === false) delete labels["app.kubernetes.io/part-of"];
    return Object.keys(labels).length ? labels : undefined;
  };
  const labels = strip(c.metadata.labels);
  if (labels) c.metadata.labels = labels;
  else delete c.metadata.labels;
  const template = (c.spec as { template?: { metadata?: { labels?: Record<string, string> } } } | undefined)
    ?.template;
  if (template?.metadata?.labels) template.metadata.labels = strip(template.metadata.labels) ?? {};
  return c;
}

/**
 * The chart's one addition to config/default's controller: TRANSFER_JOB_IMAGE (the transfer Jobs
 * run the agent image; kustomize's images transformer cannot write an image into an env value).
 * Removed here after checking that it names the agent's image.
 */
function withoutTransferJobImage(objects: Obj[]): Obj[] {
  return objects.map((o) => {
    if (o.kind !== "Deployment" || o.metadata.name !== "ms2m-controller") return o;
    const c = structuredClone(o) as Obj & {
      spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
    };
    const container = c.spec.template.spec.containers[0]!;
    const agent = objects.find((x) => x.kind === "DaemonSet") as
      { spec: { template: { spec: { containers: { image: string }[] } } } } | undefined;
    const env = container.env.find((e) => e.name === "TRANSFER_JOB_IMAGE");
    expect(env?.value, "the controller's TRANSFER_JOB_IMAGE is the agent image").toBe(
      agent?.spec.template.spec.containers[0]!.image,
    );
    container.env = container.env.filter((e) => e.name !== "TRANSFER_JOB_IMAGE");
    return c;
  });
}

/** Each path at which a and b differ, e.g. `spec.template.spec.containers[0].env[3].value: "a" != "b"`. */
function differences(a: unknown, b: unknown, path = ""): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (Array.isArray(a) && Array.isArray(b)) {
    const out: string[] = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++)
      out.push(...differences(a[i], b[i], `${path}[${i}]`));
    return out;
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) =>
      differences(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        path ? `${path}.${k}` : k,
      ),
    );
  }
  if (typeof a === "string" && typeof b === "string") {
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    const at = (s: string) => JSON.stringify(s.slice(Math.max(0, i - 20), i + 60));
    return [`${path}: strings differ at character ${i}: chart …${at(a)}… != config …${at(b)}…`];
  }
  const show = (v: unknown) => (v === undefined ? "(absent)" : JSON.stringify(v).slice(0, 160));
  return [`${path}: chart ${show(a)} != config ${show(b)}`];
}

/** Fails with every object and field that differs (chart vs config). */
function expectSame(chartObjects: Obj[], configObjects: Obj[], options: { partOf?: boolean } = {}): void {
  const c = new Map(chartObjects.map((o) => [keyOf(o), normalise(o, options)]));
  const k = new Map(configObjects.map((o) => [keyOf(o), normalise(o, options)]));
  const problems: string[] = [];
  for (const key of new Set([...c.keys(), ...k.keys()])) {
    if (!c.has(key)) problems.push(`${key}: in config/, not rendered by the chart`);
    else if (!k.has(key)) problems.push(`${key}: rendered by the chart, not in config/`);
    else problems.push(...differences(c.get(key), k.get(key)).map((d) => `${key}: ${d}`));
  }
  expect(
    problems,
    `charts/ms2m drifted from config/ (fix the template or config/):\n${problems.join("\n")}`,
  ).toEqual([]);
}

describe("the chart with its default values renders config/default", () => {
  it("every object, field for field (but the Namespace and Helm's labels)", async () => {
    const rendered = await chart();
    const config = (await kustomize(repoPath("config/default"))).filter((o) => o.kind !== "Namespace");
    // The post-delete cleanup hook is the chart's own (helm uninstall), not an object of config/.
    const hooks = rendered.filter(isHook);
    expect(hooks.map(keyOf).sort()).toEqual(
      [
        "ConfigMap/ms2m-system/ms2m-uninstall",
        "Job/ms2m-system/ms2m-uninstall",
        "Role/ms2m-system/ms2m-uninstall",
        "RoleBinding/ms2m-system/ms2m-uninstall",
        "ServiceAccount/ms2m-system/ms2m-uninstall",
      ].sort(),
    );
    expectSame(withoutTransferJobImage(rendered.filter((o) => !isHook(o))), config);
    // Every object of the release carries part-of and Helm's labels.
    for (const o of rendered) expect(o.metadata.labels?.["app.kubernetes.io/part-of"], keyOf(o)).toBe("ms2m");
  });

  it("takes every CRD of crd/ as `make manifests` generated it, in the release", async () => {
    const rendered = (await chart()).filter((o) => o.kind === "CustomResourceDefinition");
    const crdKustomization = parse(await readFile(repoPath("crd/kustomization.yaml"), "utf8")) as {
      resources: string[];
    };
    const generated = (
      await Promise.all(
        crdKustomization.resources.map(async (f) => docs(await readFile(repoPath(`crd/${f}`), "utf8"))),
      )
    ).flat();
    expect(rendered.map((o) => o.metadata.name).sort()).toEqual(generated.map((o) => o.metadata.name).sort());
    for (const crd of generated) {
      const mine = normalise(
        rendered.find((o) => o.metadata.name === crd.metadata.name)!,
        { partOf: false },
      );
      expect(mine).toEqual(normalise(crd, { partOf: false }));
    }
    // crds.keep: the CRDs outlive the release.
    for (const o of (await chart(["crds.keep=true"])).filter((x) => x.kind === "CustomResourceDefinition"))
      expect(o.metadata.annotations?.["helm.sh/resource-policy"]).toBe("keep");
    expect(
      (await chart(["crds.install=false"])).filter((x) => x.kind === "CustomResourceDefinition"),
    ).toEqual([]);
  });
});

describe("the chart's options render config/'s optional parts", () => {
  it("checkpointMode=auto: config/default + components/node-proxy-fallback (nodes/proxy, CHECKPOINT_MODE)", async () => {
    const rendered = withoutTransferJobImage(
      (await chart(["controller.checkpointMode=auto"])).filter((o) => !isHook(o)),
    );
    const config = (await kustomizeWith(["config/components/node-proxy-fallback"])).filter(
      (o) => o.kind !== "Namespace",
    );
    // The component's objects are not labelled by config/default's label transformer.
    expectSame(rendered, config, { partOf: false });
    expect((await chart()).some((o) => JSON.stringify(o).includes("nodes/proxy"))).toBe(false);
  });

  it("metrics.serviceMonitor and metrics.prometheusRule: config/prometheus", async () => {
    const kinds = ["ServiceMonitor", "PrometheusRule"];
    const rendered = (
      await chart(["metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"])
    ).filter((o) => kinds.includes(o.kind));
    const config = (await kustomize(repoPath("config/prometheus"))).filter((o) => kinds.includes(o.kind));
    expect(rendered).toHaveLength(2);
    // config/prometheus labels nothing of its own.
    expectSame(rendered, config, { partOf: false });
    const labelled = await chart([
      "metrics.serviceMonitor.enabled=true",
      "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
    ]);
    expect(labelled.find((o) => o.kind === "ServiceMonitor")?.metadata.labels?.release).toBe(
      "kube-prometheus-stack",
    );
  });

  it("grafana.dashboard: config/grafana's ConfigMap, the dashboard JSON byte for byte", async () => {
    const rendered = (await chart(["grafana.dashboard.enabled=true"])).filter(
      (o) => o.kind === "ConfigMap" && !isHook(o),
    );
    const config = await kustomize(repoPath("config/grafana"));
    expectSame(rendered, config, { partOf: false });
    const data = (rendered[0] as unknown as { data: Record<string, string> }).data["ms2m-dashboard.json"];
    expect(JSON.parse(data!)).toEqual(
      JSON.parse(await readFile(repoPath("config/grafana/ms2m-dashboard.json"), "utf8")),
    );
  });
});

describe("values reach the fields they name", () => {
  type Pod = {
    spec: {
      template: {
        metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
        spec: {
          nodeSelector?: Record<string, string>;
          tolerations?: unknown[];
          imagePullSecrets?: { name: string }[];
          containers: {
            image: string;
            imagePullPolicy: string;
            env: { name: string; value?: string }[];
            resources?: unknown;
            volumeMounts: { name: string; mountPath: string }[];
          }[];
        };
      };
      replicas?: number;
    };
  };
  const find = (objects: Obj[], kind: string) =>
    objects.find((o) => o.kind === kind && !isHook(o)) as unknown as Pod;
  const env = (p: Pod) =>
    Object.fromEntries(p.spec.template.spec.containers[0]!.env.map((e) => [e.name, e.value]));

  it("images, checkpoint mode, transfer runner, node selection, resources, log level", async () => {
    const objects = await chart([
      "controller.image.repository=registry.example/ms2m/controller",
      "controller.image.tag=1.2.3",
      "agent.image.repository=registry.example/ms2m/agent",
      `agent.image.digest=sha256:${"a".repeat(64)}`,
      "controller.checkpointMode=node-proxy",
      "controller.transferRunner=job",
      "controller.manageAgentTLS=false",
      "controller.logLevel=debug",
      "controller.replicas=2",
      "controller.nodeSelector.role=infra",
      "controller.resources.limits.memory=1Gi",
      "agent.nodeSelector.ms2m\\.io/migratable=true",
      "agent.logLevel=warn",
      "agent.kubelet.caFile=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
      "agent.insecureRegistries={10.0.0.1:5000}",
      "agent.storage.graphRoot=/data/containers",
      "imagePullSecrets[0].name=pull",
    ]);
    const controller = find(objects, "Deployment");
    const agent = find(objects, "DaemonSet");
    expect(controller.spec.replicas).toBe(2);
    expect(controller.spec.template.spec.containers[0]!.image).toBe("registry.example/ms2m/controller:1.2.3");
    expect(agent.spec.template.spec.containers[0]!.image).toBe(
      `registry.example/ms2m/agent@sha256:${"a".repeat(64)}`,
    );
    expect(env(controller)).toMatchObject({
      CHECKPOINT_MODE: "node-proxy",
      MS2M_TRANSFER_RUNNER: "job",
      MANAGE_AGENT_TLS: "false",
      LOG_LEVEL: "debug",
      TRANSFER_JOB_IMAGE: `registry.example/ms2m/agent@sha256:${"a".repeat(64)}`,
    });
    expect(controller.spec.template.spec.nodeSelector).toEqual({ role: "infra" });
    expect(controller.spec.template.spec.containers[0]!.resources).toEqual({
      requests: { cpu: "50m", memory: "96Mi" },
      limits: { memory: "1Gi" },
    });
    expect(controller.spec.template.spec.imagePullSecrets).toEqual([{ name: "pull" }]);
    expect(agent.spec.template.spec.nodeSelector).toEqual({ "ms2m.io/migratable": "true" });
    expect(env(agent)).toMatchObject({
      LOG_LEVEL: "warn",
      AGENT_KUBELET_CA_FILE: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
      AGENT_INSECURE_REGISTRIES: "10.0.0.1:5000",
      AGENT_STORAGE_GRAPHROOT: "/data/containers",
    });
    expect(agent.spec.template.spec.containers[0]!.volumeMounts).toContainEqual({
      name: "storage-graph",
      mountPath: "/data/containers",
    });
    // node-proxy grants nodes/proxy, as the component does.
    expect(
      objects.some((o) => o.kind === "ClusterRole" && o.metadata.name === "ms2m-controller-node-proxy"),
    ).toBe(true);
  });

  it("refuses values the controller would refuse (values.schema.json)", async () => {
    await expect(chart(["controller.checkpointMode=sometimes"])).rejects.toThrow(/checkpointMode/);
    await expect(chart(["controller.transferRunner=ftp"])).rejects.toThrow(/transferRunner/);
    await expect(chart(["agent.kubelet.url=http://insecure:10255"])).rejects.toThrow(/kubelet/);
    await expect(chart(["controller.imge.tag=x"])).rejects.toThrow(/imge/);
  });
});

it("one version everywhere: package.json, Chart.yaml (version, appVersion), config/default's images, the Makefile", async () => {
  const pkg = JSON.parse(await readFile(repoPath("package.json"), "utf8")) as { version: string };
  const chartYaml = parse(await readFile(join(CHART_DIR, "Chart.yaml"), "utf8")) as {
    version: string;
    appVersion: string;
  };
  const kustomization = parse(await readFile(repoPath("config/default/kustomization.yaml"), "utf8")) as {
    images: { newTag: string }[];
  };
  const makefile = await readFile(repoPath("Makefile"), "utf8");
  expect(chartYaml.version).toBe(pkg.version);
  expect(chartYaml.appVersion).toBe(pkg.version);
  for (const i of kustomization.images) expect(i.newTag).toBe(pkg.version);
  expect(/^VERSION \?= (.*)$/m.exec(makefile)?.[1]).toBe(pkg.version);
});
