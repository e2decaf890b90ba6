// The C++/Postgres boundary: the only place where C++ exceptions and Postgres errors meet.
//
// Rules every file in src/pg follows (notes/craft.md §2):
//  * Every SQL-callable function is defined with OBAN_FUNCTION, whose guard turns any C++ exception
//    into an ereport *after* the catch block has been left. No C++ exception reaches a Postgres frame.
//  * A Postgres error longjmps. Code may call Postgres directly only in frames that hold no object
//    with a non-trivial destructor (plain C style: Datums, pointers, ints). Where C++ objects are live,
//    Postgres is called through PgCall, which turns the error into a PgError exception; the guard
//    re-raises it later with its SQLSTATE, message, detail and hint intact.
//  * CHECK_FOR_INTERRUPTS only where no C++ state is live.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

// port.h turns these into macros that break C++ standard headers included later.
#undef snprintf
#undef vsnprintf
#undef sprintf
#undef vsprintf
#undef printf
#undef fprintf

#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "core/memory.hpp"

namespace oban {

// An error raised by the extension's own C++ code: it carries the SQLSTATE the guard reports.
class Error : public std::runtime_error {
public:
    Error(int sqlstate, const std::string &message, std::string detail = {}, std::string hint = {})
        : std::runtime_error(message),
          sqlstate_(sqlstate),
          detail_(std::move(detail)),
          hint_(std::move(hint)) {}

    int sqlstate() const { return sqlstate_; }
    const std::string &detail() const { return detail_; }
    const std::string &hint() const { return hint_; }

private:
    int sqlstate_;
    std::string detail_;
    std::string hint_;
};

// A Postgres error caught by PgCall. It owns a complete copy of the ErrorData in a private memory
// context, so it can be re-raised unchanged (ReThrowError) once no C++ frame is left to unwind.
class PgError : public std::exception {
public:
    // Takes ownership of `context`, which holds `data`.
    PgError(MemoryContext context, ErrorData *data);

    const char *what() const noexcept override;
    int sqlstate() const { return data_->sqlerrcode; }
    const ErrorData *data() const { return data_; }

    // Hands the ErrorData (and its context) to the guard, which re-raises it.
    std::pair<MemoryContext, ErrorData *> Release();

private:
    // Shared by the copies the C++ runtime makes of the exception object.
    struct ContextOwner {
        explicit ContextOwner(MemoryContext c) : context(c) {}
        ~ContextOwner();
        MemoryContext context;
    };
    std::shared_ptr<ContextOwner> owner_;
    ErrorData *data_;
};

namespace detail {
// Runs `body(arg)` under PG_TRY. Returns true when it finished; on a Postgres error copies the
// ErrorData into a fresh context and returns false with *context/*data set.
bool TryPostgres(void (*body)(void *), void *arg, MemoryContext *context, ErrorData **data);
}  // namespace detail

// Calls Postgres from C++: any ereport(ERROR) inside `fn` becomes a PgError exception. `fn` must
// only call Postgres (no C++ objects with destructors may be created inside it); its result must be
// trivially copyable (a Datum, a pointer, a number).
template <typename Fn>
auto PgCall(Fn &&fn) -> decltype(fn()) {
    using Result = decltype(fn());
    struct Call {
        std::remove_reference_t<Fn> *fn;
        std::conditional_t<std::is_void_v<Result>, int, Result> result;
        std::exception_ptr cxx_error;
    } call{&fn, {}, nullptr};
    static_assert(std::is_void_v<Result> || std::is_trivially_copyable_v<Result>,
                  "PgCall returns only trivially copyable values");

    MemoryContext context = nullptr;
    ErrorData *data = nullptr;
    bool finished = detail::TryPostgres(
        [](void *arg) {
            auto *c = static_cast<Call *>(arg);
            // A C++ exception must not leave the PG_TRY body: keep it and rethrow outside.
            try {
                if constexpr (std::is_void_v<Result>)
                    (*c->fn)();
                else
                    c->result = (*c->fn)();
            } catch (...) {
                c->cxx_error = std::current_exception();
            }
        },
        &call, &context, &data);
    if (!finished) throw PgError(context, data);
    if (call.cxx_error) std::rethrow_exception(call.cxx_error);
    if constexpr (!std::is_void_v<Result>) return call.result;
}

// What the guard raises: filled inside a catch block without allocating, raised after leaving it.
struct PendingError {
    int sqlstate = 0;
    char message[1024] = {0};
    char detail[1024] = {0};
    char hint[512] = {0};
    MemoryContext pg_context = nullptr;  // set when re-raising a Postgres error
    ErrorData *pg_data = nullptr;
};

// Records the exception currently being handled into `out`. Call only inside a catch block.
void CaptureCurrentException(PendingError *out) noexcept;

// Raises the captured error. Call only outside any catch block.
[[noreturn]] void RaisePending(PendingError *pending);

// The guard every SQL-callable entry point goes through.
template <Datum (*Body)(FunctionCallInfo)>
Datum Guarded(FunctionCallInfo fcinfo) {
    PendingError pending;
    try {
        return Body(fcinfo);
    } catch (...) {
        CaptureCurrentException(&pending);
    }
    RaisePending(&pending);
}

// A MemoryResource backed by a Postgres memory context, for Boost.Container (core/memory.hpp).
// Allocation failures surface as std::bad_alloc, never as a longjmp through C++ frames.
class MemoryContextResource final : public core::MemoryResource {
public:
    explicit MemoryContextResource(MemoryContext context) : context_(context) {}
    void *Allocate(std::size_t bytes) override;
    void Deallocate(void *pointer) noexcept override;

private:
    MemoryContext context_;
};

}  // namespace oban

// Defines the SQL-callable C function `name`, whose body is `static Datum name##_body(fcinfo)`
// declared by this macro and run through the guard.
#define OBAN_FUNCTION(name)                            \
    static Datum name##_body(FunctionCallInfo fcinfo); \
    extern "C" {                                       \
    PGDLLEXPORT PG_FUNCTION_INFO_V1(name);             \
    Datum name(PG_FUNCTION_ARGS) {                     \
        return oban::Guarded<name##_body>(fcinfo);     \
    }                                                  \
    }                                                  \
    static Datum name##_body(FunctionCallInfo fcinfo)
