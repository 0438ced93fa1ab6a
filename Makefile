# libckpt: static and shared library, the ckpt CLI, tests, install.
#
#   make                  library (build/libckpt.a, build/libckpt.so.0) and build/ckpt
#   make demo             the main job on the bundled sample checkpoint
#   make check            every test suite
#   make check-asan       the same suites under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench            benchmarks, paired with baselines (BENCH_SIZES="2 8" GiB; tables in bench/results/)
#   make fuzz             every libFuzzer target for FUZZ_SECONDS (make fuzz-campaign: FUZZ_CPU_MINUTES each)
#   make install PREFIX=/usr/local DESTDIR=   (LIBDIR=, MANDIR=... for distributions)
#   make deb              Debian packages into build/deb/ (dpkg-buildpackage); make check-deb tests them
#
# Missing Debian packages are installed on first use (scripts/ensure-deps.sh).

# the version lives in one place, ckpt.h (docs/versioning.md); SOVERSION moves only when the ABI breaks
VERSION   := $(shell sed -n 's/^\#define CKPT_VERSION_STRING "\(.*\)"$$/\1/p' libckpt/include/ckpt.h)
SOVERSION := 0
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
LIBDIR    ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR    ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
CMAKEDIR  ?= $(LIBDIR)/cmake/libckpt
BUILD     ?= build
EXTERNAL  ?= $(abspath ../shared/external)

CC        ?= cc
OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
WARN      := -std=c11 -Wall -Wextra -Werror -Wshadow -Wvla
PKGS      := libzstd libarchive libxxhash jansson libcrypto
ALL_CPPFLAGS := -D_GNU_SOURCE -Ilibckpt/include -I. $(CPPFLAGS)
ALL_CFLAGS   := $(WARN) -fPIC -fvisibility=hidden -pthread $(CFLAGS)

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS    += -fsanitize=address,undefined
endif

DEPS_STAMP := $(BUILD)/.deps-build
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    = $(shell pkg-config --libs $(PKGS)) -lm -pthread

LIB_SRC   := $(sort $(wildcard libckpt/*/*.c) $(wildcard formats/*/*.c))
CLI_SRC   := $(sort $(wildcard cli/*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TEST_HELP := $(BUILD)/obj/tests/helpers.o

STATIC    := $(BUILD)/libckpt.a
SHARED    := $(BUILD)/libckpt.so.$(VERSION)
CLI       := $(BUILD)/ckpt

.PHONY: all demo check check-asan test-deps bench fuzz fuzz-campaign install uninstall deb check-deb clean
all: $(STATIC) $(SHARED) $(CLI)

$(DEPS_STAMP): scripts/ensure-deps.sh
	@sh scripts/ensure-deps.sh build
	@mkdir -p $(@D) && touch $@

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -DCKPT_BUILDING $(PKG_CFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# the byte-plane loops are written to vectorise, which -O2 alone does not do
$(BUILD)/obj/libckpt/kernels/byte_planes.o: ALL_CFLAGS += -ftree-vectorize

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libckpt.so.$(SOVERSION) -Wl,--no-undefined $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
	ln -sf libckpt.so.$(VERSION) $(BUILD)/libckpt.so.$(SOVERSION)
	ln -sf libckpt.so.$(SOVERSION) $(BUILD)/libckpt.so

$(CLI): $(CLI_OBJ) $(STATIC)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(STATIC) $(PKG_LIBS)

# ---- tests ----

test-deps:
	@sh scripts/ensure-deps.sh build test

$(BUILD)/tests/%: tests/%.c $(TEST_HELP) $(STATIC) | test-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -Itests $(PKG_CFLAGS) $(ALL_CFLAGS) -MMD -MP -o $@ $< $(TEST_HELP) \
		$(STATIC) $(PKG_LIBS) $$(pkg-config --libs check) $(LDFLAGS)

$(BUILD)/obj/tests/helpers.o: tests/helpers.c | test-deps $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -Itests $(PKG_CFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# every fuzz target with a plain main() (fuzz/replay.c), to replay fuzz/regressions/ in make check
REPLAY_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
REPLAY_BIN := $(REPLAY_SRC:fuzz/%.c=$(BUILD)/fuzz-replay/%)

$(BUILD)/fuzz-replay/%: fuzz/%.c fuzz/replay.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -Ifuzz $(PKG_CFLAGS) $(ALL_CFLAGS) -o $@ $< fuzz/replay.c $(STATIC) $(PKG_LIBS) $(LDFLAGS)

# the tests read files other projects wrote (EXTERNAL): without them a dozen tests would fail one by
# one with no hint, so check stops before building anything and says what is missing
ifneq ($(filter check check-asan,$(MAKECMDGOALS)),)
ifeq ($(wildcard $(EXTERNAL)/README.md),)
$(info make check: $(EXTERNAL) is missing, the folder EXTERNAL names: default ../shared/external.)
$(info It holds the real checkpoint files other projects wrote that the tests read: torch.save files,)
$(info safetensors and malicious pickles from candle, burn, safetensors-cpp, mlverse and picklescan,)
$(info each listed in its README.md. Put it at ../shared/external beside the project checkout,)
$(info or run make check EXTERNAL=DIR.)
$(error ../shared/external not found)
endif
endif

check: all $(TEST_BIN) $(REPLAY_BIN) test-deps
	@CKPT_BIN=$(abspath $(CLI)) CKPT_EXTERNAL=$(EXTERNAL) CKPT_TESTDATA=$(abspath testdata) \
	 CKPT_BUILD=$(abspath $(BUILD)) MAKE="$(MAKE)" SANITIZE="$(SANITIZE)" sh tests/run.sh $(TEST_BIN)

check-asan:
	$(MAKE) BUILD=build-asan SANITIZE=1 OPT=-O1 check

demo: all
	sh scripts/demo.sh $(CLI)

$(BUILD)/bench/%: bench/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) $(PKG_CFLAGS) $(ALL_CFLAGS) -o $@ $< $(STATIC) $(PKG_LIBS) $(LDFLAGS)

bench: all $(BENCH_BIN)
	@sh scripts/ensure-deps.sh bench
	CKPT_BUILD=$(abspath $(BUILD)) sh bench/run.sh

# ---- fuzzing (clang's libFuzzer with ASan+UBSan) ----

FUZZ_SECONDS ?= 60
FUZZ_SRC  := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN  := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

FUZZ_LIB  := build-fuzz/lib/libckpt.a

# the library itself, built by this Makefile again with clang and the fuzzer's instrumentation
ifndef FUZZ_INNER
$(FUZZ_LIB): $(LIB_SRC)
	@sh scripts/ensure-deps.sh build fuzz
	$(MAKE) FUZZ_INNER=1 BUILD=build-fuzz/lib CC=clang CFLAGS="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link" $@
endif

build-fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIB)
	clang $(ALL_CPPFLAGS) -Ifuzz $(WARN) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(PKG_LIBS)

fuzz: $(FUZZ_BIN)
	EXTERNAL=$(EXTERNAL) sh fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

# a long local run: every target until it has used FUZZ_CPU_MINUTES of CPU time (build-fuzz/campaign.tsv)
FUZZ_CPU_MINUTES ?= 30
fuzz-campaign: $(FUZZ_BIN)
	EXTERNAL=$(EXTERNAL) sh fuzz/campaign.sh $(FUZZ_CPU_MINUTES) $(FUZZ_BIN)

# ---- install ----

# library, header, pkg-config file and CMake package (lib/cmake/libckpt), the CLI, its man page and
# bash completion; the .pc and CMake files name the install's own prefix and libdir
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	-e 's|@VERSION@|$(VERSION)|g' -e 's|@SOVERSION@|$(SOVERSION)|g' -e 's|@PKGS@|$(PKGS)|g' \
	-e "s|@LIBDIR_FROM_CMAKEDIR@|$$(realpath -m --relative-to=$(CMAKEDIR) $(LIBDIR))|g" \
	-e "s|@INCLUDEDIR_FROM_LIBDIR@|$$(realpath -m --relative-to=$(LIBDIR) $(INCLUDEDIR))|g" \
	-e "s|@SIZEOF_VOID_P@|$$(($$(getconf LONG_BIT) / 8))|g"

install: all
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(CMAKEDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR)
	install -m 644 libckpt/include/ckpt.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libckpt.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libckpt.so.$(SOVERSION)
	ln -sf libckpt.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libckpt.so
	$(SUBST) libckpt.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libckpt.pc
	$(SUBST) cmake/libckptConfig.cmake.in > $(DESTDIR)$(CMAKEDIR)/libckptConfig.cmake
	$(SUBST) cmake/libckptConfigVersion.cmake.in > $(DESTDIR)$(CMAKEDIR)/libckptConfigVersion.cmake
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/
	install -m 644 docs/ckpt.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 completions/ckpt.bash $(DESTDIR)$(BASHCOMPDIR)/ckpt

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/ckpt.h $(DESTDIR)$(LIBDIR)/libckpt.a $(DESTDIR)$(LIBDIR)/libckpt.so* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libckpt.pc $(DESTDIR)$(CMAKEDIR)/libckptConfig*.cmake \
	      $(DESTDIR)$(BINDIR)/ckpt $(DESTDIR)$(MANDIR)/man1/ckpt.1 $(DESTDIR)$(BASHCOMPDIR)/ckpt
	-rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null

# ---- Debian packages (slow: a full build in a copy of the tree, so not part of make check) ----

DEB_DIR := $(BUILD)/deb
DEB_JOBS ?= 2

# dpkg-buildpackage writes its .debs next to the tree it builds, so it builds a copy of the
# tracked files (all but the build folders, outside a git checkout) under build/deb/ and the
# packages land there, not in the checkout's parent
deb:
	@sh scripts/ensure-deps.sh build deb
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/libckpt-$(VERSION)
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z | xargs -0 cp --parents -t $(DEB_DIR)/libckpt-$(VERSION); \
	else \
		tar -cf - --exclude='./build*' --exclude=./$(BUILD) . | tar -xf - -C $(DEB_DIR)/libckpt-$(VERSION); \
	fi
	cd $(DEB_DIR)/libckpt-$(VERSION) && dpkg-buildpackage -us -uc -b -J$(DEB_JOBS)
	@ls $(DEB_DIR)/*.deb

check-deb: deb
	@CKPT_DEB_DIR=$(abspath $(DEB_DIR)) CKPT_VERSION=$(VERSION) sh tests/deb/check.sh

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
