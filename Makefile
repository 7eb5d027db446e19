# Flotilla's developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

MEMBERS ?= 3
PROVIDER ?= local
CARGO ?= cargo
export MEMBERS PROVIDER

TESTBED := e2e/testbed/clusters.sh
FLOTILLA_CACHE ?= $(HOME)/.cache/flotilla
export PATH := $(FLOTILLA_CACHE)/bin:$(PATH)

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

## --- build and check -------------------------------------------------------------------------
.PHONY: build
build: ## Build every crate
	$(CARGO) build --workspace --all-targets

.PHONY: crds
crds: ## Regenerate crds/*.yaml from the Rust types, and the chart's copies and manifests/install
	$(CARGO) run -q -p flotilla-api --features crdgen --bin crdgen -- crds
	charts/flotilla/sync-crds.sh
	charts/flotilla/render-manifests.sh

.PHONY: manifests
manifests: crds ## Same as crds: every generated file

.PHONY: check
check: ## fmt, clippy -D warnings, and generated files in sync with the code
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	  $(CARGO) run -q -p flotilla-api --features crdgen --bin crdgen -- $$tmp >/dev/null; \
	  if ! diff -ru crds $$tmp; then echo "crds/ is stale: run 'make crds' and commit" >&2; exit 1; fi
	charts/flotilla/sync-crds.sh --check
	charts/flotilla/render-manifests.sh --check
	helm lint --strict charts/flotilla
	@echo "check: ok"

## --- tests -----------------------------------------------------------------------------------
.PHONY: test
test: test-unit e2e e2e-floor ## Unit tests, the e2e suite on Kubernetes 1.34, then the smoke subset on 1.20

.PHONY: test-unit
test-unit: ## Unit and property tests (no clusters)
	$(CARGO) test --workspace --exclude flotilla-e2e

.PHONY: e2e
e2e: ## End-to-end tests on the test bed (KUBE_VERSION=1.34|1.20); up if needed, down after if it started it (on 1.34 with nodes: the operator in pods too, in_cluster.rs)
	e2e/run.sh

# The compatibility floor: one test each of install, propagation, failover, drift, scaling, any kind,
# propagation policies and validation (the controller's checks, no CEL) on a Kubernetes 1.20 test bed of its own (own state dir and ports, so it never meets the main bed).
# Its install test runs the operator as a process with the chart's ServiceAccount token (a 1.20 bed
# has no node); the operator as the chart's pods, from its own image, is in_cluster.rs, which
# `make e2e` runs on the 1.34 bed with nodes.
FLOOR_STATE ?= $(CURDIR)/e2e/.state-floor
FLOOR_PORT_BASE ?= 28000
FLOOR_TESTS := chart_installs_and_its_service_account_is_enough_and_no_more \
  the_example_is_propagated_with_its_overrides \
  failover_on_kill_and_failback \
  enforce_reverts_and_records_the_correction \
  scales_with_a_prometheus_metric_within_its_policies_and_weights \
  a_whole_application_is_federated_fails_over_and_is_cleaned_up \
  a_helm_chart_on_the_host_is_propagated_by_one_policy_with_its_dependencies \
  semantic_mistakes_are_refused_at_admission_or_reported_as_conditions

.PHONY: e2e-floor
e2e-floor: ## Smoke subset (install, propagation, failover, drift, scaling, any kind, policies) on a Kubernetes 1.20 bed of its own
	KUBE_VERSION=1.20 FLOTILLA_STATE=$(FLOOR_STATE) FLOTILLA_PORT_BASE=$(FLOOR_PORT_BASE) \
	  e2e/run.sh --exact $(FLOOR_TESTS)

.PHONY: tools
tools: ## Install what the test beds need (etcd, kube-apiserver, kube-controller-manager for 1.34 and 1.20; scheduler, kubelet, kube-proxy, containerd for the 1.34 nodes; helm)
	KUBE_VERSION=1.34 e2e/testbed/install-tools.sh
	KUBE_VERSION=1.20 e2e/testbed/install-tools.sh

## --- the local test bed ----------------------------------------------------------------------
.PHONY: clusters-up
clusters-up: ## Start 1 host + $(MEMBERS) member clusters (PROVIDER=local|kind)
	$(TESTBED) up

.PHONY: clusters-down
clusters-down: ## Stop every test-bed cluster and free its ports
	$(TESTBED) down

.PHONY: clusters-env
clusters-env: ## Print how to use the test bed (KUBECONFIG, contexts, logs)
	@$(TESTBED) env

.PHONY: clusters-status
clusters-status: ## One line per test-bed cluster
	@$(TESTBED) status

## --- demo ------------------------------------------------------------------------------------
.PHONY: demo
demo: ## Bring up the test bed, install the CRDs, apply the examples and show them
	e2e/demo.sh

## --- benchmarks (lines: BENCH <name> <value> <unit>) -------------------------------------------
.PHONY: bench
bench: bench-placement bench-leader bench-drift bench-propagation bench-scale bench-anykind bench-ceiling bench-scaling bench-scaling-cost ## Every benchmark

.PHONY: bench-placement
bench-placement: ## Placement engine benchmarks (no clusters)
	$(CARGO) bench -q -p flotilla-placement --bench placement 2>/dev/null | grep '^BENCH'

.PHONY: bench-drift
bench-drift: ## Status syncer: drift detection and correction latency, status bytes, steady-state writes (test bed)
	e2e/bench.sh drift

.PHONY: bench-propagation
bench-propagation: ## FederatedIngress distribution (burst of 1,000 and single), failover time, operator memory (test bed)
	e2e/bench.sh propagation

.PHONY: bench-scale
bench-scale: ## FederatedIngress at 10,000 objects x 10 members, isolation from a hung member, memory, restart resync, health-flip writes (test bed grown to 10; BENCH_SCALE_OBJECTS=… to scale down)
	e2e/bench.sh scale

.PHONY: bench-anykind
bench-anykind: ## Any kind: 1,000 FederatedObjects (Deployments) and 1,000 ConfigMaps by one PropagationPolicy, each on 10 members; operator memory (test bed grown to 10)
	e2e/bench.sh anykind

.PHONY: bench-ceiling
bench-ceiling: ## What the test bed allows with no operator: the floor under bench-scale's and bench-anykind's latency and all-copies figures (test bed grown to 10)
	e2e/bench.sh ceiling

.PHONY: bench-scaling
bench-scaling: ## ScalingPolicy reaction time from a metric change to replicas in every member (test bed + Prometheus)
	e2e/bench.sh scaling

.PHONY: bench-scaling-cost
bench-scaling-cost: ## ScalingPolicy cost at rest: member requests per second with 500 policies on federated Deployments x 10 members, operator memory (test bed grown to 10 + Prometheus)
	e2e/bench.sh scaling_cost

.PHONY: bench-leader
bench-leader: ## Leader failover time of two operator replicas (test bed)
	e2e/bench.sh leader
