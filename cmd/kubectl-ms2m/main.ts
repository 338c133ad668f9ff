#!/usr/bin/env node
// kubectl-ms2m: the kubectl plugin (`kubectl ms2m ...`: kubectl runs any kubectl-* on the PATH).
// Shipped as the npm package's bin (bundled: dist/bundle/kubectl-ms2m.mjs) and through krew.
import { main } from "../../src/cli/main.ts";
import { processIo } from "../../src/cli/output.ts";

process.exitCode = await main(process.argv.slice(2), processIo());
