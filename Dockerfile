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
ENTRYPOINT ["node", "/app/controller.mjs"]
