# newsarch build. `make` builds into build/; `make test` runs every test
# (plain and under ASan+UBSan); `make run` starts the daemon in the
# foreground on ./data. B= selects the build directory, SAN=1 the sanitizers.

B ?= build
SAN ?=
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=

PKGS := lmdb libuv msgpack libzstd jansson inih libsystemd openssl libutf8proc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
CFLAGS += -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -pthread \
	-Iinclude -Iproto $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lstemmer -lm -pthread
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

SOVERSION := 1
VERSION := 0.1.0

PROTO_SRC := $(wildcard proto/*.c)
DAEMON_SRC := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
LIB_SRC := $(wildcard client/lib/*.c)
CLI_SRC := $(wildcard client/cli/*.c)
EXAMPLE_SRC := $(wildcard client/examples/*.c)
SUPPORT_SRC := $(wildcard tests/support/*.c)
TEST_SRC := $(wildcard tests/unit/test_*.c tests/integration/test_*.c)
BENCH_SRC := $(wildcard tests/bench/*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

PROTO_OBJ := $(call obj,$(PROTO_SRC))
DAEMON_OBJ := $(call obj,$(DAEMON_SRC))
LIB_OBJ := $(call obj,$(LIB_SRC))
CLI_OBJ := $(call obj,$(CLI_SRC))
SUPPORT_OBJ := $(call obj,$(SUPPORT_SRC))

TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))
EXAMPLES := $(patsubst client/examples/%.c,$(B)/examples/%,$(EXAMPLE_SRC))

ALL := $(B)/newsarchd $(B)/libnewsarch.a $(B)/libnewsarch.so $(B)/newsarch-daemon.a \
	$(B)/newsarch.pc $(EXAMPLES)
ifneq ($(CLI_SRC),)
ALL += $(B)/newsarch
endif
ifneq ($(BENCH_SRC),)
ALL += $(B)/newsarch-bench
endif

.PHONY: all deps run test test-plain test-asan bench bench-compare clean
# keep object files that only feed one binary (make would delete them)
.SECONDARY:
all: $(ALL)

$(B)/obj/tests/%.o: CFLAGS += -Itests/support -Idaemon
$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

# the daemon minus main(), for tests and fuzzers
$(B)/newsarch-daemon.a: $(DAEMON_OBJ) $(PROTO_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/newsarchd: $(B)/obj/daemon/main.o $(B)/newsarch-daemon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/libnewsarch.a: $(LIB_OBJ) $(PROTO_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libnewsarch.so: $(LIB_OBJ) $(PROTO_OBJ)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libnewsarch.so.$(SOVERSION) -o $@.$(VERSION) $^ $(LDLIBS)
	ln -sf libnewsarch.so.$(VERSION) $@.$(SOVERSION)
	ln -sf libnewsarch.so.$(SOVERSION) $@

$(B)/newsarch.pc: client/newsarch.pc.in
	@mkdir -p $(B)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(B)/newsarch: $(CLI_OBJ) $(B)/libnewsarch.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/examples/%: $(B)/obj/client/examples/%.o $(B)/libnewsarch.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the bench reuses the CLI's JSON <-> msgpack mapping
$(B)/newsarch-bench: $(call obj,$(BENCH_SRC)) $(call obj,$(wildcard client/cli/json.c client/cli/timefmt.c)) $(B)/libnewsarch.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/obj/tests/%.o $(SUPPORT_OBJ) $(B)/newsarch-daemon.a $(B)/libnewsarch.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

deps:
	@sh deploy/install-deps.sh

run: deps
	$(MAKE) all
	@mkdir -p data
	./$(B)/newsarchd --data ./data --socket ./data/newsarchd.sock

# `make test`: plain build, then the same suite under ASan+UBSan+LSan (each
# runs even when the other failed; the summary decides the exit status). With
# FUZZ_SECONDS=N set, every fuzz target then runs for N seconds, each
# counting as one test (needs clang: FUZZ=1 sh deploy/install-deps.sh).
test: deps
	@rm -f build/test-results build-asan/test-results
	-$(MAKE) test-plain
	-$(MAKE) test-asan
	@fz=; if [ -n "$${FUZZ_SECONDS:-}" ]; then \
		fz=$(FZ)/test-results; rm -f $$fz; \
		$(MAKE) fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-60} || true; \
		[ -f $$fz ] || { mkdir -p $(FZ); echo "failed 1" > $$fz; }; \
	fi; \
	sh tests/run.sh --summary build/test-results build-asan/test-results $$fz

test-plain: all $(TESTS)
	@sh tests/run.sh --build $(B) --results $(B)/test-results

test-asan:
	$(MAKE) B=build-asan SAN=1 all tests-only
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		sh tests/run.sh --build build-asan --results build-asan/test-results

.PHONY: tests-only
tests-only: $(TESTS)

bench: all
	@sh tests/bench/run.sh $(B)

# `make bench-compare`: newsarchd, Redis and PostgreSQL on the same corpus
# (installs the peers with apt-get when run as root). Quick mode while
# developing: make bench-compare SCALE=1 ROUNDS=1 READ_SECONDS=2 LAG_SECONDS=3
SCALE ?= 20
ROUNDS ?= 3
READ_SECONDS ?= 5
LAG_SECONDS ?= 10
bench-compare: all
	@sh tests/bench/compare.sh $(B) --scale $(SCALE) --rounds $(ROUNDS) \
		--seconds $(READ_SECONDS) --lag-seconds $(LAG_SECONDS) \
		$(if $(CORPUS),--corpus $(CORPUS)) $(if $(SYSTEMS),--systems $(SYSTEMS))

# `make install` honours PREFIX and DESTDIR. The unit, sysusers and tmpfiles
# files go under the systemd directories of $(PREFIX) (/usr/local/lib/systemd
# for the default prefix); the configuration under $(SYSCONFDIR) (/etc), never
# overwriting an existing one.
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
LIBDIR ?= $(PREFIX)/lib
MANDIR ?= $(PREFIX)/share/man
D := $(DESTDIR)

.PHONY: install uninstall
install: all
	install -d $(D)$(PREFIX)/bin $(D)$(LIBDIR)/pkgconfig $(D)$(PREFIX)/include \
		$(D)$(UNITDIR) $(D)$(SYSUSERSDIR) $(D)$(TMPFILESDIR) $(D)$(SYSCONFDIR)/newsarch \
		$(D)$(MANDIR)/man1 $(D)$(MANDIR)/man3 $(D)$(MANDIR)/man5 $(D)$(MANDIR)/man8
	install -m 0755 $(B)/newsarchd $(B)/newsarch $(D)$(PREFIX)/bin/
	install -m 0644 $(B)/libnewsarch.a $(D)$(LIBDIR)/
	install -m 0755 $(B)/libnewsarch.so.$(VERSION) $(D)$(LIBDIR)/
	ln -sf libnewsarch.so.$(VERSION) $(D)$(LIBDIR)/libnewsarch.so.$(SOVERSION)
	ln -sf libnewsarch.so.$(SOVERSION) $(D)$(LIBDIR)/libnewsarch.so
	sed -e 's|^prefix=.*|prefix=$(PREFIX)|' -e 's|^libdir=.*|libdir=$(LIBDIR)|' \
		$(B)/newsarch.pc > $(D)$(LIBDIR)/pkgconfig/newsarch.pc
	install -m 0644 include/newsarch.h include/newsarch_uv.h $(D)$(PREFIX)/include/
	sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' -e 's|/etc/newsarch/|$(SYSCONFDIR)/newsarch/|g' \
		deploy/newsarchd.service > $(D)$(UNITDIR)/newsarchd.service
	sed -e 's|/usr/local/bin/|$(PREFIX)/bin/|g' -e 's|/etc/newsarch/|$(SYSCONFDIR)/newsarch/|g' \
		deploy/newsarchd-follower@.service > $(D)$(UNITDIR)/newsarchd-follower@.service
	install -m 0644 deploy/newsarch.sysusers $(D)$(SYSUSERSDIR)/newsarch.conf
	install -m 0644 deploy/newsarch.tmpfiles $(D)$(TMPFILESDIR)/newsarch.conf
	test -e $(D)$(SYSCONFDIR)/newsarch/newsarchd.conf || \
		install -m 0644 deploy/newsarchd.conf $(D)$(SYSCONFDIR)/newsarch/newsarchd.conf
	for m in deploy/*.[1358]; do [ -e "$$m" ] || continue; \
		install -m 0644 "$$m" $(D)$(MANDIR)/man$${m##*.}/; done

uninstall:
	rm -f $(D)$(PREFIX)/bin/newsarchd $(D)$(PREFIX)/bin/newsarch \
		$(D)$(LIBDIR)/libnewsarch.a $(D)$(LIBDIR)/libnewsarch.so* \
		$(D)$(LIBDIR)/pkgconfig/newsarch.pc \
		$(D)$(PREFIX)/include/newsarch.h $(D)$(PREFIX)/include/newsarch_uv.h \
		$(D)$(UNITDIR)/newsarchd.service $(D)$(UNITDIR)/newsarchd-follower@.service \
		$(D)$(SYSUSERSDIR)/newsarch.conf $(D)$(TMPFILESDIR)/newsarch.conf \
		$(D)$(MANDIR)/man8/newsarchd.8 $(D)$(MANDIR)/man1/newsarch.1 \
		$(D)$(MANDIR)/man5/newsarchd.conf.5 $(D)$(MANDIR)/man3/libnewsarch.3
	@echo "kept $(D)$(SYSCONFDIR)/newsarch/newsarchd.conf and the data directory"

clean:
	rm -rf build build-asan build-fuzz

# `make fuzz FUZZ_SECONDS=N`: libFuzzer targets (needs clang)
include tests/fuzz/fuzz.mk
