// The esbuild bundles the images ship (hack/images/bundle.ts), for benchmarks that run a binary
// as its image does.
export { bundle, type BundleName, type BundleOptions } from "../hack/images/bundle.ts";
