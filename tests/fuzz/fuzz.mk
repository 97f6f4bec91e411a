# tests/fuzz/fuzz.mk - libFuzzer targets. Include from the Makefile:
#   include tests/fuzz/fuzz.mk
# `make fuzz FUZZ_SECONDS=N` builds every tests/fuzz/fuzz_*.c with clang and
# -fsanitize=fuzzer,address,undefined into build-fuzz/, writes seed corpora
# (tests/fuzz/seeds.py) and runs each target for N seconds, FUZZ_JOBS of
# them at a time (tests/fuzz/run.sh). New inputs are kept in
# build-fuzz/corpus/<target>/, crashes in build-fuzz/crashes/. Every target
# runs even when another crashed; build-fuzz/test-results counts them
# (`passed N` / `failed N`, one per target) for tests/run.sh --summary, and
# the run fails when any target crashed.

FUZZ_SECONDS ?= 60
# targets run side by side, one per core by default
FUZZ_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
FUZZ_CC ?= clang
FZ := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
	-Iinclude -Iproto -Idaemon -Iclient/cli $(PKG_CFLAGS) $(FUZZ_SAN)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FZ)/%,$(FUZZ_SRC))
FUZZ_LIB_OBJ := $(patsubst %.c,$(FZ)/obj/%.o,$(PROTO_SRC) $(DAEMON_SRC))
# the CLI's JSON, time and text-page code (fuzz_json, fuzz_text; jansson)
FUZZ_CLI_OBJ := $(patsubst %.c,$(FZ)/obj/%.o,client/cli/json.c client/cli/timefmt.c \
	client/cli/textimport.c)

# the code under test: instrumented for coverage, without libFuzzer's main
$(FZ)/obj/daemon/%.o: daemon/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FZ)/obj/proto/%.o: proto/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FZ)/obj/client/cli/%.o: client/cli/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FZ)/obj/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FZ)/fuzz_%: $(FZ)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
$(FZ)/fuzz_json $(FZ)/fuzz_text: $(FUZZ_CLI_OBJ)

-include $(shell find $(FZ)/obj -name '*.d' 2>/dev/null)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_TARGETS)

fuzz: fuzz-build
	python3 tests/fuzz/seeds.py $(FZ)/seeds
	@sh tests/fuzz/run.sh $(FZ) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)
