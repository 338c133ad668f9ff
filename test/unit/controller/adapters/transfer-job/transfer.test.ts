import { describe, expect, it } from "vitest";
import { parseEnv } from "../../../../../src/common/config.ts";
import { Ms2mError } from "../../../../../src/common/errors.ts";
import {
  RoutedTransfer,
  type JobTransfer,
} from "../../../../../src/controller/adapters/transfer-job/transfer.ts";
import { controllerEnv } from "../../../../../src/controller/config.ts";
import type { ArtifactRef, CleanupReport, TransferPort } from "../../../../../src/controller/ports.ts";
import {
  buildCleanupJob,
  buildTransferJob,
  cleanupJobName,
  transferJobName,
  transferJobSettingsFrom,
  type CleanupJobInput,
  type TransferJobSettings,
} from "../../../../../src/controller/adapters/transfer-job/jobs.ts";
import {
  cleanupRequestSchema,
  encodeCleanupJobResult,
  parseCleanupJobResult,
  parseSendJobResult,
  type CleanupRequest,
} from "../../../../../src/transfer/job.ts";
import type { SendRequest } from "../../../../../src/transfer/types.ts";

const uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const settings: TransferJobSettings = {
  namespace: "ms2m-system",
  image: "ghcr.io/ms2m/ms2m-agent:0.1.0",
  serviceAccountName: "ms2m-transfer",
  caSecretName: "ms2m-agent-tls",
  insecureRegistries: [],
  ttlSecondsAfterFinished: 600,
  backoffLimit: 0,
  activeDeadlineSeconds: 300,
  checkpointsDir: "/var/lib/kubelet/checkpoints",
};
const archive = "/var/lib/kubelet/checkpoints/checkpoint-web-0_shop-app-2025-01-01T00:00:00Z.tar";
const direct: SendRequest = {
  migration: uid,
  namespace: "shop",
  pod: "web-0",
  container: "app",
  archive,
  destination: {
    type: "agent",
    url: "https://198.51.100.3:9443",
    image: "localhost/ms2m-checkpoint/shop-web-0:app-0f1e",
  },
};
const registry: SendRequest = {
  ...direct,
  destination: { type: "registry", image: "reg.example:5000/ckpt:app-0f1e" },
};
const build = (request: SendRequest, s: Partial<TransferJobSettings> = {}) =>
  buildTransferJob(
    { migrationUid: uid, source: "shop/web-0", sourceNode: "node-a", request },
    { ...settings, ...s },
  );

describe("transfer Job spec", () => {
  it("is named from the migration UID and container, a DNS label of at most 63", () => {
    expect(transferJobName(uid, "app")).toBe("ms2m-transfer-0f1e2d3c4b5a-app");
    const long = transferJobName(uid, "a".repeat(63));
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(transferJobName(uid, "a".repeat(63))).toBe(long);
    expect(transferJobName(uid, `${"a".repeat(62)}b`)).not.toBe(long);
  });

  it("is pinned to the source node, never restarts, fails fast and expires", () => {
    const job = build(direct);
    expect(job.metadata?.namespace).toBe("ms2m-system");
    expect(job.metadata?.labels?.["migration.ms2m.io/migration-uid"]).toBe(uid);
    const spec = job.spec!;
    expect(spec.backoffLimit).toBe(0);
    expect(spec.activeDeadlineSeconds).toBe(300);
    expect(spec.ttlSecondsAfterFinished).toBe(600);
    const pod = spec.template.spec!;
    expect(pod.nodeName).toBe("node-a");
    expect(pod.restartPolicy).toBe("Never");
    expect(pod.serviceAccountName).toBe("ms2m-transfer");
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.hostNetwork).toBeUndefined();
    expect(pod.hostPID).toBeUndefined();
    expect(spec.template.metadata?.labels?.["migration.ms2m.io/migration-uid"]).toBe(uid);
  });

  it("mounts the checkpoints folder read-only and nothing else from the host", () => {
    const pod = build(direct).spec!.template.spec!;
    const hostPaths = (pod.volumes ?? []).filter((v) => v.hostPath);
    expect(hostPaths).toEqual([
      { name: "checkpoints", hostPath: { path: "/var/lib/kubelet/checkpoints", type: "Directory" } },
    ]);
    const c = pod.containers[0]!;
    expect(c.volumeMounts?.find((m) => m.name === "checkpoints")).toEqual({
      name: "checkpoints",
      mountPath: "/var/lib/kubelet/checkpoints",
      readOnly: true,
    });
    expect(c.volumeMounts?.every((m) => m.readOnly)).toBe(true);
  });

  it("runs without privilege: no capabilities, read-only root, no escalation, RuntimeDefault seccomp", () => {
    const pod = build(direct).spec!.template.spec!;
    const sc = pod.containers[0]!.securityContext!;
    expect(sc.privileged).toBe(false);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(sc.capabilities).toEqual({ drop: ["ALL"] });
    expect(pod.securityContext?.seccompProfile?.type).toBe("RuntimeDefault");
  });

  it("runs the agent image's send subcommand with the request in the environment, no secret in args or env", () => {
    const c = build(direct).spec!.template.spec!.containers[0]!;
    expect(c.image).toBe(settings.image);
    expect(c.command).toBeUndefined();
    expect(c.args).toEqual(["send"]);
    expect(c.terminationMessagePath).toBe("/dev/termination-log");
    expect(c.terminationMessagePolicy).toBe("File");
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
    expect(JSON.parse(env.SEND_REQUEST as string)).toEqual(direct);
    expect(env.SEND_RESULT_FILE).toBe("/dev/termination-log");
    expect(env.AGENT_TLS_CA_FILE).toBe("/etc/ms2m/tls/ca.crt");
    expect(env.NODE_NAME).toEqual({ fieldRef: { fieldPath: "spec.nodeName" } });
    expect((c.env ?? []).some((e) => e.valueFrom?.secretKeyRef)).toBe(false);
    const values = JSON.stringify(c.args) + JSON.stringify((c.env ?? []).map((e) => e.value ?? ""));
    expect(values).not.toMatch(/password|BEGIN |eyJ|Bearer/i);
  });

  it("Direct: a token for the agents' audience and only the CA of the agents' Secret", () => {
    const pod = build(direct).spec!.template.spec!;
    const token = pod.volumes?.find((v) => v.name === "ms2m-token");
    expect(token?.projected?.sources?.[0]?.serviceAccountToken?.audience).toBe("ms2m-agent");
    const ca = pod.volumes?.find((v) => v.name === "agent-ca");
    expect(ca?.secret?.secretName).toBe("ms2m-agent-tls");
    expect(ca?.secret?.items).toEqual([{ key: "ca.crt", path: "ca.crt" }]);
  });

  it("Registry: no agent CA; insecure registries and the registry Secret when configured", () => {
    const plain = build(registry).spec!.template.spec!;
    expect(plain.volumes?.some((v) => v.name === "agent-ca")).toBe(false);
    const withSecret = build(registry, {
      insecureRegistries: ["198.51.100.1:5000"],
      registrySecretName: "reg",
    }).spec!.template.spec!;
    const env = Object.fromEntries((withSecret.containers[0]!.env ?? []).map((e) => [e.name, e.value]));
    expect(env.AGENT_INSECURE_REGISTRIES).toBe("198.51.100.1:5000");
    expect(env.AGENT_REGISTRY_CREDENTIALS_FILE).toBe("/etc/ms2m/registry/credentials");
    expect(withSecret.volumes?.find((v) => v.name === "registry")?.secret?.secretName).toBe("reg");
  });

  it("controller settings come from the validated environment", () => {
    const e = parseEnv("ms2m-controller", controllerEnv, {
      MS2M_TRANSFER_RUNNER: "job",
      TRANSFER_JOB_INSECURE_REGISTRIES: "a:5000, b:5000",
      TRANSFER_TIMEOUT_SECONDS: "90",
    });
    expect(e.MS2M_TRANSFER_RUNNER).toBe("job");
    const s = transferJobSettingsFrom(e);
    expect(s).toMatchObject({
      namespace: "ms2m-system",
      serviceAccountName: "ms2m-transfer",
      insecureRegistries: ["a:5000", "b:5000"],
      activeDeadlineSeconds: 90,
      backoffLimit: 0,
    });
    expect(parseEnv("ms2m-controller", controllerEnv, {}).MS2M_TRANSFER_RUNNER).toBe("auto");
    expect(() => parseEnv("ms2m-controller", controllerEnv, { MS2M_TRANSFER_RUNNER: "ssh" })).toThrow(
      /MS2M_TRANSFER_RUNNER/,
    );
  });

  it("reads the Job's termination message, and nothing else", () => {
    const ok = {
      ok: true,
      result: { image: "x/y:z", digest: `sha256:${"a".repeat(64)}`, size: 10, seconds: 0.1 },
    };
    expect(parseSendJobResult(JSON.stringify(ok))).toEqual(ok);
    const bad = { ok: false, reason: "Forbidden", message: "no", retriable: false };
    expect(parseSendJobResult(JSON.stringify(bad))).toEqual(bad);
    expect(parseSendJobResult("")).toBeUndefined();
    expect(parseSendJobResult("Error: boom")).toBeUndefined();
    expect(parseSendJobResult(JSON.stringify({ ok: true }))).toBeUndefined();
  });
});

describe("Transferring with a transfer Job", () => {
  it("waits for the Job (no error, no backoff), records one Event, then completes", async () => {
    const { setup, drive } = await import("../../scenario.ts");
    const { TransferInProgress } =
      await import("../../../../../src/controller/adapters/transfer-job/jobs.ts");
    const w = setup("Deployment");
    const real = w.transfer.transfer.bind(w.transfer);
    const calls = new Map<string, number>();
    w.transfer.transfer = async (req) => {
      const n = (calls.get(req.key) ?? 0) + 1;
      calls.set(req.key, n);
      if (n < 4) throw new TransferInProgress("ms2m-transfer-x-app", n === 1, "running");
      return real(req);
    };
    const waits: (number | undefined)[] = [];
    const reconcile = w.reconciler.reconcile.bind(w.reconciler);
    w.reconciler.reconcile = async (req, scope) => {
      const r = await reconcile(req, scope);
      if (w.cluster.migrations.get("default/mig")?.status?.phase === "Transferring")
        waits.push(r.requeueAfterMs);
      return r;
    };
    const errors = await drive(w);
    expect(errors).toEqual([]);
    expect(w.cluster.migrations.get("default/mig")?.status?.phase).toBe("Completed");
    expect(waits.length).toBeGreaterThanOrEqual(3);
    expect(waits.every((ms) => ms !== undefined && ms <= 5000)).toBe(true);
    expect(w.events.reasons().filter((r) => r === "TransferJobStarted")).toHaveLength(1);
  });

  it("cleanup handed to Jobs: a Normal Event each, the artifacts name their pod and container", async () => {
    const { setup, drive } = await import("../../scenario.ts");
    const w = setup("Deployment");
    const seen: ArtifactRef[] = [];
    (w.transfer as TransferPort).cleanup = (artifacts) => {
      seen.push(...artifacts);
      return Promise.resolve({
        warnings: [],
        started: ["Job ms2m-cleanup-x-node-a deletes checkpoint archive a"],
      });
    };
    expect(await drive(w)).toEqual([]);
    expect(w.cluster.migrations.get("default/mig")?.status?.phase).toBe("Completed");
    const cleanupEvents = w.events.events.filter((e) => e.reason === "CheckpointCleanupJob");
    expect(cleanupEvents[0]).toEqual({
      type: "Normal",
      reason: "CheckpointCleanupJob",
      message: "Job ms2m-cleanup-x-node-a deletes checkpoint archive a",
    });
    expect(w.events.reasons()).not.toContain("CheckpointArtifactKept");
    const m = w.cluster.migrations.get("default/mig")!;
    expect(seen.length).toBeGreaterThan(0);
    for (const a of seen) {
      expect(a.namespace).toBe("default");
      expect(a.pod).toBe(m.spec.sourcePod);
      expect(m.status?.containers?.map((c) => c.name)).toContain(a.container);
    }
  });

  it("a refusal from the Job fails the migration with TransferFailed and rolls back", async () => {
    const { setup, drive } = await import("../../scenario.ts");
    const { Ms2mError } = await import("../../../../../src/common/errors.ts");
    const w = setup("Deployment");
    w.transfer.transfer = () =>
      Promise.reject(
        new Ms2mError("Forbidden", "transfer Job j on node-a failed: Forbidden: registry push: HTTP 403", {
          retriable: false,
        }),
      );
    await drive(w);
    const m = w.cluster.migrations.get("default/mig");
    expect(m?.status?.phase).toBe("Failed");
    expect(m?.status?.failure).toMatchObject({ phase: "Transferring", reason: "TransferFailed" });
    expect(m?.status?.failure?.message).toContain("HTTP 403");
    expect(w.transfer.cleaned.length).toBeGreaterThan(0);
  });
});

const request = (r: Partial<CleanupRequest> = {}): CleanupRequest => ({
  migration: uid,
  namespace: "shop",
  pod: "web-0",
  archives: [],
  registryImages: [],
  ...r,
});
const cleanupSettings: TransferJobSettings = {
  ...settings,
  registrySecretName: "reg",
  insecureRegistries: ["198.51.100.1:5000"],
  cleanupTtlSecondsAfterFinished: 120,
};
const buildCleanup = (input: Partial<CleanupJobInput>, s: Partial<TransferJobSettings> = {}) =>
  buildCleanupJob(
    { migrationUid: uid, source: "shop/web-0", request: request(), ...input },
    { ...cleanupSettings, ...s },
  );
const sendJob = () =>
  buildTransferJob(
    {
      migrationUid: uid,
      source: "shop/web-0",
      sourceNode: "node-a",
      request: {
        migration: uid,
        namespace: "shop",
        pod: "web-0",
        container: "app",
        archive,
        destination: { type: "registry", image: "198.51.100.1:5000/ckpt:app-0f1e" },
      },
    },
    cleanupSettings,
  );
const archivesJob = () =>
  buildCleanup({ node: "node-a", request: request({ archives: [{ container: "app", archive }] }) });
const imagesJob = () =>
  buildCleanup({ request: request({ registryImages: [{ image: "198.51.100.1:5000/ckpt:app-0f1e" }] }) });
const envOf = (job: ReturnType<typeof build>) =>
  Object.fromEntries(
    (job.spec!.template.spec!.containers[0]!.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]),
  );

describe("cleanup Job spec", () => {
  it("is named per migration and node, a DNS label of at most 63, distinct from the send Jobs", () => {
    expect(cleanupJobName(uid)).toBe("ms2m-cleanup-0f1e2d3c4b5a");
    expect(cleanupJobName(uid, "node-a")).toBe("ms2m-cleanup-0f1e2d3c4b5a-node-a");
    for (const node of ["n".repeat(253), "worker-1.example.com", "a.b", "a-b"]) {
      const name = cleanupJobName(uid, node);
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      expect(cleanupJobName(uid, node)).toBe(name);
    }
    expect(cleanupJobName(uid, "a.b")).not.toBe(cleanupJobName(uid, "a-b"));
    expect(cleanupJobName(uid, `${"n".repeat(252)}m`)).not.toBe(cleanupJobName(uid, "n".repeat(253)));
    expect(cleanupJobName(uid, "app")).not.toBe(transferJobName(uid, "app"));
    expect(archivesJob().metadata?.name).toBe("ms2m-cleanup-0f1e2d3c4b5a-node-a");
    expect(imagesJob().metadata?.name).toBe("ms2m-cleanup-0f1e2d3c4b5a");
  });

  it("carries the migration UID but another component than the send Jobs (whose selector skips it)", () => {
    const cleanup = archivesJob().metadata!.labels!;
    const send = sendJob().metadata!.labels!;
    expect(cleanup["migration.ms2m.io/migration-uid"]).toBe(uid);
    expect(send["migration.ms2m.io/migration-uid"]).toBe(uid);
    expect(send["app.kubernetes.io/component"]).toBe("transfer");
    expect(cleanup["app.kubernetes.io/component"]).toBe("cleanup");
    expect(archivesJob().spec?.template.metadata?.labels?.["app.kubernetes.io/component"]).toBe("cleanup");
  });

  it("mounts the checkpoints folder read-write only in the cleanup Job; the send Job's stays read-only", () => {
    const pod = archivesJob().spec!.template.spec!;
    expect(pod.nodeName).toBe("node-a");
    expect(pod.volumes?.filter((v) => v.hostPath)).toEqual([
      { name: "checkpoints", hostPath: { path: "/var/lib/kubelet/checkpoints", type: "Directory" } },
    ]);
    const mounts = pod.containers[0]!.volumeMounts ?? [];
    expect(mounts).toEqual([
      { name: "checkpoints", mountPath: "/var/lib/kubelet/checkpoints", readOnly: false },
    ]);
    const send = sendJob().spec!.template.spec!.containers[0]!;
    expect(send.volumeMounts?.find((m) => m.name === "checkpoints")?.readOnly).toBe(true);
    expect(send.volumeMounts?.every((m) => m.readOnly)).toBe(true);
  });

  it("runs without privilege, no API token, no agent token or CA, and expires", () => {
    for (const job of [archivesJob(), imagesJob()]) {
      const pod = job.spec!.template.spec!;
      const c = pod.containers[0]!;
      expect(c.securityContext).toEqual({
        runAsUser: 0,
        privileged: false,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      });
      expect(pod.securityContext?.seccompProfile?.type).toBe("RuntimeDefault");
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.restartPolicy).toBe("Never");
      expect(pod.hostNetwork).toBeUndefined();
      expect(pod.hostPID).toBeUndefined();
      expect(pod.volumes?.some((v) => v.name === "ms2m-token" || v.name === "agent-ca")).toBe(false);
      expect(c.args).toEqual(["cleanup"]);
      expect(c.terminationMessagePath).toBe("/dev/termination-log");
      expect(job.spec?.ttlSecondsAfterFinished).toBe(120);
      expect(job.spec?.activeDeadlineSeconds).toBe(300);
    }
    expect(
      buildCleanup(
        { node: "node-a", request: request({ archives: [{ container: "app", archive }] }) },
        {
          cleanupTtlSecondsAfterFinished: undefined,
        },
      ).spec?.ttlSecondsAfterFinished,
    ).toBe(600);
  });

  it("archives only: pinned, no registry Secret; registry images only: not pinned, no hostPath", () => {
    const a = archivesJob().spec!.template.spec!;
    expect(a.volumes?.some((v) => v.secret)).toBe(false);
    expect(envOf(archivesJob()).AGENT_REGISTRY_CREDENTIALS_FILE).toBeUndefined();
    expect(envOf(archivesJob()).AGENT_CHECKPOINTS_DIR).toBe("/var/lib/kubelet/checkpoints");
    const i = imagesJob().spec!.template.spec!;
    expect(i.nodeName).toBeUndefined();
    expect(i.volumes?.some((v) => v.hostPath)).toBe(false);
    expect(i.volumes?.find((v) => v.name === "registry")?.secret?.secretName).toBe("reg");
    const env = envOf(imagesJob());
    expect(env.AGENT_REGISTRY_CREDENTIALS_FILE).toBe("/etc/ms2m/registry/credentials");
    expect(env.AGENT_INSECURE_REGISTRIES).toBe("198.51.100.1:5000");
    expect(env.AGENT_CHECKPOINTS_DIR).toBeUndefined();
    expect(JSON.parse(env.CLEANUP_REQUEST as string)).toEqual(
      request({ registryImages: [{ image: "198.51.100.1:5000/ckpt:app-0f1e" }] }),
    );
    expect(env.CLEANUP_RESULT_FILE).toBe("/dev/termination-log");
    expect(JSON.stringify(env)).not.toMatch(/password|BEGIN |eyJ|Bearer/i);
    expect(() => buildCleanup({ request: request({ archives: [{ container: "app", archive }] }) })).toThrow(
      /node/,
    );
  });
});

describe("cleanup request and result", () => {
  it("accepts a request of archives and images", () => {
    const ok = cleanupRequestSchema.parse({
      migration: uid,
      namespace: "shop",
      pod: "web-0",
      archives: [{ container: "app", archive }],
      registryImages: [{ image: "r:5000/x:y", manifestDigest: `sha256:${"a".repeat(64)}` }],
    });
    expect(ok.archives).toHaveLength(1);
    expect(cleanupRequestSchema.parse({ migration: uid, namespace: "shop", pod: "web-0" })).toEqual(
      request(),
    );
  });

  it.each([
    ["an unknown field", { extra: 1 }],
    ["a bad namespace", { namespace: "Shop/../x" }],
    ["a bad container", { archives: [{ container: "../app", archive }] }],
    ["an empty archive", { archives: [{ container: "app", archive: "" }] }],
    ["a huge archive name", { archives: [{ container: "app", archive: "a".repeat(5000) }] }],
    ["too many archives", { archives: Array.from({ length: 17 }, () => ({ container: "app", archive })) }],
    ["too many images", { registryImages: Array.from({ length: 17 }, () => ({ image: "r:5000/x:y" })) }],
    ["a bad manifest digest", { registryImages: [{ image: "r:5000/x:y", manifestDigest: "md5:1" }] }],
    ["an unknown item field", { registryImages: [{ image: "r:5000/x:y", path: "/etc" }] }],
  ])("rejects %s", (_, patch) => {
    expect(cleanupRequestSchema.safeParse({ ...request(), ...patch }).success).toBe(false);
  });

  it("the result always fits the 4096-byte termination message and parses back", () => {
    const items = Array.from({ length: 32 }, (_, n) => ({
      kind: "image" as const,
      name: `registry.example.com/${"r".repeat(400)}:${n}`,
      outcome: "refused" as const,
      message: "x".repeat(1000),
    }));
    const text = encodeCleanupJobResult({ ok: false, items });
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(4096);
    const back = parseCleanupJobResult(text)!;
    expect(back.ok).toBe(false);
    expect(back.items.length + (back.omitted ?? 0)).toBe(32);
    const small = {
      ok: true,
      items: [{ kind: "archive" as const, name: "a.tar", outcome: "deleted" as const }],
    };
    expect(parseCleanupJobResult(encodeCleanupJobResult(small))).toEqual(small);
    expect(parseCleanupJobResult("Error: boom")).toBeUndefined();
    expect(parseCleanupJobResult(JSON.stringify({ ok: true }))).toBeUndefined();
  });
});

describe("RoutedTransfer.cleanup where the source node runs no agent", () => {
  const art = (a: Partial<ArtifactRef> = {}): ArtifactRef => ({
    mode: "Registry",
    sourceNode: "node-c",
    targetNode: "node-b",
    namespace: "shop",
    pod: "web-0",
    container: "app",
    archivePath: archive,
    image: "198.51.100.1:5000/ckpt:app-0f1e",
    key: `${uid}/app`,
    ...a,
  });
  function setup(opts: { createFails?: boolean; exists?: boolean } = {}) {
    const created: CleanupJobInput[] = [];
    const released: ArtifactRef[][] = [];
    let sendJobsDeleted = 0;
    const job = {
      cleanup: () => {
        sendJobsDeleted++;
        return Promise.resolve({ warnings: [] });
      },
      startCleanup: (input: CleanupJobInput) => {
        if (opts.createFails) return Promise.reject(new Ms2mError("Forbidden", "jobs is forbidden"));
        created.push(input);
        return Promise.resolve({
          name: buildCleanupJob(input, cleanupSettings).metadata!.name!,
          created: !opts.exists,
        });
      },
    } as unknown as JobTransfer;
    const agent: TransferPort = {
      transfer: () => Promise.reject(new Error("unused")),
      cleanup: (a: ArtifactRef[]): Promise<CleanupReport> => {
        released.push(a);
        return Promise.resolve({ warnings: [] });
      },
    };
    const locator = {
      urlFor: (node: string) =>
        node === "node-c"
          ? Promise.reject(new Ms2mError("ServiceUnavailable", "no Ready ms2m-agent"))
          : Promise.resolve(`https://${node}:9443`),
    };
    const routed = new RoutedTransfer(agent, job, locator, "auto");
    return { routed, created, released, sendJobsDeleted: () => sendJobsDeleted };
  }

  it("starts a Job on the source node for the archive and one for the registry image; no warning", async () => {
    const t = setup();
    const report = await t.routed.cleanup([
      art(),
      art({
        container: "side",
        archivePath: archive.replace("-app-", "-side-"),
        image: "198.51.100.1:5000/ckpt:side-0f1e",
        key: `${uid}/side`,
      }),
    ]);
    expect(report.warnings).toEqual([]);
    expect(t.sendJobsDeleted()).toBe(1);
    expect(t.created).toHaveLength(2);
    const [onNode, registry] = t.created;
    expect(onNode?.node).toBe("node-c");
    expect(onNode?.request.archives).toEqual([
      { container: "app", archive },
      { container: "side", archive: archive.replace("-app-", "-side-") },
    ]);
    expect(onNode?.request.registryImages).toEqual([]);
    expect(registry?.node).toBeUndefined();
    expect(registry?.request.archives).toEqual([]);
    expect(registry?.request.registryImages.map((i) => i.image)).toEqual([
      "198.51.100.1:5000/ckpt:app-0f1e",
      "198.51.100.1:5000/ckpt:side-0f1e",
    ]);
    expect(report.started).toHaveLength(2);
    expect(report.started?.[0]).toMatch(/^Job ms2m-cleanup-0f1e2d3c4b5a-node-c deletes checkpoint archive /);
    // What the Job sent into the target's agent is released there.
    expect(t.released.flat().every((a) => a.sourceNode === "node-b")).toBe(true);
  });

  it("Direct: only the archive; a Job that already exists is fine", async () => {
    const t = setup({ exists: true });
    const report = await t.routed.cleanup([art({ mode: "Direct", image: "localhost/ms2m-checkpoint/x:y" })]);
    expect(report.warnings).toEqual([]);
    expect(t.created.map((c) => c.node)).toEqual(["node-c"]);
    expect(report.started?.[0]).toContain("already deletes");
  });

  it("a Job that cannot be created leaves a warning that says what stays", async () => {
    const t = setup({ createFails: true });
    const report = await t.routed.cleanup([art()]);
    expect(report.warnings).toEqual([
      `checkpoint archive ${archive} on node-c stays: cleanup Job not created: jobs is forbidden`,
      "registry image 198.51.100.1:5000/ckpt:app-0f1e stays: cleanup Job not created: jobs is forbidden",
    ]);
  });

  it("an artifact without its pod (an older status) keeps the old warning", async () => {
    const t = setup();
    const report = await t.routed.cleanup([art({ pod: undefined, mode: "Direct" })]);
    expect(t.created).toEqual([]);
    expect(report.warnings).toEqual([
      `no ms2m-agent on node-c: checkpoint archive ${archive} stays on the node`,
    ]);
  });

  it("a source node with an agent: the agent releases, no cleanup Job", async () => {
    const t = setup();
    const report = await t.routed.cleanup([art({ sourceNode: "node-a" })]);
    expect(t.created).toEqual([]);
    expect(report.warnings).toEqual([]);
    expect(t.released.flat().map((a) => a.sourceNode)).toEqual(["node-a"]);
  });
});
