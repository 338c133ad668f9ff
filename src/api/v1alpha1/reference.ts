import { crdManifest, kinds, type KindDefinition } from "./crd.ts";

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  format?: string;
  "x-kubernetes-validations"?: { rule: string; message: string }[];
}

export const referencePath = "docs/api-reference.md";

function constraints(s: Schema): string {
  const parts: string[] = [];
  if (s.enum) parts.push(`one of ${s.enum.map((e) => `\`${String(e)}\``).join(", ")}`);
  if (s.minimum !== undefined || s.maximum !== undefined)
    parts.push(`${s.minimum ?? "…"} to ${s.maximum ?? "…"}`);
  if (s.maxLength !== undefined) parts.push(`at most ${s.maxLength} characters`);
  if (s.pattern) parts.push(`matches \`${s.pattern}\``);
  if (s.format) parts.push(s.format);
  for (const v of s["x-kubernetes-validations"] ?? []) parts.push(v.message);
  return parts.join("; ").replaceAll("|", "\\|");
}

function rows(schema: Schema, prefix: string, out: string[]): void {
  for (const [name, prop] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}${name}`;
    const type = prop.type === "array" ? `[]${prop.items?.type ?? "object"}` : (prop.type ?? "object");
    const required = schema.required?.includes(name) ? "yes" : "";
    const def = prop.default === undefined ? "" : `\`${JSON.stringify(prop.default)}\``;
    const desc = (prop.description ?? "").replaceAll("|", "\\|");
    out.push(`| \`${path}\` | ${type} | ${required} | ${def} | ${desc} | ${constraints(prop)} |`);
    if (prop.properties) rows(prop, `${path}.`, out);
    if (prop.items?.properties) rows(prop.items, `${path}[].`, out);
  }
}

function section(def: KindDefinition): string[] {
  const crd = crdManifest(def) as {
    spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: Schema; status: Schema } } } }[] };
  };
  const { spec, status } = crd.spec.versions[0]!.schema.openAPIV3Schema.properties;
  const header = [
    "| Field | Type | Required | Default | Description | Validation |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  const specRows: string[] = [];
  rows(spec, "spec.", specRows);
  const statusRows: string[] = [];
  rows(status, "status.", statusRows);
  const specRules = (spec["x-kubernetes-validations"] ?? []).map((v) => `- ${v.message} (\`${v.rule}\`)`);
  const short = def.shortNames[0] ?? def.plural;
  return [
    `## ${def.kind}`,
    "",
    `${def.description} Namespaced; short name \`${short}\`; category \`ms2m\`; status subresource.`,
    "",
    "### spec",
    "",
    ...header,
    ...specRows,
    "",
    ...(specRules.length > 0
      ? ["Rules across fields of `spec`, checked at admission:", "", ...specRules, ""]
      : []),
    "### status",
    "",
    "Written by the controller only.",
    "",
    ...header,
    ...statusRows,
    "",
    `### Printer columns (\`kubectl get ${short}\`)`,
    "",
    "| Column | JSONPath |",
    "| --- | --- |",
    ...def.printerColumns.map((c) => `| ${c.name} | \`${c.jsonPath}\` |`),
    "",
  ];
}

/** The API reference in Markdown, generated from the same schemas as the CRDs. */
export function renderReference(): string {
  return [
    "<!-- Generated from src/api/v1alpha1 by `make manifests`. Do not edit. -->",
    "# API reference (`migration.ms2m.io/v1alpha1`)",
    "",
    ...kinds.flatMap(section),
  ].join("\n");
}
