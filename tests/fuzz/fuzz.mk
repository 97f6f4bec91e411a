# tests/fuzz/fuzz.mk - libFuzzer targets. Include from the Makefile:
#   include tests/fuzz/fuzz.mk
# `make fuzz FUZZ_SECONDS=N` builds every tests/fuzz/fuzz_*.c with clang and
# -fsanitize=fuzzer,address,undefined into build-fuzz/, writes seed corpora
# (tests/fuzz/seeds.py) and runs each target for N seconds. New inputs are
# kept in build-fuzz/corpus/<target>/, crashes in build-fuzz/crashes/.

FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FZ := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread \
	-Iinclude -Iproto -Idaemon $(PKG_CFLAGS) $(FUZZ_SAN)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FZ)/%,$(FUZZ_SRC))
FUZZ_LIB_OBJ := $(patsubst %.c,$(FZ)/obj/%.o,$(PROTO_SRC) $(DAEMON_SRC))

# the code under test: instrumented for coverage, without libFuzzer's main
$(FZ)/obj/daemon/%.o: daemon/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FZ)/obj/proto/%.o: proto/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FZ)/obj/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FZ)/fuzz_%: $(FZ)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_TARGETS)

fuzz: fuzz-build
	python3 tests/fuzz/seeds.py $(FZ)/seeds
	@mkdir -p $(FZ)/crashes
	@for t in $(FUZZ_TARGETS); do \
		n=$${t##*/}; mkdir -p $(FZ)/corpus/$$n; \
		echo "== $$n ($(FUZZ_SECONDS) s)"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(FZ)/crashes/$$n- \
			$(FZ)/corpus/$$n $(FZ)/seeds/$$n || exit 1; \
	done
