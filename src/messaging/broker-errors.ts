// Maps amqplib failures onto Ms2mError, so phase handlers can decide "retry later" vs "give up"
// from `retriable` and report a Kubernetes Status reason.
import { Ms2mError, type StatusReason } from "../common/errors.ts";

/** AMQP reply codes that close a channel, and what they mean for a migration. */
const channelErrors: Record<number, { reason: StatusReason; retriable: boolean }> = {
  403: { reason: "Forbidden", retriable: false }, // ACCESS_REFUSED
  404: { reason: "NotFound", retriable: false }, // NOT_FOUND
  405: { reason: "Conflict", retriable: true }, // RESOURCE_LOCKED (exclusive queue of another connection)
  406: { reason: "Invalid", retriable: false }, // PRECONDITION_FAILED (inequivalent arguments)
  320: { reason: "ServiceUnavailable", retriable: true }, // CONNECTION_FORCED (broker shutdown, close_all_connections)
  541: { reason: "InternalError", retriable: true },
};

export function toMs2mError(err: unknown): Ms2mError {
  if (err instanceof Ms2mError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === "number" && channelErrors[code]) {
    const { reason, retriable } = channelErrors[code];
    return new Ms2mError(reason, `AMQP ${code}: ${message}`, { cause: err, retriable });
  }
  // Socket errors, "Channel closed", "Connection closed": the broker or the network went away.
  return new Ms2mError("ServiceUnavailable", `broker unavailable: ${message}`, {
    cause: err,
    retriable: true,
  });
}

/** True for the 404 a passive declare/check raises when the object does not exist. */
export const isNotFound = (err: unknown): boolean => toMs2mError(err).reason === "NotFound";
