// Records a span for every call a phase handler makes through a port, into the trace of the
// migration being reconciled (activeTrace). The handlers stay unaware of it; calls made outside
// a reconcile (no active trace) pass through untouched, and so do reads a cache in front of the
// API answers itself (adapters/cached-reads.ts): spans are requests.
import type { PhaseDeps } from "../context.ts";
import { activeTrace, type SpanKind } from "./trace.ts";

/** Methods that only read (everything else changes something: a write, an action). */
const READ = /^(get|list|lookup|probe|progress|routeFor)/;

/** Wraps each async method of `port`: a span `<port>.<method>` of `kind` around the call. */
export function traced<T extends object>(port: T, portName: string, kind: SpanKind): T {
  return new Proxy(port, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function" || typeof prop !== "string") return value;
      const method = value as (...args: unknown[]) => unknown;
      return function (this: unknown, ...args: unknown[]) {
        const trace = activeTrace.getStore();
        if (!trace) return method.apply(target, args);
        if (!READ.test(prop)) trace.mutations++;
        return trace.span(`${portName}.${prop}`, kind, () => method.apply(target, args) as Promise<unknown>);
      };
    },
  });
}

/** A port that answers some calls itself (a cache): only the calls it passes on are traced. */
interface Layered<T> {
  withInner(wrap: (inner: T) => T): T;
}
const isLayered = <T>(port: T): port is T & Layered<T> =>
  typeof (port as Partial<Layered<T>>).withInner === "function";

/** The phase handlers' ports, each traced with what it waits on. */
export function tracedDeps(deps: PhaseDeps): PhaseDeps {
  const cluster = deps.cluster;
  return {
    ...deps,
    cluster: isLayered(cluster)
      ? cluster.withInner((inner) => traced(inner, "kube", "api"))
      : traced(cluster, "kube", "api"),
    checkpointer: traced(deps.checkpointer, "checkpoint", "checkpoint"),
    transfer: traced(deps.transfer, "transfer", "transfer"),
    runtime: traced(deps.runtime, "runtime", "runtime"),
    ...(deps.baseImages ? { baseImages: traced(deps.baseImages, "images", "images") } : {}),
    messaging: traced(deps.messaging, "broker", "broker"),
  };
}
