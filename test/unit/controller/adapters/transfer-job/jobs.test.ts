import { describe, expect, it } from "vitest";
import { parseEnv } from "../../../../../src/common/config.ts";
import { controllerEnv } from "../../../../../src/controller/config.ts";
import {
  buildCleanupJob,
  buildTransferJob,
  cleanupJobName,
  transferJobName,
  transferJobSettingsFrom,
  type CleanupJobInput,
  type TransferJobSettings,
} from "../../../../../src/controller/adapters/transfer-job/jobs.ts";
import type { SendRequest } from "../../../../../src/transfer/types.ts";
import { archive, cleanupSettings, request, settings, uid } from "./fixtures.ts";

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
});

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
