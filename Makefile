# nschain: build, install, test, bench, demo.
#   make              release build: nschain, every tool a hard link to it (as installed)
#   make build-all    also each tool's own binary and the bench floor (make bench uses them)
#   make test         installs what the tests need (Debian packages, only if missing), then
#                     fmt check, clippy -D warnings, docs -D warnings, unused dependencies, function length, helper protocols,
#                     raw system calls only in common/src/sys,
#                     and every test (root tests need root)
#   make install      nschain and its tools as hard links to it, man pages and shell completions
#   make test-multicall   contract, escape and fault suites through nschain, links in process
#                     (make test runs it)
#   make test-exec-links  the same with NSCHAIN_EXEC_LINKS=1 (a real exec at every link)
#   make bench        side-by-side timings with the anchors, written to bench/RESULTS.md
#   make bench-oci    only its nsoci rows: nsoci vs runc and crun run, podman with nsoci vs runc
#   make demo         the five questions answered on three nginx containers
#   make oci-validation  the OCI conformance suite (runtime-tools) for nsoci, runc and crun
#                     side by side (long: not part of make test), into bench/oci-validation/

PREFIX   ?= /usr/local
DESTDIR  ?=
CARGO    ?= cargo
TOOLS    := $(sort $(notdir $(wildcard tools/*)))
# The suites run again with a real exec at every link (issue 14).
EXEC_LINK_SUITES := contract faults names pty $(basename $(notdir $(wildcard tests/tests/escape*.rs)))
RELEASE  := target/release
HOST     := $(shell rustc -vV | sed -n 's/^host: //p')
STATIC   := target/$(HOST)/release

# Debian packages the tests, demo and benchmarks use, as they are.
DEB_PACKAGES := busybox-static nftables slirp4netns uidmap iproute2 procps util-linux \
                curl nginx-light tini catatonit bubblewrap crun hyperfine tmux strace passt python3 gcc libc6-dev \
                bash-completion man-db golang-github-containers-common podman skopeo docker-registry apache2-utils openssl zstd umoci runc containerd

.PHONY: all build build-all install deps test test-multicall test-exec-links check unit bench demo shell clean oci-validation bench-oci

all: build

# Release binaries are static (glibc's crt-static; names are read from /etc/passwd and
# /etc/group as files, common::accounts) and not position-independent: a static-pie rewrites
# its 168 KiB of .data.rel.ro at every start, a private copy in each resident init and
# supervisor (DESIGN.md "Static binaries"). `make build PIE=1` links static-pie instead.
# Built for the explicit host target so that build scripts and proc-macros stay dynamic, then
# linked into target/release where scripts look.
# `build` makes what `make install` installs: nschain, and every tool as a hard link to it
# (one LTO link, not one per tool). `build-all` adds each tool's own binary and the bench's
# floor, which `make bench` compares.
RELOCATION := $(if $(PIE),,-C relocation-model=static)
RELEASE_BUILD := RUSTFLAGS="-C target-feature=+crt-static $(RELOCATION)" $(CARGO) build --release --target $(HOST)

build:
	$(RELEASE_BUILD) -p nschain --bin nschain
	@mkdir -p $(RELEASE); for b in nschain $(TOOLS); do ln -f $(STATIC)/nschain $(RELEASE)/$$b; done

build-all:
	$(RELEASE_BUILD) --workspace --bins
	@mkdir -p $(RELEASE); for b in nschain nschain-floor $(TOOLS); do ln -f $(STATIC)/$$b $(RELEASE)/$$b; done

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi

check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --quiet
	python3 scripts/unused-deps.py
	python3 scripts/long-functions.py
	python3 scripts/helper-protocols.py
	python3 scripts/raw-syscalls.py

test: deps check
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	$(MAKE) test-multicall

# The contract, fault and escape suites through the multi-call binary (tests/src:
# NSCHAIN_TEST_MULTICALL), links handed off in process. (`cargo test` above runs them with the
# per-tool binaries, a real exec at every link.)
test-multicall:
	$(CARGO) build --workspace --bins
	NSCHAIN_TEST_MULTICALL=1 $(CARGO) test -p nschain-tests $(addprefix --test ,$(EXEC_LINK_SUITES))

# The same through nschain with NSCHAIN_EXEC_LINKS=1 (a real exec at every link of the
# multi-call binary), for debugging the hand-off; not part of `make test` (CI time).
test-exec-links:
	$(CARGO) build --workspace --bins
	NSCHAIN_TEST_MULTICALL=1 NSCHAIN_EXEC_LINKS=1 $(CARGO) test -p nschain-tests $(addprefix --test ,$(EXEC_LINK_SUITES))

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 $(RELEASE)/nschain $(DESTDIR)$(PREFIX)/bin/nschain
	@set -e; for t in $(TOOLS); do \
		ln -f $(DESTDIR)$(PREFIX)/bin/nschain $(DESTDIR)$(PREFIX)/bin/$$t; \
		$(RELEASE)/$$t --generate man  > $(DESTDIR)$(PREFIX)/share/man/man1/$$t.1; \
		$(RELEASE)/$$t --generate bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$t; \
		$(RELEASE)/$$t --generate zsh  > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$t; \
		$(RELEASE)/$$t --generate fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$t.fish; \
		echo "installed $$t"; \
	done

bench: deps build-all
	bash bench/run.sh

# bench/oci.sh alone: nsoci run vs runc and crun run, podman with nsoci vs runc (issue 17)
bench-oci: deps build
	bash bench/oci.sh

demo: deps build
	bash demo/demo.sh

# runtime-tools' validation programs, vendored and built offline by its run.sh (issue 17):
# one line per program, "ok N not-ok N skip N name", and a TOTAL line per runtime.
OCI_VALIDATION ?= /work/shared/oci-validation/run.sh
oci-validation: deps build
	@mkdir -p bench/oci-validation
	@# The bundles go under a directory only root can enter (mktemp -d: 0700): else mntns's
	@# setuid guard rightly drops CAP_FSETID/CAP_SETFCAP from a root others can reach.
	@# runc 1.1.5 leaves linux_ns_itype's rootfs mounts (/proc, /sys, /dev...) on the host:
	@# they are unmounted before the directory goes.
	@for rt in $(CURDIR)/$(RELEASE)/nsoci /usr/sbin/runc /usr/bin/crun; do \
		echo "== $$rt"; tmp=$$(mktemp -d); \
		TMPDIR=$$tmp $(OCI_VALIDATION) $$rt $(OCI_TESTS) | tee bench/oci-validation/$$(basename $$rt).txt | tail -1; \
		awk -v t="$$tmp/" 'index($$5, t) == 1 {print $$5}' /proc/self/mountinfo | sort -r | xargs -r umount -l; \
		rm -rf $$tmp; \
	done

# An interactive container over a copy-on-write view of this machine's root, deleted on exit.
shell: build
	@if [ "$$(id -u)" = 0 ]; then \
		PATH=$(CURDIR)/$(RELEASE):$$PATH netns -- ipcns -- utsns --hostname nschain -- pidns -- \
			mntns --overlay / --rm --tty -- bash; \
	else \
		PATH=$(CURDIR)/$(RELEASE):$$PATH userns -- netns -- ipcns -- utsns --hostname nschain -- pidns -- \
			mntns --overlay / --rm --tty -- bash; \
	fi

clean:
	$(CARGO) clean
