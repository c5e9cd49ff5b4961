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

# Every test: formatting, vet, unit tests (with the race detector) and the
# end-to-end tests that run the binaries as PID 1 (root needed).
test: build lint
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)
	./scripts/docker-up
	./scripts/debian-images
	./scripts/compose-v2
	$(GO) test -count=1 -p 1 -timeout 30m ./integration/...
	@$(MAKE) --no-print-directory fuzz

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
	rm -rf bin
