// Fetch floors in shared memory: a table of queues, each with its core::QueueFloor under a
// spinlock, and the per-transaction bookkeeping that publishes keys when jobs become visible.
//
// A transaction records, per queue, the lowest key of the jobs it made available (from the
// triggers) and of the jobs it claimed (from oban_fetch_jobs). At commit, once the transaction is
// visible, it publishes the first; at abort, the second (those jobs are available again). A
// subtransaction that aborts publishes what it claimed and forgets what it made available.
#include "pg/fetch_floor.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"
}

namespace oban::pg {

int fetch_full_scan_interval_ms = 1000;

namespace {

using oban::core::FetchKey;

// Queue names of up to kMaxQueueBytes - 1 bytes get a floor; a longer one is always walked from
// its start. Entries are never removed: a dropped table's floors stay until the server restarts,
// and once kMaxQueues are taken, new queues go without one.
constexpr int kMaxQueueBytes = 64;
constexpr long kMaxQueues = 1024;

struct FloorTag {
    Oid database;
    Oid jobs_table;
    char queue[kMaxQueueBytes];
};

struct FloorEntry {
    FloorTag tag;  // the hash key: first
    slock_t mutex;
    oban::core::QueueFloor floor;
};

HTAB *shared_floors = nullptr;  // nullptr: the library was not preloaded
LWLock *floors_lock = nullptr;  // guards the table's entries list (not the floors)
shmem_request_hook_type previous_request_hook = nullptr;
shmem_startup_hook_type previous_startup_hook = nullptr;

void RequestSharedMemory() {
    if (previous_request_hook != nullptr) previous_request_hook();
    RequestAddinShmemSpace(hash_estimate_size(kMaxQueues, sizeof(FloorEntry)));
    RequestNamedLWLockTranche("oban_pro fetch floors", 1);
}

void StartSharedMemory() {
    if (previous_startup_hook != nullptr) previous_startup_hook();
    HASHCTL info{};
    info.keysize = sizeof(FloorTag);
    info.entrysize = sizeof(FloorEntry);
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    shared_floors =
        ShmemInitHash("oban_pro fetch floors", kMaxQueues, kMaxQueues, &info, HASH_ELEM | HASH_BLOBS);
    floors_lock = &GetNamedLWLockTranche("oban_pro fetch floors")->lock;
    LWLockRelease(AddinShmemInitLock);
}

// This backend's map from tags to shared entries (entries never move or go away).
struct CachedFloor {
    FloorTag tag;
    FloorEntry *entry;  // nullptr: the shared table is full
};
HTAB *cached_floors = nullptr;
CachedFloor *last_used = nullptr;

// Fills `tag`; false when the queue name is too long to have a floor.
bool MakeTag(Oid jobs_table, Datum queue_text, FloorTag *tag) {
    text *queue = DatumGetTextPP(queue_text);
    size_t length = VARSIZE_ANY_EXHDR(queue);
    bool fits = length < kMaxQueueBytes;
    if (fits) {
        memset(tag, 0, sizeof(*tag));
        tag->database = MyDatabaseId;
        tag->jobs_table = jobs_table;
        memcpy(tag->queue, VARDATA_ANY(queue), length);
    }
    if (reinterpret_cast<Pointer>(queue) != DatumGetPointer(queue_text)) pfree(queue);
    return fits;
}

FloorEntry *SharedEntry(const FloorTag &tag) {
    LWLockAcquire(floors_lock, LW_SHARED);
    auto *entry = static_cast<FloorEntry *>(hash_search(shared_floors, &tag, HASH_FIND, nullptr));
    LWLockRelease(floors_lock);
    if (entry != nullptr) return entry;
    LWLockAcquire(floors_lock, LW_EXCLUSIVE);
    bool found = false;
    entry = static_cast<FloorEntry *>(hash_search(shared_floors, &tag, HASH_ENTER_NULL, &found));
    if (entry != nullptr && !found) {
        SpinLockInit(&entry->mutex);
        entry->floor.Reset();
    }
    LWLockRelease(floors_lock);
    return entry;
}

FloorEntry *FindFloor(Oid jobs_table, Datum queue_text) {
    if (shared_floors == nullptr) return nullptr;
    FloorTag tag;
    if (!MakeTag(jobs_table, queue_text, &tag)) return nullptr;
    if (last_used != nullptr && memcmp(&last_used->tag, &tag, sizeof(tag)) == 0) return last_used->entry;
    if (cached_floors == nullptr) {
        HASHCTL info{};
        info.keysize = sizeof(FloorTag);
        info.entrysize = sizeof(CachedFloor);
        info.hcxt = TopMemoryContext;
        cached_floors =
            hash_create("oban_pro fetch floors (cache)", 16, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    }
    bool found = false;
    auto *cached = static_cast<CachedFloor *>(hash_search(cached_floors, &tag, HASH_ENTER, &found));
    if (!found) cached->entry = nullptr;  // if SharedEntry raises, the next call retries
    if (cached->entry == nullptr) cached->entry = SharedEntry(tag);
    last_used = cached;
    return cached->entry;
}

void Publish(FloorEntry *entry, const FetchKey &key) {
    SpinLockAcquire(&entry->mutex);
    entry->floor.Publish(key);
    SpinLockRelease(&entry->mutex);
}

// --- per transaction ------------------------------------------------------------------------------

// The lowest key a (sub)transaction made available (`claimed` false) or claimed (true) in one queue,
// in TopTransactionContext.
struct PendingKey {
    FloorEntry *entry;
    FetchKey key;
    int nest_level;
    bool claimed;
};
List *pending_keys = NIL;

void RecordKey(FloorEntry *entry, const FetchKey &key, bool claimed) {
    int level = GetCurrentTransactionNestLevel();
    ListCell *cell;
    foreach (cell, pending_keys) {
        auto *pending = static_cast<PendingKey *>(lfirst(cell));
        if (pending->entry == entry && pending->claimed == claimed && pending->nest_level == level) {
            pending->key = std::min(pending->key, key);
            return;
        }
    }
    auto *pending = static_cast<PendingKey *>(MemoryContextAlloc(TopTransactionContext, sizeof(PendingKey)));
    *pending = PendingKey{entry, key, level, claimed};
    MemoryContext caller = MemoryContextSwitchTo(TopTransactionContext);
    pending_keys = lappend(pending_keys, pending);
    MemoryContextSwitchTo(caller);
}

// Publishes the recorded keys with `claimed` equal to `publish_claimed`. Nothing here can fail.
void PublishPending(bool publish_claimed) {
    ListCell *cell;
    foreach (cell, pending_keys) {
        auto *pending = static_cast<PendingKey *>(lfirst(cell));
        if (pending->claimed == publish_claimed) Publish(pending->entry, pending->key);
    }
}

void OnTransactionEvent(XactEvent event, void *) {
    switch (event) {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PREPARE:  // visible only at COMMIT PREPARED: the full scans find them
            PublishPending(false);
            pending_keys = NIL;  // its memory goes with TopTransactionContext
            break;
        case XACT_EVENT_ABORT:
            PublishPending(true);
            pending_keys = NIL;
            break;
        case XACT_EVENT_PARALLEL_COMMIT:
        case XACT_EVENT_PARALLEL_ABORT:
            pending_keys = NIL;
            break;
        default:
            break;
    }
}

void OnSubtransactionEvent(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
    if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB) return;
    int level = GetCurrentTransactionNestLevel();
    ListCell *cell;
    foreach (cell, pending_keys) {
        auto *pending = static_cast<PendingKey *>(lfirst(cell));
        if (pending->nest_level < level) continue;
        if (event == SUBXACT_EVENT_ABORT_SUB) {
            if (pending->claimed) Publish(pending->entry, pending->key);
            pending_keys = foreach_delete_current(pending_keys, cell);
        } else {
            pending->nest_level = level - 1;  // a duplicate of the parent's entry is harmless
        }
    }
}

}  // namespace

FetchKey FetchKeyOf(Datum priority, Datum scheduled_at, Datum id) {
    return FetchKey{DatumGetInt16(priority), DatumGetTimestamp(scheduled_at), DatumGetInt64(id)};
}

void RecordAvailableJob(Oid jobs_table, Datum queue_text, const FetchKey &key) {
    FloorEntry *entry = FindFloor(jobs_table, queue_text);
    if (entry != nullptr) RecordKey(entry, key, false);
}

FloorFetch BeginFetch(Oid jobs_table, Datum queue_text) {
    FloorEntry *entry = fetch_full_scan_interval_ms > 0 ? FindFloor(jobs_table, queue_text) : nullptr;
    if (entry == nullptr) return FloorFetch{nullptr, {oban::core::kLowestFetchKey, 0, true}};
    int64 now = GetCurrentTimestamp();
    SpinLockAcquire(&entry->mutex);
    oban::core::FetchStart start = entry->floor.Start(now, int64(fetch_full_scan_interval_ms) * 1000);
    SpinLockRelease(&entry->mutex);
    // Jobs this transaction made available are published only at its commit, but its own fetches
    // see them now: start low enough to reach them.
    ListCell *cell;
    foreach (cell, pending_keys) {
        auto *pending = static_cast<PendingKey *>(lfirst(cell));
        if (pending->entry == entry && !pending->claimed) start.from = std::min(start.from, pending->key);
    }
    return FloorFetch{entry, start};
}

void EndFetch(const FloorFetch &fetch, const FetchKey &first, const FetchKey &last) {
    auto *entry = static_cast<FloorEntry *>(fetch.queue_floor);
    if (entry == nullptr) return;
    RecordKey(entry, first, true);
    // Under REPEATABLE READ or SERIALIZABLE the snapshot predates BeginFetch: the fetch may not
    // have seen jobs published before it, so it must not move the floor.
    if (IsolationUsesXactSnapshot()) return;
    SpinLockAcquire(&entry->mutex);
    entry->floor.Advance(fetch.start, last);
    SpinLockRelease(&entry->mutex);
}

void InitFetchFloors() {
    DefineCustomIntVariable(
        "oban_pro.fetch_full_scan_interval",
        "How often oban_fetch_jobs walks a queue from its first available job.",
        "In between, fetches start where earlier ones left off. 0: every fetch walks from the start.",
        &fetch_full_scan_interval_ms, 1000, 0, 3600 * 1000, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr,
        nullptr);
    RegisterXactCallback(OnTransactionEvent, nullptr);
    RegisterSubXactCallback(OnSubtransactionEvent, nullptr);
    if (!process_shared_preload_libraries_in_progress) return;
    previous_request_hook = shmem_request_hook;
    shmem_request_hook = RequestSharedMemory;
    previous_startup_hook = shmem_startup_hook;
    shmem_startup_hook = StartSharedMemory;
}

}  // namespace oban::pg
