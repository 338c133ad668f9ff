# ms2m — every target runs with the project's Node.js (hack/env.sh) after `make setup`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ENV := source hack/env.sh &&
IMAGE_REGISTRY ?= ghcr.io/ms2m
VERSION ?= 0.1.0
CONTROLLER_IMAGE ?= $(IMAGE_REGISTRY)/ms2m-controller:$(VERSION)
AGENT_IMAGE ?= $(IMAGE_REGISTRY)/ms2m-agent:$(VERSION)
WORKLOAD_IMAGE ?= $(IMAGE_REGISTRY)/ms2m-workload:$(VERSION)

.PHONY: help setup test test-unit test-component test-cluster test-real test-long lint format typecheck manifests \
	build bundle images images-push docker-build docker-push cluster-up cluster-down deploy undeploy release-check clean

help: ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## Install what this machine lacks: Node 24, Debian packages, npm deps, the Go-built control plane.
	bash hack/setup.sh

test: setup ## Everything: lint, typecheck, CRD drift, unit, component and cluster tests.
	$(ENV) $(MAKE) --no-print-directory lint typecheck
	$(ENV) node hack/run-tests.ts

test-unit: ## Unit tests only (no external parts).
	$(ENV) vitest run --project unit

test-component: ## Tests against real RabbitMQ, skopeo, containers-storage and a registry.
	$(ENV) vitest run --project component

test-cluster: ## Tests against a real control plane with simulated nodes.
	$(ENV) vitest run --project cluster --no-file-parallelism

test-real: ## Tests against a real control plane with real nodes (kubelet + CRI-O + runc + CRIU).
	$(ENV) vitest run --project real --no-file-parallelism

test-long: ## Long matrices (chaos suite) on a real control plane; not part of `make test`.
	$(ENV) MS2M_TEST_LONG=1 vitest run --project long --no-file-parallelism

lint: ## ESLint and Prettier.
	$(ENV) eslint . && prettier --check . --log-level warn

format: ## Rewrite files with Prettier.
	$(ENV) prettier --write . --log-level warn

typecheck: ## TypeScript, strict.
	$(ENV) tsc --noEmit -p tsconfig.json

manifests: ## Regenerate crd/ from the zod schema.
	$(ENV) node hack/gen-crd.ts

build: ## Compile to dist/ with tsc (the images run bundles instead: make bundle).
	$(ENV) rm -rf dist && tsc -p tsconfig.build.json

bundle: ## Bundle each entry point (esbuild) into dist/bundle/<name>.mjs: all the images copy.
	$(ENV) node hack/images/bundle.ts

images: ## Build the three images without a Docker daemon (buildah, local bases) into .build/images/.
	$(ENV) node hack/images/images.ts build --tag $(VERSION)

REGISTRY ?=
images-push: ## Push the images `make images` built to REGISTRY=host:port as REGISTRY/ms2m/<name>:VERSION.
	@[[ -n "$(REGISTRY)" ]] || { echo "usage: make images-push REGISTRY=host:port" >&2; exit 2; }
	$(ENV) bash hack/images/push.sh $(REGISTRY) --tag $(VERSION)

docker-build: bundle ## Build the controller, agent and workload images (needs a Docker engine).
	docker build -f Dockerfile -t $(CONTROLLER_IMAGE) .
	docker build -f Dockerfile.agent -t $(AGENT_IMAGE) .
	docker build -f workload/Dockerfile -t $(WORKLOAD_IMAGE) .

docker-push: ## Push the images.
	docker push $(CONTROLLER_IMAGE)
	docker push $(AGENT_IMAGE)
	docker push $(WORKLOAD_IMAGE)

RUNTIME ?= simulated
STRATEGY ?= ShadowPod
TRANSFER ?= Direct
RATE ?= 20
SCENARIO ?= migrate
NODES ?= $(if $(filter drain,$(SCENARIO)),3,2)
KEEP ?= 0
.PHONY: demo
demo: setup ## The main job end to end: cluster, ms2m, workload, one migration, summary (RUNTIME=simulated|real SCENARIO=migrate|drain NODES=2 (3 for drain) STRATEGY=ShadowPod|Sequential TRANSFER=Direct|Registry RATE=20 KEEP=1).
	$(ENV) MS2M_NODES=$(NODES) node hack/demo.ts --runtime=$(RUNTIME) --scenario=$(SCENARIO) --strategy=$(STRATEGY) --transfer=$(TRANSFER) --rate=$(RATE) $(if $(filter 1 true yes,$(KEEP)),--keep)

cluster-up: setup ## Start a local cluster (RUNTIME=simulated|real NODES=2); prints the KUBECONFIG to use.
	$(ENV) MS2M_RUNTIME=$(RUNTIME) MS2M_NODES=$(NODES) node hack/cluster.ts up

cluster-down: ## Stop the local cluster and remove everything it made.
	$(ENV) node hack/cluster.ts down

deploy: ## Deploy config/default to the `make cluster-up` cluster, the controller as its Deployment from the cluster registry's images.
	$(ENV) node hack/deploy.ts

CRDS ?= 0
undeploy: ## Remove what `make deploy` deployed (CRDS=1: the CRDs too, and with them every migration).
	$(ENV) node hack/deploy.ts --undeploy $(if $(filter 1 true yes,$(CRDS)),--crds)

TAG ?=
release-check: ## One semantic version everywhere (package.json's); TAG=vX.Y.Z: the tag matches and CHANGELOG.md has its section.
	$(ENV) node hack/release-check.ts $(if $(TAG),--tag $(TAG))

clean: ## Remove build output (not the control-plane and base-image caches).
	rm -rf dist .build coverage .test-results*.json
