# ov-init: a container init (PID 1) that injects sealed secrets.
# make build | make test | make demo — see README.md.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short=7 HEAD 2>/dev/null)
LDFLAGS  := -s -w -X github.com/ov-init/ov-init/initcmd.Version=$(VERSION) -X github.com/ov-init/ov-init/initcmd.Commit=$(COMMIT)
GOBUILD  := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"

.PHONY: all build test unit integration lint fuzz demo image bench clean bin/ov-init bin/ov

all: build

build: bin/ov-init bin/ov

# Always asked of go build, whose cache makes it cheap: a binary built by
# hand (say with cgo) must never be taken for the static one.
bin/ov-init:
	$(GOBUILD) -o $@ ./init

bin/ov:
	$(GOBUILD) -o $@ ./ov

# Every test: formatting, vet, unit tests (with the race detector), the
# release check and the end-to-end tests that run the binaries as PID 1
# (root needed); then the unit and PID-1 tests again for arm64.
test: build lint
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)
	./scripts/release-check
	./scripts/docker-up
	./scripts/debian-images
	./scripts/compose-v2
	./scripts/kubernetes-build >/dev/null
	$(GO) test -count=1 -p 1 -timeout 30m ./integration/...
	@$(MAKE) --no-print-directory test-arm64
	@$(MAKE) --no-print-directory fuzz

.PHONY: test-arm64 release

# The unit tests and the PID-namespace suite (integration/, not the
# container tests) for arm64: under qemu-user on an amd64 machine, which
# scripts/qemu-arm64 sets up (root, apt), natively on an arm64 one. No
# -race: it needs cgo, which a cross build lacks. The suite itself runs
# natively and builds ov-init, ov and its helper for arm64 (OV_TEST_GOARCH):
# under qemu-user it could start no PID 1. TESTING.md, "arm64 under
# qemu-user", lists what skips there and why, and why that suite, alone,
# gets a second run of what did not pass (a qemu-user hang).
test-arm64:
	./scripts/qemu-arm64
	GOARCH=arm64 $(GO) test -count=1 $$($(GO) list ./... | grep -v /integration)
	./scripts/test-arm64-integration

# Release binaries: ov-init and ov for linux and each RELEASE_ARCHES, as
# $(DIST)/NAME-linux-ARCH, and $(DIST)/SHA256SUMS. Static and stripped as
# make build's, and reproducible: no VCS stamp and the instruction-set
# levels pinned, so the same source, VERSION, COMMIT and Go release give the
# same bytes (scripts/release-check proves it). GOFLAGS, from the
# environment or `go env -w`, is replaced by -mod=readonly, go build's
# default: a -tags there would change the bytes. Outside a git checkout, say
# what to stamp: make release VERSION=v1.2.0 COMMIT=abc1234.
DIST           ?= dist
RELEASE_ARCHES := amd64 arm64

release:
	@mkdir -p $(DIST)
	@set -e; for arch in $(RELEASE_ARCHES); do \
	  for bin in ov-init:./init ov:./ov; do \
	    out=$(DIST)/$${bin%%:*}-linux-$$arch; echo "$$out"; \
	    GOOS=linux GOARCH=$$arch GOAMD64=v1 GOARM64=v8.0 GOFLAGS=-mod=readonly $(GOBUILD) -buildvcs=false -o "$$out" $${bin#*:}; \
	  done; \
	done
	cd $(DIST) && sha256sum $(foreach a,$(RELEASE_ARCHES),ov-init-linux-$(a) ov-linux-$(a)) >SHA256SUMS

# gofmt, go vet and staticcheck, at a pinned version run through the Go
# module proxy (the first run builds it, later runs take it from the cache).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt: these files need formatting:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Each fuzz target for a bounded number of inputs, about 20 s each on 2
# cores. A count rather than a duration: with a duration, go test can fail
# with "context deadline exceeded" when time runs out mid-exchange with a
# fuzzing worker, which is no finding.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 400000x ./vault
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime 25000x ./keyload
	$(GO) test -run '^$$' -fuzz '^FuzzCommandLine$$' -fuzztime 20000x ./initcmd
	$(GO) test -run '^$$' -fuzz '^FuzzParseRewrite$$' -fuzztime 400000x ./initcmd

demo: build
	@./scripts/demo

# ov-init against tini, dumb-init and catatonit, side by side (root needed;
# installs the peers it lacks from Debian). Prints a markdown table.
bench: build
	$(GO) run ./bench -ov-init bin/ov-init

# The FROM scratch image holding /ov-init, to copy from (see Dockerfile).
image: bin/ov-init
	docker build -q -t ov-init:latest . >/dev/null

clean:
	rm -rf bin dist
