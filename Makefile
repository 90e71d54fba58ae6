# Builds and installs binfmt-dispatcher (see README.md, "Installing").
#
#   make && sudo make install                 # into /usr
#   make install PREFIX=/usr/local            # or elsewhere
#   make install DESTDIR=$PWD/pkgroot         # staged, for a package
#   make uninstall                            # same variables as install
#
# HOST_ARCH (default: `uname -m`) is the machine the package is for: the
# binfmt.d files skip the architectures it runs natively (none: all).

DESTDIR ?=
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/binfmt-dispatcher
BINFMTDIR ?= $(LIBDIR)/binfmt.d
UNITDIR ?= $(LIBDIR)/systemd/system
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
POLKITACTIONSDIR ?= $(DATADIR)/polkit-1/actions
CACHEDIR ?= /var/cache/binfmt-dispatcher
# Where packages drop configuration fragments (binfmtctl reads this one,
# whatever PREFIX is).
VENDORDIR ?= /usr/lib/binfmt-dispatcher.d
HOST_ARCH ?= $(shell uname -m)

CARGO ?= cargo
CARGOFLAGS ?= --release
TARGET_DIR ?= target
RELEASE := $(TARGET_DIR)/release
BINFMTCTL := $(RELEASE)/binfmtctl
# binfmtctl(1) and binfmtctl-COMMAND(1), generated from binfmtctl's command
# line: BINFMTCTL_WRITE_MAN=1 cargo test -p binfmtctl --test binfmtctl shipped_man_pages
MAN1 := $(wildcard docs/binfmtctl.1 docs/binfmtctl-*.1)

all: build

build:
	$(CARGO) build $(CARGOFLAGS) --bins

check:
	scripts/test

clean:
	$(CARGO) clean

# The binaries are built when missing, so that `make && sudo make install`
# does not run cargo as root.
$(RELEASE)/binfmt-dispatcher $(RELEASE)/binfmtctl:
	$(CARGO) build $(CARGOFLAGS) --bins

install: install-bin install-data

install-bin: $(RELEASE)/binfmt-dispatcher $(RELEASE)/binfmtctl
	install -Dpm0755 -t $(DESTDIR)$(BINDIR)/ $(RELEASE)/binfmt-dispatcher $(RELEASE)/binfmtctl

# The binfmt.d files come from data/binfmt-arches.tsv through binfmtctl,
# with the installed path of the dispatcher; the units name binfmtctl's.
install-data: $(BINFMTCTL)
	$(BINFMTCTL) binfmt-d --host $(HOST_ARCH) \
		--interpreter $(BINDIR)/binfmt-dispatcher --output $(DESTDIR)$(BINFMTDIR)
	chmod 0644 $(DESTDIR)$(BINFMTDIR)/zz-binfmt-dispatcher-*.conf
	install -dm0755 $(DESTDIR)$(UNITDIR)
	for u in binfmt-dispatcher-compile.path binfmt-dispatcher-compile.service; do \
		sed 's|/usr/bin/binfmtctl|$(BINDIR)/binfmtctl|g' data/$$u > $(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -Dpm0644 data/binfmt-dispatcher.toml $(DESTDIR)$(DATADIR)/binfmt-dispatcher/binfmt-dispatcher.toml
	install -Dpm0644 data/binfmt-arches.tsv $(DESTDIR)$(DATADIR)/binfmt-dispatcher/binfmt-arches.tsv
	install -Dpm0755 data/missing-interpreter $(DESTDIR)$(LIBEXECDIR)/binfmt-dispatcher/missing-interpreter
	install -Dpm0644 -t $(DESTDIR)$(POLKITACTIONSDIR)/ data/org.AsahiLinux.binfmt_dispatcher.policy
	install -Dpm0644 docs/binfmt-dispatcher.toml.example $(DESTDIR)$(DOCDIR)/binfmt-dispatcher.toml.example
	install -Dpm0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -Dpm0644 -t $(DESTDIR)$(MANDIR)/man1/ $(MAN1)
	install -Dpm0644 -t $(DESTDIR)$(MANDIR)/man5/ docs/binfmt-dispatcher.toml.5
	install -Dpm0644 data/completions/binfmtctl.bash $(DESTDIR)$(BASHCOMPDIR)/binfmtctl
	install -Dpm0644 data/completions/_binfmtctl $(DESTDIR)$(ZSHCOMPDIR)/_binfmtctl
	install -Dpm0644 data/completions/binfmtctl.fish $(DESTDIR)$(FISHCOMPDIR)/binfmtctl.fish
	install -dm0755 $(DESTDIR)$(CACHEDIR)
	install -dm0755 $(DESTDIR)$(VENDORDIR)

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/binfmt-dispatcher $(DESTDIR)$(BINDIR)/binfmtctl
	rm -f $(DESTDIR)$(BINFMTDIR)/zz-binfmt-dispatcher-*.conf
	rm -f $(DESTDIR)$(LIBEXECDIR)/binfmt-dispatcher/missing-interpreter
	-rmdir $(DESTDIR)$(LIBEXECDIR)/binfmt-dispatcher
	rm -f $(DESTDIR)$(POLKITACTIONSDIR)/org.AsahiLinux.binfmt_dispatcher.policy
	rm -f $(DESTDIR)$(UNITDIR)/binfmt-dispatcher-compile.path $(DESTDIR)$(UNITDIR)/binfmt-dispatcher-compile.service
	rm -f $(DESTDIR)$(DATADIR)/binfmt-dispatcher/binfmt-dispatcher.toml $(DESTDIR)$(DATADIR)/binfmt-dispatcher/binfmt-arches.tsv
	-rmdir $(DESTDIR)$(DATADIR)/binfmt-dispatcher
	rm -f $(DESTDIR)$(DOCDIR)/binfmt-dispatcher.toml.example $(DESTDIR)$(DOCDIR)/README.md
	-rmdir $(DESTDIR)$(DOCDIR)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1)))
	rm -f $(DESTDIR)$(MANDIR)/man5/binfmt-dispatcher.toml.5
	rm -f $(DESTDIR)$(BASHCOMPDIR)/binfmtctl $(DESTDIR)$(ZSHCOMPDIR)/_binfmtctl $(DESTDIR)$(FISHCOMPDIR)/binfmtctl.fish
	rm -f $(DESTDIR)$(CACHEDIR)/binfmt-dispatcher.cache
	-rmdir $(DESTDIR)$(CACHEDIR)
	-rmdir $(DESTDIR)$(VENDORDIR)

.PHONY: all build check clean install install-bin install-data uninstall
