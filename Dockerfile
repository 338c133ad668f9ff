# ms2m-controller: the esbuild bundle of src/cmd/controller.ts (dist/bundle/controller.mjs, every
# dependency inside, no node_modules) on a Node.js 24 base, as a non-root user.
# The bundle is built outside the image, first; `make docker-build` and `make images` do both:
#   npm run bundle && docker build -f Dockerfile -t ms2m-controller .
# BASE: a Node.js 24 image with node on PATH or in /nodejs/bin (distroless). `make images` builds
# daemonless (buildah) on a local base instead: --build-arg BASE=localhost/ms2m-base-node:24
# (hack/images/bases.sh).
ARG BASE=gcr.io/distroless/nodejs24-debian12:nonroot
FROM ${BASE}
LABEL org.opencontainers.image.title=ms2m-controller \
      org.opencontainers.image.description="ms2m controller: reconciles StatefulMigrations"
# distroless keeps node in /nodejs/bin, off PATH: with it on PATH one ENTRYPOINT fits every base.
ENV PATH=/nodejs/bin:$PATH \
    NODE_ENV=production
WORKDIR /app
COPY dist/bundle/controller.mjs ./
# distroless's nonroot user; config/controller/deployment.yaml runs as the same uid.
USER 65532:65532
EXPOSE 8080 8081
# --max-semi-space-size=2: left alone, V8 grows the young generation to 128 MiB under a burst of
# reconciles (100 concurrent migrations); 2 MiB semi-spaces keep it at 4 MiB, the peak RSS of that
# burst went from 320 to 217 MiB with the metadata-only watches, CPU per migration not higher
# (docs/benchmarks.md, "Controller memory").
# --optimize-for-size: V8 grows the old generation less between major GCs; the same burst peaks
# at 139-140 MiB instead of 171 MiB, for about a fifth more CPU (187 -> 222 ms per migration, a
# tenth of a core during the drain).
ENTRYPOINT ["node", "--max-semi-space-size=2", "--optimize-for-size", "/app/controller.mjs"]
