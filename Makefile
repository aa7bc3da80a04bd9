# cocoon build. `make` builds the host tools and the guest agent/initramfs;
# `make guest` adds the guest kernel and default image (cached outside the clone);
# `make demo` sets up the machine and runs a real sandbox; `make test` runs everything.
# A sanitizer build of the host code lives in build/asan (make SANITIZE=1 BUILD=build/asan).

# `make` alone means `make all` (the first rule below is a library's).
.DEFAULT_GOAL := all

BUILD ?= build
SANITIZE ?=
CC ?= gcc
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3
# V=1 shows the full compiler command lines.
Q := $(if $(V),,@)

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wformat=2 -Wstrict-prototypes
BASE_CFLAGS := -std=gnu11 -O2 -g $(WARN) -Iinclude -Isrc -D_GNU_SOURCE \
	-DCOCOON_VERSION='"$(VERSION)"' -DCOCOON_GIT_REV='"$(GIT_REV)"'
ifeq ($(SANITIZE),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
BASE_CFLAGS := $(subst -O2,-O1,$(BASE_CFLAGS))
endif
# FUZZ=1 (with CC=clang): coverage for libFuzzer on every object, as scripts/fuzz-smoke builds.
ifeq ($(FUZZ),1)
SAN_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
BASE_CFLAGS := $(subst -O2,-O1,$(BASE_CFLAGS))
endif
# libcurl, libarchive and libext2fs (with their TLS, Kerberos, LDAP, XML and ICU
# dependencies, ~15 ms of loading) and libyaml are compiled against but not linked:
# libcocoon dlopens them on first use (src/util/dynlib.h), so commands that never pull,
# load, copy files or read a cocoon.yaml start fast.
HOST_PKGS := jansson libcurl libarchive ext2fs com_err sqlite3 yaml-0.1
LINK_PKGS := jansson sqlite3
HOST_CFLAGS := $(BASE_CFLAGS) $(SAN_FLAGS) -fPIC $(shell $(PKG_CONFIG) --cflags $(HOST_PKGS) 2>/dev/null) $(CFLAGS)
HOST_LIBS := $(shell $(PKG_CONFIG) --libs $(LINK_PKGS) 2>/dev/null) -lpthread -ldl
# The agent is PID 1 of the guest: static, no sanitizer, no host libraries.
AGENT_CFLAGS := $(BASE_CFLAGS) -static

OBJ := $(BUILD)/obj
SHARE := $(BUILD)/share/cocoon
ILIB := $(BUILD)/lib/internal

# Internal static libraries, one per part (src/<part>), built once and linked by the
# library, the binaries, the unit tests, the fuzzers, tests/kvm and tests/nested. A
# linker pulls from an archive only the objects a program needs.
PARTS := util proto boxcfg net disk image jail kvm monitor config lib serve mcp
src_of = $(wildcard src/$(1)/*.c) $(if $(filter kvm,$(1)),$(wildcard src/kvm/dev/*.c)) \
	$(if $(filter serve,$(1)),src/serve/openapi_blob.S) $(if $(filter lib,$(1)),src/lib/code_blob.S)
obj_of = $(patsubst %.S,$(OBJ)/%.o,$(patsubst %.c,$(OBJ)/%.o,$(filter-out src/monitor/main.c src/serve/main.c,$(call src_of,$(1)))))
$(foreach p,$(PARTS),$(eval $(ILIB)/lib$(p).a: $(call obj_of,$(p))))
$(ILIB)/%.a:
	@mkdir -p $(dir $@)
	@echo '  AR      $@'
	$(Q)rm -f $@ && ar rcs $@ $^
lib_of = $(foreach p,$(1),$(ILIB)/lib$(p).a)
# What libcocoon is made of, and what the monitor is made of (in link order).
LIB_PARTS := lib config image disk boxcfg net jail proto util
VMM_PARTS := monitor kvm jail boxcfg net disk proto util
# Every part, dependents before what they use (the order a static link needs).
ALL_ILIBS := $(call lib_of,serve mcp serve lib config monitor kvm image disk boxcfg net jail proto util)

CLI_SRC := $(wildcard src/cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(OBJ)/%.o)
VMM_MAIN := $(OBJ)/src/monitor/main.o
AGENT_SRC := $(wildcard src/agent/*.c)

SONAME := libcocoon.so.0
HOST_BINS := $(BUILD)/bin/cocoon $(BUILD)/bin/cocoon-vmm $(BUILD)/bin/cocoon-serve $(BUILD)/lib/libcocoon.so \
	$(BUILD)/lib/libcocoon.a
GUEST_BINS := $(SHARE)/cocoon-agent $(SHARE)/initramfs.cpio

.PHONY: all host agent guest kernel image code-image demo test unit unit-bins fuzz integration bench setup clean format check-format asan \
	kvm-tests nested-tools source-check install uninstall hostile
all: host agent hostile

host: $(HOST_BINS)
agent: $(GUEST_BINS)
guest: agent kernel image
kernel:
	@scripts/build-kernel $(SHARE)/vmlinux >/dev/null
image:
	@scripts/build-image $(SHARE)/images/default.ext4 >/dev/null
# The code-interpreter image (python3 + numpy, pandas, matplotlib; nodejs): not part of
# `guest`, built once and cached like the default image.
code-image:
	@scripts/build-code-image $(SHARE)/images/code-interpreter.ext4 >/dev/null

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	$(Q)$(CC) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

# The OpenAPI document, built into cocoon-serve (served at GET /v1/openapi.yaml).
$(OBJ)/src/serve/openapi_blob.o: src/serve/openapi_blob.S docs/openapi.yaml
	@mkdir -p $(dir $@)
	@echo '  AS      $<'
	$(Q)$(CC) -c $< -o $@

# The code interpreter's guest programs, built into libcocoon (written into boxes on use).
$(OBJ)/src/lib/code_blob.o: src/lib/code_blob.S src/guest/code/ctx.py src/guest/code/ctx.js
	@mkdir -p $(dir $@)
	@echo '  AS      $<'
	$(Q)$(CC) -c $< -o $@

$(OBJ)/agent/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC      $< (agent)'
	$(Q)$(CC) $(AGENT_CFLAGS) -MMD -MP -c $< -o $@

# The public static library carries every object it may need, so `-lcocoon` alone links.
$(BUILD)/lib/libcocoon.a: $(foreach p,$(LIB_PARTS),$(call obj_of,$(p)))
	@mkdir -p $(dir $@)
	@echo '  AR      $@'
	$(Q)rm -f $@ && ar rcs $@ $^

# The shared library exports cocoon_* only (src/lib/libcocoon.map) and pulls from the
# internal archives just what those functions reach (so not the TCP stack). -z defs
# makes a symbol left undefined (an archive in the wrong order) a link error; sanitizer
# builds leave the sanitizer's symbols to the program.
SO_DEFS := $(if $(SAN_FLAGS),,-Wl,-z,defs)
$(BUILD)/lib/libcocoon.so: $(call lib_of,$(LIB_PARTS)) src/lib/libcocoon.map
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=src/lib/libcocoon.map $(SO_DEFS) \
		-o $(BUILD)/lib/$(SONAME) -Wl,--whole-archive $(ILIB)/liblib.a -Wl,--no-whole-archive \
		$(call lib_of,$(filter-out lib,$(LIB_PARTS))) $(HOST_LIBS)
	$(Q)ln -sfn $(SONAME) $@

# `cocoon mcp` (src/mcp) is linked in: it needs only jansson, which the CLI has anyway,
# and serve.json (src/serve/boxdefaults.c, no HTTP library) for a box's env.
$(BUILD)/bin/cocoon: $(CLI_OBJ) $(ILIB)/libmcp.a $(ILIB)/libserve.a $(BUILD)/lib/libcocoon.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $(CLI_OBJ) $(ILIB)/libmcp.a $(ILIB)/libserve.a $(BUILD)/lib/libcocoon.a $(HOST_LIBS)

# `cocoon serve` is its own program (the CLI execs it) so that the HTTP server's libraries
# (libmicrohttpd, GnuTLS) load only there, not in every short CLI command.
SERVE_PKGS := libmicrohttpd libcrypto libarchive
SERVE_LIBS := $(shell $(PKG_CONFIG) --libs $(SERVE_PKGS) 2>/dev/null)
$(BUILD)/bin/cocoon-serve: $(OBJ)/src/serve/main.o $(ILIB)/libserve.a $(ILIB)/libmcp.a $(ILIB)/libserve.a \
	$(BUILD)/lib/libcocoon.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $+ $(SERVE_LIBS) $(HOST_LIBS)

VMM_LIBS := $(shell $(PKG_CONFIG) --libs jansson libseccomp libssl libcrypto 2>/dev/null) -lpthread
$(BUILD)/bin/cocoon-vmm: $(VMM_MAIN) $(call lib_of,$(VMM_PARTS))
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $^ $(VMM_LIBS)

AGENT_OBJ := $(AGENT_SRC:%.c=$(OBJ)/agent/%.o) $(patsubst %.c,$(OBJ)/agent/%.o,$(wildcard src/proto/*.c))
$(SHARE)/cocoon-agent: $(AGENT_OBJ)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(AGENT_CFLAGS) -s -o $@ $^

$(SHARE)/initramfs.cpio: $(SHARE)/cocoon-agent scripts/mkinitramfs
	@echo '  CPIO    $@'
	$(Q)$(PYTHON) scripts/mkinitramfs $(SHARE)/cocoon-agent $@

# ---- tests ----
# The hostile agent (tests/hostile): a test-only PID 1 that attacks the host from a real
# box (tests/integration/test_hostile.py), linked with the real agent's port, log and
# network code, in an initramfs of its own (COCOON_INITRD at box creation).
HOSTILE_OBJ := $(patsubst %.c,$(OBJ)/agent/%.o,$(wildcard tests/hostile/*.c) src/agent/log.c src/agent/port.c \
	src/agent/net.c src/net/wire.c $(wildcard src/proto/*.c))
hostile: $(SHARE)/hostile-initramfs.cpio
$(SHARE)/hostile-agent: $(HOSTILE_OBJ)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(AGENT_CFLAGS) -s -o $@ $^
$(SHARE)/hostile-initramfs.cpio: $(SHARE)/hostile-agent scripts/mkinitramfs
	@echo '  CPIO    $@'
	$(Q)$(PYTHON) scripts/mkinitramfs $(SHARE)/hostile-agent $@

# Helpers shared by unit tests and fuzzers (tests/support: a virtio test driver, ...).
TEST_SUPPORT := $(BUILD)/tests/libtestsupport.a
$(OBJ)/tests/%.o: HOST_CFLAGS += -Itests
$(TEST_SUPPORT): $(patsubst %.c,$(OBJ)/%.o,$(wildcard tests/support/*.c))
	@mkdir -p $(dir $@)
	@echo '  AR      $@'
	$(Q)rm -f $@ && ar rcs $@ $^
# tests/unit/test_unpack.c reads the images it makes back with libext2fs itself.
TEST_LIBS := $(TEST_SUPPORT) $(ALL_ILIBS) $(SERVE_LIBS) $(shell $(PKG_CONFIG) --libs libssl 2>/dev/null) $(HOST_LIBS) $(shell $(PKG_CONFIG) --libs ext2fs com_err 2>/dev/null) \
	-lseccomp
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
$(BUILD)/tests/%: tests/unit/%.c $(TEST_SUPPORT) $(ALL_ILIBS)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -Itests -o $@ $< $(TEST_LIBS) -lcmocka

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
# Replay build: a plain main() feeds each corpus file to the target under ASan/UBSan.
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%-replay)
$(BUILD)/fuzz/%-replay: tests/fuzz/%.c tests/fuzz/replay_main.c $(TEST_SUPPORT) $(ALL_ILIBS)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -Itests -o $@ $< tests/fuzz/replay_main.c $(TEST_LIBS)

# Coverage-guided fuzzers (scripts/fuzz-smoke): the same sources and flags, built by
# clang with FUZZ=1 into their own BUILD; each target links libFuzzer's main.
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(TEST_SUPPORT) $(ALL_ILIBS)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -Itests -fsanitize=fuzzer -o $@ $< $(TEST_LIBS)
fuzzers: $(FUZZ_BINS)

# The kvm backend's micro-guest runner (tests/kvm/run.sh) and the nested lane's static
# tools (tests/nested/run.sh): the same objects, linked here.
kvm-tests: $(BUILD)/tests/kvm-microguest
$(BUILD)/tests/kvm-microguest: tests/kvm/kvm-microguest.c $(call lib_of,kvm jail boxcfg net disk proto util)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $^ -ljansson -lseccomp -lssl -lcrypto -lpthread
nested-tools: $(BUILD)/nested/cocoon-vmm $(BUILD)/nested/nestctl
# ld warns that libcrypto's dlopen/getaddrinfo need glibc's shared objects at run time:
# the nested lane never reaches them (no TLS interception there), so the warnings are off.
$(BUILD)/nested/cocoon-vmm: $(VMM_MAIN) $(call lib_of,$(VMM_PARTS))
	@mkdir -p $(dir $@)
	@echo '  LD      $@ (static)'
	$(Q)$(CC) $(HOST_CFLAGS) -static -Wl,--no-warnings -o $@ $^ -ljansson -lseccomp -lssl -lcrypto -ldl -lpthread
$(BUILD)/nested/nestctl: tests/nested/nestctl.c $(call lib_of,disk proto util)
	@mkdir -p $(dir $@)
	@echo '  LD      $@ (static)'
	$(Q)$(CC) $(HOST_CFLAGS) -static -o $@ $^ -lpthread

unit: unit-bins
	@scripts/run-unit $(BUILD)
unit-bins: $(UNIT_BINS) $(FUZZ_REPLAY)

setup:
	@scripts/setup

demo: setup
	$(MAKE) all guest
	@scripts/demo $(BUILD)

# The whole suite: sanitizer build of the host code, unit + fuzz replay, short
# coverage-guided fuzzing, the kvm and nested lanes, then the integration suite and the
# SDKs' suites on real boxes, in parallel lanes (scripts/test-all says how, and prints
# what each part took). The code-interpreter image (numpy, pandas, matplotlib, node) is
# built for the tests of rich results and E2B's runCode: ~8 minutes once, then cached.
test: setup
	@scripts/test-all

bench: all guest
	@bench/run

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
check-format:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

# ---- installation ----
# make install PREFIX=/usr/local DESTDIR=... installs what `make all guest` built:
#   bin/cocoon, bin/cocoon-vmm
#   lib/libcocoon.so.0 (+ libcocoon.so), lib/libcocoon.a, lib/pkgconfig/cocoon.pc
#   include/cocoon.h
#   share/cocoon/{vmlinux, bzImage, initramfs.cpio, cocoon-agent, images/default.ext4}
# libcocoon finds cocoon-vmm and share/cocoon relative to the directory it was loaded
# from (src/lib/runtime.c: <dir>/../bin, <dir>/../share/cocoon), so bin, lib and share
# stay siblings under PREFIX and an installed tree may be moved as a whole. The guest
# files are copies (the build tree's are links into ~/.cache/cocoon); the 1.35 GB image
# is a reflink or a hard link when DESTDIR is on the cache's file system, else a copy.
# INSTALL_IMAGE=0 leaves the image out (boxes then need --rootfs or a pulled image).
# GUEST_DIR names another directory holding the guest files (the sanitizer build
# installs the plain build's: make install BUILD=build/asan SANITIZE=1 GUEST_DIR=build/share/cocoon).
PREFIX ?= /usr/local
DESTDIR ?=
INSTALL_IMAGE ?= 1
GUEST_DIR ?= $(SHARE)
INST_BIN := $(DESTDIR)$(PREFIX)/bin
INST_LIB := $(DESTDIR)$(PREFIX)/lib
INST_INC := $(DESTDIR)$(PREFIX)/include
INST_SHARE := $(DESTDIR)$(PREFIX)/share/cocoon
GUEST_FILES := vmlinux initramfs.cpio cocoon-agent $(if $(filter 0,$(INSTALL_IMAGE)),,images/default.ext4)
# pkg-config modules of what libcocoon.a links (Debian: libjansson-dev, libsqlite3-dev);
# libcurl.so.4, libarchive.so.13, libext2fs.so.2 and libyaml-0.so.2 are loaded at run time.
PC_REQUIRES := $(LINK_PKGS)

# Written at install time: it names PREFIX.
define COCOON_PC
# cocoon $(VERSION): microVM sandboxes as a library (include/cocoon.h).
# Link the shared library: cc app.c $$(pkg-config --cflags --libs cocoon)
prefix=$(PREFIX)
exec_prefix=$${prefix}
bindir=$${prefix}/bin
libdir=$${prefix}/lib
includedir=$${prefix}/include
sharedir=$${prefix}/share/cocoon
vmm=$${bindir}/cocoon-vmm

Name: cocoon
Description: microVM sandboxes for untrusted code (libcocoon)
Version: $(VERSION)
Requires.private: $(PC_REQUIRES)
Cflags: -I$${includedir}
Libs: -L$${libdir} -lcocoon
Libs.private: -lpthread -ldl
endef
export COCOON_PC

install: host $(if $(filter $(SHARE),$(GUEST_DIR)),agent)
	@for f in $(GUEST_FILES); do \
	  [ -e "$(GUEST_DIR)/$$f" ] || { echo "make install: $(GUEST_DIR)/$$f is missing: run \`make all guest\` first$(if $(filter 0,$(INSTALL_IMAGE)),, (or INSTALL_IMAGE=0 to leave the image out))" >&2; exit 1; }; \
	done
	@echo '  INSTALL $(DESTDIR)$(PREFIX)'
	$(Q)install -d $(INST_BIN) $(INST_LIB)/pkgconfig $(INST_INC) $(INST_SHARE)/images
	$(Q)install -m 755 $(BUILD)/bin/cocoon $(BUILD)/bin/cocoon-vmm $(BUILD)/bin/cocoon-serve $(INST_BIN)/
	$(Q)install -m 755 $(BUILD)/lib/$(SONAME) $(INST_LIB)/$(SONAME)
	$(Q)ln -sfn $(SONAME) $(INST_LIB)/libcocoon.so
	$(Q)install -m 644 $(BUILD)/lib/libcocoon.a $(INST_LIB)/libcocoon.a
	$(Q)install -m 644 include/cocoon.h $(INST_INC)/cocoon.h
	$(Q)printf '%s\n' "$$COCOON_PC" > $(INST_LIB)/pkgconfig/cocoon.pc.tmp && chmod 644 $(INST_LIB)/pkgconfig/cocoon.pc.tmp && \
		mv -f $(INST_LIB)/pkgconfig/cocoon.pc.tmp $(INST_LIB)/pkgconfig/cocoon.pc
	$(Q)install -m 644 $(GUEST_DIR)/vmlinux $(GUEST_DIR)/initramfs.cpio $(INST_SHARE)/
	$(Q)install -m 755 $(GUEST_DIR)/cocoon-agent $(INST_SHARE)/
	$(Q)if [ -e $(GUEST_DIR)/bzImage ]; then install -m 644 $(GUEST_DIR)/bzImage $(INST_SHARE)/; fi
	$(Q)if [ "$(INSTALL_IMAGE)" != 0 ]; then scripts/install-image $(GUEST_DIR)/images/default.ext4 $(INST_SHARE)/images/default.ext4; fi

uninstall:
	@echo '  UNINSTALL $(DESTDIR)$(PREFIX)'
	$(Q)rm -f $(INST_BIN)/cocoon $(INST_BIN)/cocoon-vmm $(INST_BIN)/cocoon-serve $(INST_LIB)/$(SONAME) $(INST_LIB)/libcocoon.so \
		$(INST_LIB)/libcocoon.a $(INST_LIB)/pkgconfig/cocoon.pc $(INST_INC)/cocoon.h \
		$(addprefix $(INST_SHARE)/,vmlinux bzImage initramfs.cpio cocoon-agent images/default.ext4)
	$(Q)rmdir $(INST_SHARE)/images $(INST_SHARE) 2>/dev/null || true

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
