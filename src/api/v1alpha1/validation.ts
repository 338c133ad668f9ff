import type { z } from "zod";

/**
 * A cross-field rule written once and rendered twice: as a CEL rule in the CRD (enforced
 * at admission by the API server) and as a zod refinement (enforced when the controller
 * parses an object). `check` must accept exactly what `rule` accepts.
 */
export interface CelRule<T> {
  rule: string;
  message: string;
  /** JSONPath-like path, relative to the schema the rule sits on, of the field at fault. */
  fieldPath?: string;
  reason?: "FieldValueInvalid" | "FieldValueRequired" | "FieldValueForbidden" | "FieldValueDuplicate";
  /** Transition rules (using oldSelf) are only enforced by the API server. */
  check?: (value: T) => boolean;
}

/** Attaches rules to a schema: metadata for the CRD generator, refinements for zod. */
export function withRules<S extends z.ZodType>(schema: S, rules: CelRule<z.output<S>>[]): S {
  let refined = schema;
  for (const rule of rules) {
    const check = rule.check;
    if (!check) continue;
    refined = refined.superRefine((value, ctx) => {
      if (!check(value as z.output<S>)) {
        ctx.addIssue({
          code: "custom",
          message: rule.message,
          path: rule.fieldPath ? rule.fieldPath.replace(/^\./, "").split(".") : [],
        });
      }
    }) as S;
  }
  const existing = (refined.meta() ?? {}) as Record<string, unknown>;
  return refined.meta({
    ...existing,
    "x-kubernetes-validations": rules.map(({ rule, message, fieldPath, reason }) => ({
      rule,
      message,
      ...(fieldPath ? { fieldPath } : {}),
      ...(reason ? { reason } : {}),
    })),
  }) as S;
}

// Kubernetes name formats (apimachinery validation).
export const dns1123SubdomainPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const dns1123LabelPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** An image repository without tag or digest: [host[:port]/]path. */
export const imageRepositoryPattern = /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;
export const secretKeyPattern = /^[-._a-zA-Z0-9]+$/;
