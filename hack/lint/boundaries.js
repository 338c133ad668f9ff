// ESLint rule `ms2m/boundaries`: which parts of the tree a module may import from. Each folder
// below is a library (or a deployable, or tooling) with declared dependencies; an import that
// crosses into a folder not declared fails `make lint`. Relative imports are resolved against the
// importing file; packages (node_modules, node:) are not restricted here.
import { dirname, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Folder → the folders its modules may import from (besides their own). Most specific wins. */
export const LAYERS = {
  "src/common": [],
  "src/protocol": [],
  "src/api": ["src/common"],
  "src/kube": ["src/common"],
  "src/checkpoint": ["src/common"],
  "src/engine": ["src/common", "src/kube"],
  "src/transfer": ["src/common", "src/checkpoint"],
  "src/messaging": ["src/common", "src/protocol"],
  "src/sdk": ["src/common", "src/protocol"],
  "src/agent": ["src/common", "src/kube", "src/checkpoint", "src/transfer"],
  "src/controller": [
    "src/common",
    "src/api",
    "src/kube",
    "src/engine",
    "src/checkpoint",
    "src/transfer",
    "src/messaging",
    "src/protocol",
  ],
  // The kubectl plugin's library: the API types, client helpers, the runtime rules and the agent client.
  "src/cli": ["src/common", "src/api", "src/kube", "src/checkpoint", "src/transfer"],
  "cmd/ms2m-agent": ["src/common", "src/kube", "src/checkpoint", "src/transfer", "src/agent"],
  "cmd/kubectl-ms2m": ["src/cli"],
  "cmd/ms2m-controller": ["src"],
  // The reference workload imports only what a workload author would: the SDK.
  workload: ["src/common", "src/sdk", "src/protocol"],
  // The simulated nodes: the checkpoint formats and the simulated runtime's contract.
  sim: ["src/common", "src/kube", "src/checkpoint", "src/sdk"],
  // Local clusters, images and the stack for tests, benchmarks and the demo.
  tooling: ["src", "cmd", "sim", "workload", "hack/images"],
  "hack/images": ["src"],
  hack: ["src", "sim", "workload", "tooling"],
  bench: ["src", "sim", "workload", "tooling"],
  test: ["src", "cmd", "sim", "workload", "tooling", "hack", "bench"],
};

const KEYS = Object.keys(LAYERS).sort((a, b) => b.length - a.length);
const within = (path, folder) => path === folder || path.startsWith(`${folder}/`);
const areaOf = (path) => KEYS.find((k) => within(path, k));

/** Null when allowed, else the area of the imported module. */
export function violation(fromFile, specifier) {
  if (!specifier.startsWith(".")) return null;
  const from = relative(ROOT, fromFile).split(sep).join("/");
  const target = relative(ROOT, resolve(dirname(fromFile), specifier))
    .split(sep)
    .join("/");
  const area = areaOf(from);
  if (!area || target.startsWith("..")) return null;
  if (within(target, area)) return null;
  if (LAYERS[area].some((allowed) => within(target, allowed))) return null;
  return areaOf(target) ?? target.split("/").slice(0, 2).join("/");
}

export const boundariesRule = {
  meta: {
    type: "problem",
    docs: { description: "imports only from the folders a folder declares (hack/lint/boundaries.js)" },
    schema: [],
    messages: {
      crossing: "{{from}} may not import from {{to}} (declared: {{allowed}}); see hack/lint/boundaries.js",
    },
  },
  create(context) {
    const file = context.filename;
    const check = (node, source) => {
      if (!source || typeof source.value !== "string") return;
      const to = violation(file, source.value);
      if (!to) return;
      const from = areaOf(relative(ROOT, file).split(sep).join("/"));
      context.report({
        node,
        messageId: "crossing",
        data: { from, to, allowed: LAYERS[from].join(", ") || "nothing" },
      });
    };
    return {
      ImportDeclaration: (node) => check(node, node.source),
      ExportNamedDeclaration: (node) => check(node, node.source),
      ExportAllDeclaration: (node) => check(node, node.source),
      ImportExpression: (node) => check(node, node.source),
    };
  },
};
