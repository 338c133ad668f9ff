import { describe, expect, it } from "vitest";
import { parseEnv } from "../../../src/common/config.ts";
import { controllerEnv } from "../../../src/controller/config.ts";
import {
  buildTransferJob,
  transferJobName,
  transferJobSettingsFrom,
  type TransferJobSettings,
} from "../../../src/controller/transfer-job.ts";
import { parseSendJobResult } from "../../../src/transfer/job.ts";
import type { SendRequest } from "../../../src/transfer/types.ts";

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
    const { setup, drive } = await import("./scenario.ts");
    const { TransferInProgress } = await import("../../../src/controller/transfer-job.ts");
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
    w.reconciler.reconcile = async (ns, name) => {
      const r = await reconcile(ns, name);
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

  it("a refusal from the Job fails the migration with TransferFailed and rolls back", async () => {
    const { setup, drive } = await import("./scenario.ts");
    const { Ms2mError } = await import("../../../src/common/errors.ts");
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
