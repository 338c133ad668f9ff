import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { boundariesRule } from "./hack/lint/boundaries.js";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".tools/", ".cluster/", "coverage/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": ["error", { allow: ["error"] }],
    },
  },
  {
    files: ["test/**", "hack/**", "bench/**"],
    rules: { "no-console": "off" },
  },
  {
    // Library boundaries: which folder may import from which (hack/lint/boundaries.js).
    files: ["**/*.ts"],
    plugins: { ms2m: { rules: { boundaries: boundariesRule } } },
    rules: { "ms2m/boundaries": "error" },
  },
);
