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
import {
  MigrationPolicySpec,
  MigrationPolicyStatus,
  policyKind,
  policyPlural,
  policyPrinterColumns,
  policyShortNames,
  policySingular,
} from "./migrationpolicy.ts";

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

/** What a CustomResourceDefinition is generated from. */
export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: readonly string[];
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: readonly { name: string; type: string; jsonPath: string }[];
}

export const kinds: KindDefinition[] = [
  {
    kind,
    plural,
    singular,
    shortNames,
    description:
      "StatefulMigration moves a running, stateful, message-consuming pod to another node " +
      "without losing its in-memory state or a message.",
    spec: StatefulMigrationSpec,
    status: StatefulMigrationStatus,
    printerColumns,
  },
  {
    kind: policyKind,
    plural: policyPlural,
    singular: policySingular,
    shortNames: policyShortNames,
    description:
      "MigrationPolicy migrates the pods it selects live when they are evicted (a node drain, the " +
      "autoscaler), instead of letting them be deleted and restarted cold.",
    spec: MigrationPolicySpec,
    status: MigrationPolicyStatus,
    printerColumns: policyPrinterColumns,
  },
];

/** A CustomResourceDefinition, generated from the zod schemas (the single source of truth). */
export function crdManifest(def: KindDefinition = kinds[0]!): JsonSchema {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${def.plural}.${group}`,
      labels: { "app.kubernetes.io/name": "ms2m", "app.kubernetes.io/part-of": "ms2m" },
    },
    spec: {
      group,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories,
      },
      scope: "Namespaced",
      versions: [
        {
          name: version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: def.description,
              required: ["spec"],
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: toSchema(def.spec),
                status: toSchema(def.status),
              },
            },
          },
        },
      ],
    },
  };
}
