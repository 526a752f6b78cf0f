# govmm build, test and tooling. `make run` and `make test` are the two
# commands a new machine needs; both install what they lack first.

GO        ?= go
BIN       := bin/govmm
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
APT_DEPS  := gcc make binutils pkg-config libseccomp-dev checksec
STATICCHECK_VERSION := v0.8.2

# Hardening (OpenStack QEMU guidance, Debian's hardening flags). These two
# variables are cross-checked against internal/buildflags by a test, so the
# Makefile and the hardening test cannot drift apart.
CGO_CFLAGS_HARDEN := -O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
HARDEN_LDFLAGS := -Wl,-z,relro,-z,now -Wl,-z,noexecstack

export CGO_ENABLED := 1
export CGO_CFLAGS := $(CGO_CFLAGS_HARDEN)
export CGO_LDFLAGS := $(HARDEN_LDFLAGS)

GOFLAGS_BUILD := -trimpath -buildmode=pie \
	-ldflags "-X main.version=$(VERSION) -linkmode=external -extldflags '$(HARDEN_LDFLAGS)'"

GUESTS := tests/guest/build/.stamp

.PHONY: all build run test test-unit test-short fuzz-short fuzz bench lint \
	check-hardening deps guests demo demo-check guest-kernel clean

all: build

deps:
	@scripts/deps.sh $(APT_DEPS)
	@$(GO) mod download

build: deps
	@$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/govmm

run: build
	$(BIN) run

guests: deps
	@$(MAKE) -s -C tests/guest all

# The committed demo guest must be exactly what its source builds to.
demo:
	@$(MAKE) -s -C tests/guest demo
demo-check: deps
	@$(MAKE) -s -C tests/guest demo-check

# Everything: unit and integration tests (KVM tests run wherever /dev/kvm
# exists), the demo reproducibility check, and a few seconds per fuzz target.
test: build guests demo-check
	@$(GO) vet ./...
	GOVMM_BIN=$(CURDIR)/$(BIN) GOVMM_GUESTS=$(CURDIR)/tests/guest/build \
		$(GO) test -count=1 -timeout 20m ./...
	@scripts/fuzz.sh 3s

fuzz: deps
	@scripts/fuzz.sh $${FUZZTIME:-2m}

# QEMU microvm is the peer the startup benchmark measures in the same run.
bench: build guests
	@scripts/deps.sh qemu-system-x86
	GOVMM_BIN=$(CURDIR)/$(BIN) GOVMM_GUESTS=$(CURDIR)/tests/guest/build \
		$(GO) test -run='^$$' -bench=. -benchmem -count=$${COUNT:-5} ./...

lint: deps
	$(GO) vet ./...
	@# The tool is built without cgo and our hardening link flags, then run
	@# with cgo so that it can load the packages that use libseccomp.
	@GOBIN=$(CURDIR)/bin CGO_ENABLED=0 CGO_LDFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	bin/staticcheck ./...

check-hardening: build
	GOVMM_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -run 'TestHardenedBinary' ./tests/
	@# checksec exits 0 whatever it finds, so gate on its CSV columns. The
	@# canary column is not gated: Go's runtime/cgo is built without one.
	@if command -v checksec >/dev/null; then \
		checksec --file=$(BIN) --output=csv | tee /dev/stderr | \
		awk -F, '$$1!="Full RELRO" || $$3!="NX enabled" || $$4!="PIE enabled" {exit 1}'; \
	else echo "check-hardening: checksec not installed; only the Go test ran"; fi

# A minimal Linux for hosts with VT-x/AMD-V, from Debian's linux-source-6.1
# and guest/kernel/govmm.config, built outside the repository.
guest-kernel:
	@scripts/guest-kernel.sh

clean:
	rm -rf bin
	@$(MAKE) -s -C tests/guest clean
