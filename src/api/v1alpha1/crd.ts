import { z } from "zod";
import {
  StatefulMigrationSpec,
  StatefulMigrationStatus,
  categories,
  group,
  kind,
  plural,
  printerColumns,
  shortNames,
  singular,
  version,
} from "./statefulmigration.ts";

type JsonSchema = Record<string, unknown>;

// Kubernetes rejects integer bounds it cannot represent and zod adds the safe-integer range.
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/**
 * Turns zod's OpenAPI 3.0 output into a structural schema the API server accepts:
 * no additionalProperties beside properties (unknown fields are pruned, and rejected by
 * strict field validation), no $schema, no safe-integer bounds, no pattern beside a format.
 */
function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (node === null || typeof node !== "object") return node;
  const input = node as JsonSchema;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(input)) {
    if (key === "$schema" || key === "id") continue;
    if (key === "additionalProperties" && (value === false || "properties" in input)) continue;
    if ((key === "minimum" || key === "maximum") && Math.abs(value as number) >= MAX_SAFE) continue;
    if (key === "pattern" && input.format === "date-time") continue;
    if (key === "properties" || key === "x-kubernetes-validations") {
      out[key] = Array.isArray(value)
        ? value
        : Object.fromEntries(Object.entries(value as JsonSchema).map(([k, v]) => [k, structural(v)]));
      continue;
    }
    out[key] = structural(value);
  }
  return out;
}

function toSchema(schema: z.ZodType): JsonSchema {
  return structural(z.toJSONSchema(schema, { target: "openapi-3.0", io: "input" })) as JsonSchema;
}

/** The CustomResourceDefinition, generated from the zod schemas (the single source of truth). */
export function crdManifest(): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${plural}.${group}`,
      labels: { "app.kubernetes.io/name": "ms2m", "app.kubernetes.io/part-of": "ms2m" },
    },
    spec: {
      group,
      names: { kind, listKind: `${kind}List`, plural, singular, shortNames, categories },
      scope: "Namespaced",
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description:
                "StatefulMigration moves a running, stateful, message-consuming pod to another node " +
                "without losing its in-memory state or a message.",
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: toSchema(StatefulMigrationSpec),
                status: toSchema(StatefulMigrationStatus),
              },
            },
          },
        },
      ],
    },
  };
}
