// The message accounting on a cluster reached by kubeconfig (bench/eval --kubeconfig), from the
// consumers' own state as the local mode reads it: the reference consumer dumps its state when
// stopped (STATE_FILE), and here that file is the container's termination message
// (/dev/termination-log, at most 4096 bytes), which the kubelet copies into the pod's status. So
// the state comes back through the API server alone: no shared folder, no exec into the pod.
// The producer's confirmed sequence numbers are checked against the union of the serving
// consumers' states (workload/accounting.ts): lost, applied twice, and the state's checksum.
import * as k8s from "@kubernetes/client-node";
import { waitFor } from "../../tooling/exec.ts";
import { mergeStates, type ControllerTestEnv, type Workload } from "../../tooling/stack/index.ts";
import { account, type AccountingReport } from "../../workload/accounting.ts";
import type { WorkloadState } from "../../workload/state.ts";

/** Where the consumer writes its final state: the kubelet's default terminationMessagePath. */
export const TERMINATION_LOG = "/dev/termination-log";

/** The consumer container's settings for it (env and termination message fields). */
export function stateToTerminationMessage(c: k8s.V1Container): void {
  // Local folders mean nothing on a remote node: the state leaves through the termination message.
  const local = new Set(["STATE_DIR", "STATE_FILE", "APPLIED_LOG", "APPLIED_LOG_DIR"]);
  c.env = [
    ...(c.env ?? []).filter((e) => !local.has(e.name)),
    { name: "STATE_FILE", value: TERMINATION_LOG },
  ];
  c.terminationMessagePath = TERMINATION_LOG;
  c.terminationMessagePolicy = "File";
}

/** The state a consumer wrote as its termination message (CheckpointImage.app, workload/consumer.ts). */
export function parseFinalState(pod: string, message: string): WorkloadState {
  let image: { app?: WorkloadState };
  try {
    image = JSON.parse(message) as { app?: WorkloadState };
  } catch {
    throw new Error(
      `the termination message of ${pod} is not the consumer's state (${message.length} bytes; ` +
        `a state over 4096 bytes is cut by the kubelet): ${JSON.stringify(message.slice(0, 80))}`,
    );
  }
  if (!image.app || !Array.isArray(image.app.seen))
    throw new Error(`the termination message of ${pod} has no consumer state`);
  return image.app;
}

/**
 * Stops the workload's consumers (`stopAll`) and accounts the producer's confirmed sequence
 * numbers against the final states of the pods serving when it was called (or `onlyPod`), read
 * from their termination messages as a watch sees them before the pods go.
 */
export async function remoteAccounting(
  env: ControllerTestEnv,
  ns: string,
  w: Workload,
  confirmed: Iterable<number>,
  stopAll: () => Promise<void>,
  onlyPod?: string,
): Promise<AccountingReport> {
  const live = (await env.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${w.name}` })).items
    .filter((p) => !p.metadata?.deletionTimestamp)
    .map((p) => p.metadata?.name ?? "");
  const serving = onlyPod ? [onlyPod] : live;
  const messages = new Map<string, string>();
  const abort = await new k8s.Watch(env.kc).watch(
    `/api/v1/namespaces/${ns}/pods`,
    { labelSelector: `app=${w.name}` },
    (_type: string, pod: k8s.V1Pod) => {
      const name = pod.metadata?.name ?? "";
      const c = pod.status?.containerStatuses?.find((s) => s.name === "consumer");
      const message = c?.state?.terminated?.message ?? c?.lastState?.terminated?.message;
      if (serving.includes(name) && message) messages.set(name, message);
    },
    () => undefined,
  );
  try {
    await stopAll();
    await waitFor(
      `the final state of ${serving.join(", ")} (termination messages)`,
      async () => (serving.every((p) => messages.has(p)) ? true : undefined),
      { timeoutMs: 45_000, intervalMs: 100 },
    ).catch((err: unknown) => {
      const missing = serving.filter((p) => !messages.has(p));
      throw new Error(
        `no final state from ${missing.join(", ")}: the consumer writes it to ${TERMINATION_LOG} when ` +
          `stopped, and the kubelet reports it as the container's termination message (${String(err)})`,
      );
    });
  } finally {
    abort.abort();
  }
  return account(confirmed, mergeStates(serving.map((p) => parseFinalState(p, messages.get(p) ?? ""))));
}
