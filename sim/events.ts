// Events on pods, as the kubelet posts them (Pulling, Pulled, Created, Started, Killing, ...):
// fire-and-forget, since an event that fails to post must never block the pod.
import type { V1Pod } from "@kubernetes/client-node";
import type { Logger } from "../src/common/logger.ts";
import type { ApiClient } from "./api-client.ts";

export class EventRecorder {
  private readonly api: ApiClient;
  private readonly nodeName: string;
  private readonly log: Logger;

  constructor(api: ApiClient, nodeName: string, log: Logger) {
    this.api = api;
    this.nodeName = nodeName;
    this.log = log;
  }

  pod(pod: V1Pod, type: "Normal" | "Warning", reason: string, message: string, fieldPath?: string): void {
    const md = pod.metadata ?? {};
    const ns = md.namespace ?? "default";
    const now = new Date().toISOString();
    const event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { generateName: `${md.name}.`, namespace: ns },
      involvedObject: {
        apiVersion: "v1",
        kind: "Pod",
        name: md.name,
        namespace: ns,
        uid: md.uid,
        ...(fieldPath ? { fieldPath } : {}),
      },
      reason,
      message,
      type,
      source: { component: "kubelet", host: this.nodeName },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      reportingComponent: "kubelet",
      reportingInstance: this.nodeName,
    };
    this.api.call("POST", `/api/v1/namespaces/${ns}/events`, event).catch((err: unknown) => {
      this.log.debug({ err, reason }, "event not recorded");
    });
  }
}
