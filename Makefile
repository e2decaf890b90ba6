# oban_pro: a PostgreSQL 15 extension in C++17, built with PGXS.
#
#   make                 build oban_pro.so          make install        install into the server
#   make unit            build and run the pure C++ unit tests (test/unit, GoogleTest)
#   make format          clang-format the C++       make check-format   fail if anything is unformatted
#   WERROR=1 make        treat warnings as errors (CI does)
#   make sanitize-test   the database suites against a build with AddressSanitizer + UBSan
#   make valgrind-test   the regression suite with the server under valgrind (slow)
#
# The full suite (pg_regress, isolation, pgTAP, dump/restore) runs against a throwaway cluster:
# see scripts/test.sh, or the two commands at the top of README.md.

EXTENSION = oban_pro
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" oban_pro.control)
MODULE_big = oban_pro
DATA = $(wildcard sql/oban_pro--*.sql)

CORE_SRCS = $(wildcard src/core/*.cpp)
PG_SRCS = $(wildcard src/pg/*.cpp)
OBJS = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

# PG15 builds modules with default visibility: hide the C++ internals and export only what
# PGDLLEXPORT marks (the SQL-callable functions, the magic block, _PG_init).
PG_CPPFLAGS = -I$(CURDIR)/src -DPGDLLEXPORT='__attribute__((visibility("default")))'
PG_CXXFLAGS = -std=c++17 -fPIC -fvisibility=hidden -fvisibility-inlines-hidden \
              -Wextra -Wno-register -Wno-unused-parameter -Wno-missing-field-initializers \
              -MMD -MP
ifeq ($(WERROR),1)
PG_CXXFLAGS += -Werror
endif
# SANITIZE=address,undefined builds an instrumented oban_pro.so (and unit tests); it loads only into
# a server started with the sanitizer runtime preloaded: scripts/sanitize-test.sh does all of it.
SANITIZER_FLAGS = $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all)
ifneq ($(SANITIZE),)
PG_CXXFLAGS += $(SANITIZER_FLAGS)
PG_CPPFLAGS += -DOBAN_SANITIZER_BUILD
SHLIB_LINK += -fsanitize=$(SANITIZE)
endif
SHLIB_LINK += -lstdc++

EXTRA_CLEAN = $(OBJS:.o=.d) test/unit/run_unit_tests

# Extension code is not worth JIT-inlining, and PGXS would compile its bitcode without our C++ flags.
override with_llvm := no

include $(PGXS)

-include $(OBJS:.o=.d)

# --- pure C++ unit tests -------------------------------------------------------------------------
UNIT_SRCS = $(wildcard test/unit/*.cpp)
test/unit/run_unit_tests: $(UNIT_SRCS) $(CORE_SRCS) $(wildcard src/core/*.hpp)
	$(CXX) -std=c++17 -Wall -Wextra -Werror -O1 -g $(SANITIZER_FLAGS) -I$(CURDIR)/src $(UNIT_SRCS) \
		$(CORE_SRCS) -lgtest -lgtest_main -pthread -o $@

.PHONY: unit format check-format sanitize-test valgrind-test
unit: test/unit/run_unit_tests
	test/unit/run_unit_tests

# Both build in a copy of the sources and install into a private copy of PostgreSQL of their own.
sanitize-test:
	bash scripts/sanitize-test.sh
valgrind-test:
	bash scripts/valgrind-test.sh

CXX_FILES = $(shell find src test/unit -name '*.cpp' -o -name '*.hpp')
format:
	clang-format -i $(CXX_FILES)
check-format:
	clang-format --dry-run --Werror $(CXX_FILES)
