#include "pg/boundary.hpp"

#include <cstring>

namespace oban {

PgError::PgError(MemoryContext context, ErrorData *data)
    : owner_(std::make_shared<ContextOwner>(context)), data_(data) {}

PgError::ContextOwner::~ContextOwner() {
    if (context != nullptr) MemoryContextDelete(context);
}

const char *PgError::what() const noexcept {
    return data_ != nullptr && data_->message != nullptr ? data_->message : "postgres error";
}

std::pair<MemoryContext, ErrorData *> PgError::Release() {
    MemoryContext context = owner_->context;
    owner_->context = nullptr;
    return {context, data_};
}

namespace detail {

bool TryPostgres(void (*body)(void *), void *arg, MemoryContext *context, ErrorData **data) {
    MemoryContext caller_context = CurrentMemoryContext;
    volatile bool finished = false;
    PG_TRY();
    {
        body(arg);
        finished = true;
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        MemoryContext error_context =
            AllocSetContextCreate(TopMemoryContext, "oban_pro error", ALLOCSET_SMALL_SIZES);
        MemoryContextSwitchTo(error_context);
        ErrorData *copy = CopyErrorData();
        MemoryContextSwitchTo(caller_context);
        FlushErrorState();
        *context = error_context;
        *data = copy;
    }
    PG_END_TRY();
    return finished;
}

}  // namespace detail

namespace {

void CopyText(char *target, size_t size, const char *source) noexcept {
    if (source == nullptr) {
        target[0] = '\0';
        return;
    }
    strlcpy(target, source, size);
}

}  // namespace

void CaptureCurrentException(PendingError *out) noexcept {
    try {
        throw;
    } catch (PgError &e) {
        auto [context, data] = e.Release();
        out->pg_context = context;
        out->pg_data = data;
    } catch (Error &e) {
        out->sqlstate = e.sqlstate();
        CopyText(out->message, sizeof(out->message), e.what());
        CopyText(out->detail, sizeof(out->detail), e.detail().c_str());
        CopyText(out->hint, sizeof(out->hint), e.hint().c_str());
    } catch (std::bad_alloc &) {
        out->sqlstate = ERRCODE_OUT_OF_MEMORY;
        CopyText(out->message, sizeof(out->message), "out of memory");
    } catch (std::length_error &e) {
        out->sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
        CopyText(out->message, sizeof(out->message), e.what());
    } catch (std::exception &e) {
        out->sqlstate = ERRCODE_INTERNAL_ERROR;
        CopyText(out->message, sizeof(out->message), e.what());
    } catch (...) {
        out->sqlstate = ERRCODE_INTERNAL_ERROR;
        CopyText(out->message, sizeof(out->message), "unknown C++ exception");
    }
}

void RaisePending(PendingError *pending) {
    if (pending->pg_data != nullptr) {
        // Free the copy with the caller's memory once the error has been re-raised from it.
        MemoryContextSetParent(pending->pg_context, CurrentMemoryContext);
        ReThrowError(pending->pg_data);
    }
    ereport(ERROR, (errcode(pending->sqlstate), errmsg_internal("%s", pending->message),
                    pending->detail[0] ? errdetail_internal("%s", pending->detail) : 0,
                    pending->hint[0] ? errhint("%s", pending->hint) : 0));
    pg_unreachable();
}

void *MemoryContextResource::Allocate(std::size_t bytes) {
    if (!AllocSizeIsValid(bytes)) throw std::bad_alloc();
    void *pointer = MemoryContextAllocExtended(context_, bytes, MCXT_ALLOC_NO_OOM);
    if (pointer == nullptr) throw std::bad_alloc();
    return pointer;
}

void MemoryContextResource::Deallocate(void *pointer) noexcept {
    pfree(pointer);
}

}  // namespace oban
