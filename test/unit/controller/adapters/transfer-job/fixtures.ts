// The migration, Job settings, checkpoint archive and cleanup request the transfer-Job tests share
// (jobs.test.ts, transfer.test.ts here and test/unit/transfer/job.test.ts).
import type { TransferJobSettings } from "../../../../../src/controller/adapters/transfer-job/jobs.ts";
import type { CleanupRequest } from "../../../../../src/transfer/job.ts";

export const uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
export const settings: TransferJobSettings = {
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
export const archive = "/var/lib/kubelet/checkpoints/checkpoint-web-0_shop-app-2025-01-01T00:00:00Z.tar";
export const request = (r: Partial<CleanupRequest> = {}): CleanupRequest => ({
  migration: uid,
  namespace: "shop",
  pod: "web-0",
  archives: [],
  archiveWindows: [],
  registryImages: [],
  ...r,
});
export const cleanupSettings: TransferJobSettings = {
  ...settings,
  registrySecretName: "reg",
  insecureRegistries: ["198.51.100.1:5000"],
  cleanupTtlSecondsAfterFinished: 120,
};
