// oban_boundary_selftest(kind text): provokes an error on each side of the C++/Postgres boundary
// so the regression suite can show each one surfaces with the right SQLSTATE and the session goes
// on. Not part of the extension's SQL API: test/sql/boundary.sql creates a function over it.
#include "pg/args.hpp"
#include "pg/boundary.hpp"

extern "C" {
#include "executor/spi.h"
#include "utils/builtins.h"
}

#include <memory>
#include <stdexcept>
#include <string>

namespace {

// Counts live instances, to show C++ destructors run when a Postgres error crosses C++ frames.
int live_sentinels = 0;
struct Sentinel {
    Sentinel() { ++live_sentinels; }
    ~Sentinel() { --live_sentinels; }
    Sentinel(const Sentinel &) = delete;
    Sentinel &operator=(const Sentinel &) = delete;
};

void RaiseDivisionByZero() {
    ereport(ERROR, (errcode(ERRCODE_DIVISION_BY_ZERO), errmsg("selftest: postgres error"),
                    errdetail("Raised by ereport inside PgCall."), errhint("This is the hint.")));
}

std::string Run(const std::string &kind) {
    Sentinel sentinel;
    if (kind == "cxx_error")
        throw oban::Error(ERRCODE_INVALID_PARAMETER_VALUE, "selftest: c++ error", "Thrown as oban::Error.",
                          "Carried through the guard.");
    if (kind == "std_exception") throw std::runtime_error("selftest: std::runtime_error");
    if (kind == "bad_alloc") {
        oban::MemoryContextResource memory(CurrentMemoryContext);
        oban::core::Vector<char> huge{oban::core::Allocator<char>(&memory)};
        huge.resize(static_cast<size_t>(2) << 30);  // beyond MaxAllocSize
        return "unreachable";
    }
    if (kind == "pg_error") {
        std::string live = "a live C++ object";
        oban::PgCall(RaiseDivisionByZero);
        return live;
    }
    if (kind == "pg_error_handled") {
        // A Postgres error caught in C++, its ErrorData inspected, and the call carried on.
        try {
            oban::PgCall([] { return DirectFunctionCall2(int4div, Int32GetDatum(1), Int32GetDatum(0)); });
        } catch (oban::PgError &e) {
            return std::string("caught ") + unpack_sql_state(e.sqlstate()) + ": " + e.what();
        }
        return "no error";
    }
    if (kind == "sentinels") return std::to_string(live_sentinels - 1);
#ifdef OBAN_SANITIZER_BUILD
    // Sanitizer builds only (make SANITIZE=...): one deliberate error of each kind, which the
    // sanitizer must report, so scripts/sanitize-test.sh shows that its check can fail.
    if (kind == "asan_canary") {
        volatile size_t size = 8;
        std::unique_ptr<char[]> bytes(new char[size]());
        return std::string(1, bytes[size]);  // heap-buffer-overflow: one past the end
    }
    if (kind == "ubsan_canary") {
        // PostgreSQL builds with -fwrapv, which defines signed overflow: a shift it is, then.
        volatile int shift = 40;
        return std::to_string(1 << shift);  // shift exponent too large for int
    }
#endif
    throw oban::Error(ERRCODE_INVALID_PARAMETER_VALUE, "unknown selftest kind \"" + kind + "\"");
}

}  // namespace

OBAN_FUNCTION(oban_boundary_selftest) {
    oban::pg::RequireArgument(fcinfo, 0, "kind");
    char *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
    // The result is copied into Postgres memory before any C++ object is gone from scope.
    text *result = nullptr;
    {
        std::string answer = Run(kind);
        result = oban::PgCall([&] { return cstring_to_text_with_len(answer.data(), (int)answer.size()); });
    }
    PG_RETURN_TEXT_P(result);
}
