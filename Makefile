# cocoon build. `make` builds the host tools and the guest agent/initramfs;
# `make guest` adds the guest kernel and default image (cached outside the clone);
# `make demo` sets up the machine and runs a real sandbox; `make test` runs everything.
# A sanitizer build of the host code lives in build/asan (make SANITIZE=1 BUILD=build/asan).

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
HOST_PKGS := jansson libcurl libarchive ext2fs com_err sqlite3
HOST_CFLAGS := $(BASE_CFLAGS) $(SAN_FLAGS) -fPIC $(shell $(PKG_CONFIG) --cflags $(HOST_PKGS) 2>/dev/null) $(CFLAGS)
HOST_LIBS := $(shell $(PKG_CONFIG) --libs $(HOST_PKGS) 2>/dev/null) -lpthread
# The agent is PID 1 of the guest: static, no sanitizer, no host libraries.
AGENT_CFLAGS := $(BASE_CFLAGS) -static

OBJ := $(BUILD)/obj
SHARE := $(BUILD)/share/cocoon

PROTO_SRC := $(wildcard src/proto/*.c)
UTIL_SRC := $(wildcard src/util/*.c)
LIB_SRC := $(wildcard src/lib/*.c) $(wildcard src/disk/*.c) $(wildcard src/image/*.c) $(wildcard src/net/*.c)
VMM_SRC := $(wildcard src/vmm/*.c) $(wildcard src/net/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
AGENT_SRC := $(wildcard src/agent/*.c)

COMMON_OBJ := $(PROTO_SRC:%.c=$(OBJ)/%.o) $(UTIL_SRC:%.c=$(OBJ)/%.o)
LIB_OBJ := $(LIB_SRC:%.c=$(OBJ)/%.o)
VMM_OBJ := $(VMM_SRC:%.c=$(OBJ)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(OBJ)/%.o)

HOST_BINS := $(BUILD)/bin/cocoon $(BUILD)/bin/cocoon-vmm $(BUILD)/lib/libcocoon.so $(BUILD)/lib/libcocoon.a
GUEST_BINS := $(SHARE)/cocoon-agent $(SHARE)/initramfs.cpio

.PHONY: all host agent guest kernel image demo test unit fuzz integration bench setup clean format check-format asan
all: host agent

host: $(HOST_BINS)
agent: $(GUEST_BINS)
guest: agent kernel image
kernel:
	@scripts/build-kernel $(SHARE)/vmlinux >/dev/null
image:
	@scripts/build-image $(SHARE)/images/default.ext4 >/dev/null

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	$(Q)$(CC) $(HOST_CFLAGS) -MMD -MP -c $< -o $@

$(OBJ)/agent/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC      $< (agent)'
	$(Q)$(CC) $(AGENT_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/lib/libcocoon.a: $(LIB_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	@echo '  AR      $@'
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/lib/libcocoon.so: $(LIB_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -shared -Wl,-soname,libcocoon.so -o $@ $^ $(HOST_LIBS) -ldl

$(BUILD)/bin/cocoon: $(CLI_OBJ) $(BUILD)/lib/libcocoon.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/lib/libcocoon.a $(HOST_LIBS) -ldl

$(BUILD)/bin/cocoon-vmm: $(VMM_OBJ) $(COMMON_OBJ) $(filter $(OBJ)/src/disk/qcow2%,$(LIB_OBJ))
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $^ $(HOST_LIBS)

AGENT_OBJ := $(AGENT_SRC:%.c=$(OBJ)/agent/%.o) $(PROTO_SRC:%.c=$(OBJ)/agent/%.o)
$(SHARE)/cocoon-agent: $(AGENT_OBJ)
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(AGENT_CFLAGS) -s -o $@ $^

$(SHARE)/initramfs.cpio: $(SHARE)/cocoon-agent scripts/mkinitramfs
	@echo '  CPIO    $@'
	$(Q)$(PYTHON) scripts/mkinitramfs $(SHARE)/cocoon-agent $@

# ---- tests ----
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/lib/libcocoon.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $< $(BUILD)/lib/libcocoon.a $(HOST_LIBS) -ldl -lcmocka

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
# Replay build: a plain main() feeds each corpus file to the target under ASan/UBSan.
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%-replay)
$(BUILD)/fuzz/%-replay: tests/fuzz/%.c tests/fuzz/replay_main.c $(BUILD)/lib/libcocoon.a
	@mkdir -p $(dir $@)
	@echo '  LD      $@'
	$(Q)$(CC) $(HOST_CFLAGS) -o $@ $< tests/fuzz/replay_main.c $(BUILD)/lib/libcocoon.a $(HOST_LIBS) -ldl

unit: $(UNIT_BINS) $(FUZZ_REPLAY)
	@scripts/run-unit $(BUILD)

setup:
	@scripts/setup

demo: setup
	$(MAKE) all guest
	@scripts/demo $(BUILD)

# The whole suite: sanitizer build of the host code, unit + fuzz replay, short
# coverage-guided fuzzing, then the integration suite on real boxes.
test: setup
	$(MAKE) all guest
	$(MAKE) BUILD=build/asan SANITIZE=1 host unit
	@scripts/fuzz-smoke
	@SANITIZE=1 tests/kvm/run.sh
	@tests/nested/run.sh
	@scripts/run-integration build/asan

bench: all guest
	@bench/run

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
check-format:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
