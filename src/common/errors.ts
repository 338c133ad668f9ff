// Typed errors that carry a Kubernetes metav1.Status reason, so every component reports
// failures the way the API server does (and HTTP handlers can answer with a real Status).

export const statusReasons = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  MethodNotAllowed: 405,
  NotAcceptable: 406,
  AlreadyExists: 409,
  Conflict: 409,
  Gone: 410,
  RequestEntityTooLarge: 413,
  UnsupportedMediaType: 415,
  Invalid: 422,
  TooManyRequests: 429,
  InternalError: 500,
  ServiceUnavailable: 503,
  Timeout: 504,
} as const;

export type StatusReason = keyof typeof statusReasons;

/** A metav1.Status object as the API server returns it. */
export interface KubeStatus {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Failure" | "Success";
  message: string;
  reason: StatusReason;
  code: number;
  details?: { causes?: { field?: string; message: string; reason?: string }[] };
}

export class Ms2mError extends Error {
  readonly reason: StatusReason;
  readonly code: number;
  /** Whether retrying the same operation later may succeed. */
  readonly retriable: boolean;

  constructor(reason: StatusReason, message: string, options?: { cause?: unknown; retriable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "Ms2mError";
    this.reason = reason;
    this.code = statusReasons[reason];
    this.retriable =
      options?.retriable ??
      ["Conflict", "TooManyRequests", "InternalError", "ServiceUnavailable", "Timeout"].includes(reason);
  }

  toStatus(): KubeStatus {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
  }
}

export const badRequest = (message: string) => new Ms2mError("BadRequest", message);
export const notFound = (message: string) => new Ms2mError("NotFound", message);
export const invalid = (message: string) => new Ms2mError("Invalid", message);
export const conflict = (message: string) => new Ms2mError("Conflict", message);
export const timeout = (message: string) => new Ms2mError("Timeout", message);

/** Maps an HTTP status code to the closest Status reason. */
export function reasonForCode(code: number): StatusReason {
  const exact = (Object.entries(statusReasons) as [StatusReason, number][]).find(([, c]) => c === code);
  if (exact) return exact[0];
  if (code >= 500) return "InternalError";
  return "BadRequest";
}

export function isMs2mError(err: unknown, reason?: StatusReason): err is Ms2mError {
  return err instanceof Ms2mError && (reason === undefined || err.reason === reason);
}

/** A short, log-safe description of any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
