import { pino, type Logger, type LoggerOptions } from "pino";

export type { Logger } from "pino";

// Anything that might hold a credential is redacted wherever it appears in a log record.
const redactPaths = [
  "brokerUrl",
  "*.brokerUrl",
  "*.*.brokerUrl",
  "url",
  "*.url",
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "*.headers.authorization",
  "password",
  "*.password",
];

export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  return pino({
    name,
    level: process.env.LOG_LEVEL ?? "info",
    redact: { paths: redactPaths, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    ...options,
  });
}

/** Replaces the user-info part of a URL (amqp://user:pass@host) so it can be logged. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.username || url.password) {
      url.username = "redacted";
      url.password = "";
    }
    return url.toString();
  } catch {
    return "[unparsable url]";
  }
}
