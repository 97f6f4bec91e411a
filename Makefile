# newsarch build. `make` builds into build/; `make test` runs every test
# (plain and under ASan+UBSan); `make run` starts the daemon in the
# foreground on ./data. B= selects the build directory, SAN=1 the sanitizers.

B ?= build
SAN ?=
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=

PKGS := lmdb libuv msgpack libzstd jansson inih libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
CFLAGS += -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE -fPIC -pthread \
	-Iinclude -Iproto $(PKG_CFLAGS)
LDLIBS += $(PKG_LIBS) -lm -pthread
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

.PHONY: all deps run test test-plain test-asan bench clean
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

# `make test`: plain build, then the same suite under ASan+UBSan+LSan.
test: deps
	$(MAKE) test-plain
	$(MAKE) test-asan
	@sh tests/run.sh --summary build/test-results build-asan/test-results

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

clean:
	rm -rf build build-asan

# `make fuzz FUZZ_SECONDS=N`: libFuzzer targets (needs clang)
include tests/fuzz/fuzz.mk
