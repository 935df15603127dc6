# USM build.  `make` builds everything into build/; `make SAN=1` builds with
# AddressSanitizer + UndefinedBehaviorSanitizer into build-san/, `make TSAN=1`
# with ThreadSanitizer into build-tsan/.  Either way the preload agent, the
# test programs, benchmarks and examples stay unsanitized.
CC      ?= cc
PREFIX  ?= /usr/local
SAN     ?= 0
TSAN    ?= 0
BUILD   ?= build

ifeq ($(SAN)$(TSAN),11)
$(error SAN=1 and TSAN=1 cannot be combined)
endif
# -O1 sees different value ranges than -O2: keep -Wformat-truncation a
# warning there, so the sanitizer builds do not fail where `make` passes.
ifeq ($(SAN),1)
B        := $(BUILD)-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT      := -O1 -g -Wno-error=format-truncation
else ifeq ($(TSAN),1)
B        := $(BUILD)-tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
OPT      := -O1 -g -Wno-error=format-truncation
else
B        := $(BUILD)
SANFLAGS :=
OPT      := -O2 -g
endif

CFLAGS_COMMON := -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
                 -Iinclude -Isrc -D_GNU_SOURCE $(OPT)
CFLAGS  += $(CFLAGS_COMMON) $(SANFLAGS) -fPIC -pthread
LDFLAGS += $(SANFLAGS) -pthread

# libusm.so: mechanism layer + framework + built-in policies (both hosts)
LIB_SRC   := $(wildcard src/mech/*.c) $(wildcard src/ipc/*.c) \
             $(filter-out src/core/heap.c,$(wildcard src/core/*.c)) \
             $(wildcard src/swap/*.c) \
             src/daemon/daemon.c $(wildcard policies/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(B)/obj/%.o)
# The preload agent never carries sanitizers: it runs inside arbitrary
# programs, inside a SIGSYS handler, before their main().
AGENT_SRC := $(wildcard src/agent/*.c) src/mech/uffd.c src/mech/stage.c src/mech/procfile.c src/ipc/sock.c \
             src/swap/readloc.c
AGENT_OBJ := $(AGENT_SRC:%.c=$(B)/obj-agent/%.o)
# The in-process host: the framework again, built like the agent (never
# sanitized) since the agent loads it into arbitrary programs.  Its
# allocations go to a heap of its own that is never registered (core/heap.c).
INLINE_OBJ := $(LIB_SRC:%.c=$(B)/obj-agent/%.o) $(B)/obj-agent/src/core/heap.o
HEAP_WRAP  := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,--wrap=strdup
CLI_SRC   := $(wildcard src/cli/*.c)
DAEMON_SRC:= src/daemon/usmd.c

PROGS     := $(patsubst tests/progs/%.c,$(B)/tests/progs/%,$(wildcard tests/progs/*.c))
UNITS     := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(wildcard tests/unit/*.c))
BENCHES   := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*.c))
EXAMPLES  := $(patsubst examples/%.c,$(B)/examples/%,$(wildcard examples/*.c))

LIBS      := -ldl
# io_uring for the file swap device, lz4/zstd for the compressed one.
SWAPLIBS  := -luring -llz4 -lzstd

all: $(B)/lib/libusm.so $(B)/lib/libusm-agent.so $(B)/lib/libusm-inline.so $(B)/bin/usm $(B)/bin/usmd \
     $(PROGS) $(UNITS) $(BENCHES) $(EXAMPLES) $(B)/usm.pc

$(B)/obj/%.o: %.c $(wildcard include/usm/*.h) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/obj-agent/%.o: %.c $(wildcard include/usm/*.h) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -fPIC -pthread -fno-stack-protector -c $< -o $@

$(B)/lib/libusm.so: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libusm.so.1 $(LDFLAGS) $^ -o $@.1 $(LIBS) $(SWAPLIBS)
	ln -sf libusm.so.1 $@

$(B)/lib/libusm-agent.so: $(AGENT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -pthread $^ -o $@ -ldl -llz4 -lzstd

$(B)/lib/libusm-inline.so: $(INLINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -pthread $(HEAP_WRAP) $^ -o $@ -ldl $(SWAPLIBS)

RPATH := -Wl,-rpath,'$$ORIGIN/../lib'

$(B)/bin/usm: $(CLI_SRC) $(B)/lib/libusm.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CLI_SRC) -o $@ $(LDFLAGS) -L$(B)/lib -lusm $(RPATH) $(LIBS)

$(B)/bin/usmd: $(DAEMON_SRC) $(B)/lib/libusm.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DAEMON_SRC) -o $@ $(LDFLAGS) -L$(B)/lib -lusm $(RPATH) $(LIBS)

# Test programs run *under* USM: plain C, no USM headers, no sanitizers
# (a sanitizer runtime would change what memory the program maps).
$(B)/tests/progs/%: tests/progs/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -pthread $< -o $@

$(B)/tests/unit/%: tests/unit/%.c $(B)/lib/libusm.so
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) -L$(B)/lib -lusm -Wl,-rpath,'$$ORIGIN/../../lib' -lcmocka $(LIBS)

# The in-process heap is tested as libusm-inline.so uses it: wrapped.
$(B)/tests/unit/test_heap: tests/unit/test_heap.c src/core/heap.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ -o $@ $(LDFLAGS) $(HEAP_WRAP) -lcmocka

$(B)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -O2 -pthread $< -o $@ -lm

$(B)/examples/%: examples/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -pthread $< -o $@

$(B)/usm.pc: usm.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|g' $< > $@

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	           $(DESTDIR)$(PREFIX)/include/usm $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	           $(DESTDIR)$(PREFIX)/lib/usm
	install -m 755 $(B)/bin/usm $(B)/bin/usmd $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(B)/lib/libusm.so.1 $(DESTDIR)$(PREFIX)/lib/libusm.so.1
	ln -sf libusm.so.1 $(DESTDIR)$(PREFIX)/lib/libusm.so
	install -m 755 $(B)/lib/libusm-agent.so $(B)/lib/libusm-inline.so $(DESTDIR)$(PREFIX)/lib/usm/
	install -m 644 include/usm/*.h $(DESTDIR)$(PREFIX)/include/usm/
	install -m 644 $(B)/usm.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/usm.pc
	$(if $(DESTDIR),,-ldconfig)

test: all
	./tests/run.sh $(B)

clean:
	rm -rf build build-san build-tsan

.PHONY: all install test clean
