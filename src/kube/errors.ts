// Maps what @kubernetes/client-node throws onto Ms2mError with the API server's Status reason,
// so callers branch on `reason` instead of parsing HTTP codes and bodies.
import { ApiException } from "@kubernetes/client-node";
import { Ms2mError, isMs2mError, reasonForCode, statusReasons, type StatusReason } from "../common/errors.ts";

interface StatusBody {
  reason?: string;
  message?: string;
  code?: number;
}

function parseBody(body: unknown): StatusBody | undefined {
  if (typeof body === "string") {
    try {
      return parseBody(JSON.parse(body));
    } catch {
      return body ? { message: body.slice(0, 512) } : undefined;
    }
  }
  if (body && typeof body === "object") return body as StatusBody;
  return undefined;
}

const isStatusReason = (r: unknown): r is StatusReason => typeof r === "string" && r in statusReasons;

/** Converts anything thrown by a Kubernetes call into an Ms2mError (returns Ms2mErrors as they are). */
export function toMs2mError(err: unknown, what?: string): Ms2mError {
  if (isMs2mError(err)) return err;
  const prefix = what ? `${what}: ` : "";
  if (err instanceof ApiException) {
    const status = parseBody(err.body);
    const reason = isStatusReason(status?.reason) ? status.reason : reasonForCode(err.code);
    const message = status?.message ?? `HTTP ${err.code}`;
    return new Ms2mError(reason, prefix + message, { cause: err });
  }
  // Network-level failures (connection refused, reset, TLS) are worth retrying.
  const message = err instanceof Error ? err.message : String(err);
  return new Ms2mError("ServiceUnavailable", prefix + message, { cause: err });
}

export const isNotFound = (err: unknown) => toMs2mError(err).reason === "NotFound";
export const isConflict = (err: unknown) => toMs2mError(err).reason === "Conflict";
export const isAlreadyExists = (err: unknown) => toMs2mError(err).reason === "AlreadyExists";

/** Runs a Kubernetes call, converting failures; NotFound becomes `undefined`. */
export async function getOrUndefined<T>(call: () => Promise<T>, what?: string): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    const e = toMs2mError(err, what);
    if (e.reason === "NotFound") return undefined;
    throw e;
  }
}

/** Runs a Kubernetes call, converting failures into Ms2mError. */
export async function kubeCall<T>(call: () => Promise<T>, what?: string): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toMs2mError(err, what);
  }
}
