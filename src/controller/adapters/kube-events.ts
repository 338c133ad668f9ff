// Events on the StatefulMigration (core/v1, what `kubectl describe` shows). Fire and forget:
// an event that cannot be written must never fail a reconcile.
import type { CoreV1Event, KubeConfig } from "@kubernetes/client-node";
import { KubeRest, resourcePath } from "../../kube/rest.ts";
import type { StatefulMigration } from "../../api/v1alpha1/index.ts";
import type { Logger } from "../../common/logger.ts";
import type { EventRecorder, EventType } from "../ports.ts";

export class KubeEvents implements EventRecorder {
  private readonly rest: KubeRest;
  private readonly component: string;
  private readonly host: string;
  private readonly log: Logger;
  private seq = 0;

  constructor(kc: KubeConfig, log: Logger, component = "ms2m-controller") {
    this.rest = new KubeRest(kc);
    this.log = log;
    this.component = component;
    this.host = process.env.HOSTNAME ?? "";
  }

  event(m: StatefulMigration, type: EventType, reason: string, message: string): void {
    const now = new Date();
    const namespace = m.metadata.namespace ?? "default";
    const name = `${m.metadata.name}.${now.getTime().toString(16)}${(this.seq++ % 4096).toString(16)}`;
    const body: CoreV1Event = {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: m.apiVersion,
        kind: m.kind,
        name: m.metadata.name,
        namespace,
        uid: m.metadata.uid,
        resourceVersion: m.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      source: { component: this.component, host: this.host },
      reportingComponent: this.component,
      reportingInstance: this.host,
    };
    this.rest
      .create(resourcePath({ version: "v1", plural: "events", namespace }), body)
      .catch((err: unknown) => this.log.debug({ err, reason }, "event not recorded"));
  }
}
