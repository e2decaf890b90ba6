// oban_insert_workflow and oban_append_workflow: the JSON spec is read into the pure C++ model
// (core/workflow_spec), validated there, and inserted with one INSERT of all its jobs. The
// dependency triggers then suspend whatever has to wait, exactly as for a plain INSERT; a spec
// whose deps all lie inside it goes in with its waiting jobs suspended, and its waits and edges are
// written here (WriteWaitsAndEdges).
#include "core/workflow_spec.hpp"
#include "pg/args.hpp"
#include "pg/sql.hpp"
#include "pg/uniqueness.hpp"
#include "pg/workflows.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
}

namespace oban::pg {

namespace {

using core::JsonKind;
using core::RawField;

// --- reading the spec (C-style: runs inside PgCall) ----------------------------------------------

JsonKind KindOf(const JsonbValue &value) {
    switch (value.type) {
        case jbvNull:
            return JsonKind::Null;
        case jbvString:
            return JsonKind::String;
        case jbvNumeric:
            return JsonKind::Number;
        case jbvBool:
            return JsonKind::Boolean;
        case jbvBinary:
            return JsonContainerIsArray(value.val.binary.data) ? JsonKind::Array : JsonKind::Object;
        default:
            return JsonKind::Object;
    }
}

bool Lookup(JsonbContainer *object, const char *key, JsonbValue *value) {
    return getKeyJsonValueFromContainer(object, key, (uint32)strlen(key), value) != nullptr;
}

RawField Field(JsonbContainer *object, const char *key) {
    JsonbValue value;
    RawField field;
    if (!Lookup(object, key, &value)) return field;
    field.kind = KindOf(value);
    if (value.type == jbvString) {
        field.text = {value.val.string.val, static_cast<size_t>(value.val.string.len)};
    } else if (value.type == jbvNumeric) {
        field.text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(value.val.numeric)));
    } else if (value.type == jbvBool) {
        field.text = value.val.boolean ? "true" : "false";
    }
    return field;
}

JsonKind Kind(JsonbContainer *object, const char *key) {
    JsonbValue value;
    return Lookup(object, key, &value) ? KindOf(value) : JsonKind::Missing;
}

// Iterates the elements of an array container, calling `each(value)`.
template <typename Each>
void ForEachElement(JsonbContainer *array, Each each) {
    JsonbIterator *iterator = JsonbIteratorInit(array);
    JsonbValue value;
    JsonbIteratorToken token;
    while ((token = JsonbIteratorNext(&iterator, &value, true)) != WJB_DONE)
        if (token == WJB_ELEM) each(value);
}

void ReadWorkflow(core::WorkflowSpec *spec, int index, const JsonbValue &value);

void ReadStep(core::WorkflowSpec *spec, int workflow, const JsonbValue &value) {
    spec->workflows[workflow].steps.emplace_back(spec->memory());
    int step_index = static_cast<int>(spec->workflows[workflow].steps.size() - 1);
    core::RawStep *step = &spec->workflows[workflow].steps.back();
    if (value.type != jbvBinary || !JsonContainerIsObject(value.val.binary.data)) return;
    JsonbContainer *object = value.val.binary.data;
    step->is_object = true;
    step->source = object;
    step->name = Field(object, "name");
    step->worker = Field(object, "worker");
    step->queue = Field(object, "queue");
    step->priority = Field(object, "priority");
    step->max_attempts = Field(object, "max_attempts");
    step->scheduled_at = Field(object, "scheduled_at");
    step->args = Kind(object, "args");
    step->meta = Kind(object, "meta");
    step->tags = Kind(object, "tags");
    JsonbValue field;
    if (step->tags == JsonKind::Array && Lookup(object, "tags", &field))
        ForEachElement(field.val.binary.data, [&](const JsonbValue &tag) {
            if (tag.type != jbvString) step->tags_all_strings = false;
        });
    step->deps = Kind(object, "deps");
    if (Lookup(object, "deps", &field)) {
        auto add_dep = [&](const JsonbValue &dep) {
            core::RawDep raw;
            raw.kind = KindOf(dep);
            if (dep.type == jbvString) {
                raw.name = {JsonKind::String, {dep.val.string.val, static_cast<size_t>(dep.val.string.len)}};
            } else if (raw.kind == JsonKind::Array) {
                int position = 0;
                ForEachElement(dep.val.binary.data, [&](const JsonbValue &part) {
                    RawField text{KindOf(part), {}};
                    if (part.type == jbvString)
                        text.text = {part.val.string.val, static_cast<size_t>(part.val.string.len)};
                    if (position == 0) raw.workflow_id = text;
                    if (position == 1) raw.name = text;
                    position++;
                });
                raw.arity = position;
            }
            step->dep_list.push_back(raw);
        };
        if (field.type == jbvString)
            add_dep(field);
        else if (step->deps == JsonKind::Array)
            ForEachElement(field.val.binary.data, add_dep);
    }
    step->workflow = Kind(object, "workflow");
    if (step->workflow == JsonKind::Object && Lookup(object, "workflow", &field) &&
        spec->workflows[workflow].depth < core::kMaxNesting + 1) {
        int sub = spec->AddWorkflow(workflow, step_index);
        spec->workflows[workflow].steps[step_index].sub_workflow = sub;
        ReadWorkflow(spec, sub, field);
    }
}

void ReadWorkflow(core::WorkflowSpec *spec, int index, const JsonbValue &value) {
    if (value.type != jbvBinary || !JsonContainerIsObject(value.val.binary.data)) return;
    JsonbContainer *object = value.val.binary.data;
    core::RawWorkflow *workflow = &spec->workflows[index];
    workflow->is_object = true;
    workflow->workflow_id = Field(object, "workflow_id");
    workflow->name = Field(object, "name");
    workflow->unique = Field(object, "unique");
    workflow->ignore_cancelled = Field(object, "ignore_cancelled");
    workflow->ignore_discarded = Field(object, "ignore_discarded");
    workflow->ignore_deleted = Field(object, "ignore_deleted");
    workflow->jobs = Kind(object, "jobs");
    JsonbValue jobs;
    if (workflow->jobs == JsonKind::Array && Lookup(object, "jobs", &jobs))
        ForEachElement(jobs.val.binary.data, [&](const JsonbValue &job) { ReadStep(spec, index, job); });
}

JsonbValue RootValue(Jsonb *document) {
    JsonbValue value;
    if (JB_ROOT_IS_SCALAR(document)) {
        value.type = jbvNull;  // any scalar: not an object
        return value;
    }
    value.type = jbvBinary;
    value.val.binary.data = &document->root;
    value.val.binary.len = (int)VARSIZE(document);
    return value;
}

// --- building the jobs (C-style: runs inside PgCall) ---------------------------------------------

// A job's meta is built as a jsonb value, not written as text for jsonb_in to parse back (4% of a
// small workflow's insert). The strings pushed are not copied: they must outlive the build.
void PushString(JsonbParseState **meta, JsonbIteratorToken token, std::string_view text) {
    JsonbValue value;
    value.type = jbvString;
    value.val.string.val = const_cast<char *>(text.data());
    value.val.string.len = (int)text.size();
    pushJsonbValue(meta, token, &value);
}

void PushKey(JsonbParseState **meta, std::string_view key) {
    PushString(meta, WJB_KEY, key);
}

void PushStringField(JsonbParseState **meta, std::string_view key, std::string_view value) {
    PushKey(meta, key);
    PushString(meta, WJB_VALUE, value);
}

void PushTrueField(JsonbParseState **meta, std::string_view key) {
    PushKey(meta, key);
    JsonbValue value;
    value.type = jbvBool;
    value.val.boolean = true;
    pushJsonbValue(meta, WJB_VALUE, &value);
}

// Random bytes for new workflow ids, drawn from pg_strong_random a pool at a time: one draw per id
// (gen_random_uuid's) cost a tenth of a small workflow's insert through OpenSSL's generator.
uint8 random_pool[4096];
size_t random_pool_used = sizeof(random_pool);  // empty until the first id

// A new workflow id: a version 7 UUID (RFC 9562), the Unix time in milliseconds then 74 random bits,
// so that ids made later sort later and the indexes keyed by workflow id grow at one end.
char *NewUuid() {
    constexpr size_t kRandomBytes = 10;
    if (random_pool_used + kRandomBytes > sizeof(random_pool)) {
        if (!pg_strong_random(random_pool, sizeof(random_pool)))
            ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate random values")));
        random_pool_used = 0;
    }
    uint8 bytes[16];
    // Microseconds since 2000-01-01 to milliseconds since 1970-01-01.
    uint64 unix_ms = static_cast<uint64>(
        GetCurrentTimestamp() / 1000 + int64(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000);
    for (int i = 0; i < 6; i++) bytes[i] = static_cast<uint8>(unix_ms >> (40 - 8 * i));
    memcpy(bytes + 6, random_pool + random_pool_used, kRandomBytes);
    random_pool_used += kRandomBytes;
    bytes[6] = (bytes[6] & 0x0f) | 0x70;  // version 7
    bytes[8] = (bytes[8] & 0x3f) | 0x80;  // variant 10
    char *text = static_cast<char *>(palloc(sizeof("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")));
    static const char kHex[] = "0123456789abcdef";
    char *out = text;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *out++ = '-';
        *out++ = kHex[bytes[i] >> 4];
        *out++ = kHex[bytes[i] & 0xf];
    }
    *out = '\0';
    return text;
}

bool IsTrue(const RawField &field) {
    return field.kind == JsonKind::Boolean && field.text == "true";
}

// A dep of a job of the spec, for its edge: the job's workflow id and step name, and the dep's
// (texts).
struct JobDep {
    Datum workflow_id, name, dep_workflow_id, dep_name;
};

struct Built {
    ArrayBuildState *workers, *args, *queues, *priorities, *max_attempts, *scheduled, *metas, *tags;
    int count;
    List *deps;  // JobDep *, every dep of every job (oban_insert_workflow writes their edges)
};

// `dep`, a dep of a step of workflow `owner`, as meta.deps stores it: the workflow it names
// (`external_workflow_id` when `workflow_id` is nullptr) and the step name ("*" for a whole
// sub-workflow), bare (a name alone) for a step of the owner's own workflow unless `absolute`.
struct StoredDep {
    const char *workflow_id;
    std::string_view external_workflow_id, name;
    bool bare;
};

StoredDep Stored(const core::WorkflowSpec &spec, char **ids, int owner, const core::ResolvedDep &dep,
                 bool absolute) {
    switch (dep.kind) {
        case core::ResolvedDep::Step:
            return {ids[dep.workflow], {}, spec.workflows[dep.workflow].steps[dep.step].name.text, !absolute};
        case core::ResolvedDep::SubWorkflow:
            return {ids[dep.workflow], {}, "*", false};
        case core::ResolvedDep::External:
            break;
    }
    if (!dep.external_workflow_id.empty()) return {nullptr, dep.external_workflow_id, dep.name, false};
    return {ids[owner], {}, dep.name, !absolute};
}

// Appends `dep` to meta.deps being built in `meta`, and to `job`'s deps in `built`.
void AddDep(JsonbParseState **meta, Built *built, const JobDep &job, const StoredDep &dep) {
    if (dep.bare) {
        PushString(meta, WJB_ELEM, dep.name);
    } else {
        pushJsonbValue(meta, WJB_BEGIN_ARRAY, nullptr);
        PushString(meta, WJB_ELEM,
                   dep.workflow_id != nullptr ? std::string_view(dep.workflow_id) : dep.external_workflow_id);
        PushString(meta, WJB_ELEM, dep.name);
        pushJsonbValue(meta, WJB_END_ARRAY, nullptr);
    }
    auto *edge = static_cast<JobDep *>(palloc(sizeof(JobDep)));
    *edge = job;
    edge->dep_workflow_id = dep.workflow_id != nullptr
                                ? CStringGetTextDatum(dep.workflow_id)
                                : PointerGetDatum(cstring_to_text_with_len(
                                      dep.external_workflow_id.data(), (int)dep.external_workflow_id.size()));
    edge->dep_name = PointerGetDatum(cstring_to_text_with_len(dep.name.data(), (int)dep.name.size()));
    built->deps = lappend(built->deps, edge);
}

// A step with no dep inside its own workflow starts the workflow.
bool IsRoot(const core::WorkflowSpec &spec, int workflow, int step) {
    for (const core::ResolvedDep &dep : spec.DepsOf(workflow, step)) {
        if (dep.kind != core::ResolvedDep::External || dep.external_workflow_id.empty()) return false;
    }
    return true;
}

// Adds the deps a root job of sub-workflow `workflow` inherits from its entry (and from the
// entry's own entry, when the entry is itself a root), as [workflow_id, name] pairs.
void AddInheritedDeps(JsonbParseState **meta, Built *built, const JobDep &job, const core::WorkflowSpec &spec,
                      char **ids, int workflow) {
    const core::RawWorkflow &sub = spec.workflows[workflow];
    if (sub.parent < 0) return;
    for (const core::ResolvedDep &dep : spec.DepsOf(sub.parent, sub.parent_step))
        AddDep(meta, built, job, Stored(spec, ids, sub.parent, dep, true));
    if (IsRoot(spec, sub.parent, sub.parent_step)) AddInheritedDeps(meta, built, job, spec, ids, sub.parent);
}

// Workflow-level options every job of the spec carries in its meta.
struct Options {
    const char *name;       // nullptr when unnamed
    const char *parent_id;  // appending to a sub-workflow: its parent and name there
    const char *sub_name;
    bool unique, ignore_cancelled, ignore_discarded, ignore_deleted;
};

void BuildJobs(const core::WorkflowSpec &spec, char **ids, const Options &top, Built *built) {
    MemoryContext context = CurrentMemoryContext;
    // The args of steps that give none: one value, shared by those steps.
    Datum no_args = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
    for (size_t w = 0; w < spec.workflows.size(); w++) {
        const core::RawWorkflow &workflow = spec.workflows[w];
        for (size_t s = 0; s < workflow.steps.size(); s++) {
            const core::RawStep &step = workflow.steps[s];
            if (step.sub_workflow >= 0) continue;
            auto *object = static_cast<JsonbContainer *>(const_cast<void *>(step.source));
            JsonbValue value;

            JsonbParseState *meta = nullptr;
            pushJsonbValue(&meta, WJB_BEGIN_OBJECT, nullptr);
            PushStringField(&meta, "workflow_id", ids[w]);
            PushStringField(&meta, "name", step.name.text);
            PushKey(&meta, "deps");
            pushJsonbValue(&meta, WJB_BEGIN_ARRAY, nullptr);
            JobDep job{
                CStringGetTextDatum(ids[w]),
                PointerGetDatum(cstring_to_text_with_len(step.name.text.data(), (int)step.name.text.size())),
                (Datum)0, (Datum)0};
            for (const core::ResolvedDep &dep : spec.DepsOf((int)w, (int)s))
                AddDep(&meta, built, job, Stored(spec, ids, (int)w, dep, false));
            if (workflow.parent >= 0 && IsRoot(spec, (int)w, (int)s))
                AddInheritedDeps(&meta, built, job, spec, ids, (int)w);
            pushJsonbValue(&meta, WJB_END_ARRAY, nullptr);
            if (workflow.parent >= 0) {
                PushStringField(&meta, "sup_workflow_id", ids[workflow.parent]);
                PushStringField(&meta, "sub_name",
                                spec.workflows[workflow.parent].steps[workflow.parent_step].name.text);
                if (workflow.name.kind == JsonKind::String)
                    PushStringField(&meta, "workflow_name", workflow.name.text);
            } else {
                if (top.name != nullptr) PushStringField(&meta, "workflow_name", top.name);
                if (top.parent_id != nullptr) {
                    PushStringField(&meta, "sup_workflow_id", top.parent_id);
                    PushStringField(&meta, "sub_name", top.sub_name != nullptr ? top.sub_name : "");
                }
            }
            if (workflow.parent < 0 && top.unique) PushTrueField(&meta, "workflow_unique");
            if (top.ignore_cancelled) PushTrueField(&meta, "ignore_cancelled");
            if (top.ignore_discarded) PushTrueField(&meta, "ignore_discarded");
            if (top.ignore_deleted) PushTrueField(&meta, "ignore_deleted");
            Datum ours = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&meta, WJB_END_OBJECT, nullptr)));
            Datum merged = ours;
            if (Lookup(object, "meta", &value) && value.type == jbvBinary)
                merged = DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(JsonbValueToJsonb(&value)), ours);

            auto text_or = [&](const RawField &field, const char *fallback) {
                return field.kind == JsonKind::String ? PointerGetDatum(cstring_to_text_with_len(
                                                            field.text.data(), (int)field.text.size()))
                                                      : CStringGetTextDatum(fallback);
            };
            auto int_or = [&](const RawField &field, int32 fallback) {
                return Int32GetDatum(field.kind == JsonKind::Number
                                         ? pg_strtoint32(pnstrdup(field.text.data(), field.text.size()))
                                         : fallback);
            };
            accumArrayResult(built->workers, text_or(step.worker, ""), false, TEXTOID, context);
            Datum args = Lookup(object, "args", &value) && value.type == jbvBinary
                             ? JsonbPGetDatum(JsonbValueToJsonb(&value))
                             : no_args;
            accumArrayResult(built->args, args, false, JSONBOID, context);
            accumArrayResult(built->queues, text_or(step.queue, "default"), false, TEXTOID, context);
            accumArrayResult(built->priorities, int_or(step.priority, 0), false, INT4OID, context);
            accumArrayResult(built->max_attempts, int_or(step.max_attempts, 20), false, INT4OID, context);
            bool no_schedule = step.scheduled_at.kind != JsonKind::String;
            accumArrayResult(built->scheduled, no_schedule ? (Datum)0 : text_or(step.scheduled_at, ""),
                             no_schedule, TEXTOID, context);
            accumArrayResult(built->metas, merged, false, JSONBOID, context);
            // A step with no tags passes NULL: the insert then takes '{}' rather than running its
            // subquery over the step's tags.
            bool no_tags = !(Lookup(object, "tags", &value) && value.type == jbvBinary);
            accumArrayResult(built->tags, no_tags ? (Datum)0 : JsonbPGetDatum(JsonbValueToJsonb(&value)),
                             no_tags, JSONBOID, context);
            built->count++;
        }
    }
}

Statement insert_jobs{R"sql(
    INSERT INTO @extschema@.oban_jobs (worker, args, queue, priority, max_attempts, scheduled_at, state, meta, tags)
    SELECT j.worker, j.args, j.queue, j.priority, j.max_attempts,
           coalesce(j.scheduled_at::timestamp, timezone('UTC', now())),
           CASE WHEN j.scheduled_at::timestamp > timezone('UTC', now()) THEN 'scheduled' ELSE 'available' END
               ::@extschema@.oban_job_state,
           j.meta,
           CASE WHEN j.tags IS NULL THEN '{}' ELSE ARRAY(SELECT jsonb_array_elements_text(j.tags)) END
    FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::int[], $5::int[], $6::text[], $7::jsonb[], $8::jsonb[])
         WITH ORDINALITY AS j(worker, args, queue, priority, max_attempts, scheduled_at, meta, tags, position)
    ORDER BY j.position
    RETURNING id, meta->>'workflow_id', meta->>'name', state, false)sql",
                      8,
                      {TEXTARRAYOID, JSONBARRAYOID, TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
                       JSONBARRAYOID, JSONBARRAYOID}};

// The same insert when every dep of the spec is a job or sub-workflow of the spec itself: those are
// all new, hence pending, so the jobs with deps go in suspended, and oban_insert_workflow writes
// their waits and edges itself (WriteWaitsAndEdges) rather than the insert trigger checking each
// job's deps (which this skips).
Statement insert_new_jobs{R"sql(
    INSERT INTO @extschema@.oban_jobs (worker, args, queue, priority, max_attempts, scheduled_at, state, meta, tags)
    SELECT j.worker, j.args, j.queue, j.priority, j.max_attempts,
           coalesce(j.scheduled_at::timestamp, timezone('UTC', now())),
           CASE WHEN jsonb_array_length(j.meta->'deps') > 0 THEN 'suspended'
                WHEN j.scheduled_at::timestamp > timezone('UTC', now()) THEN 'scheduled'
                ELSE 'available' END::@extschema@.oban_job_state,
           j.meta,
           CASE WHEN j.tags IS NULL THEN '{}' ELSE ARRAY(SELECT jsonb_array_elements_text(j.tags)) END
    FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::int[], $5::int[], $6::text[], $7::jsonb[], $8::jsonb[])
         WITH ORDINALITY AS j(worker, args, queue, priority, max_attempts, scheduled_at, meta, tags, position)
    ORDER BY j.position
    RETURNING id, meta->>'workflow_id', meta->>'name', state, false)sql",
                          8,
                          {TEXTARRAYOID, JSONBARRAYOID, TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID,
                           TEXTARRAYOID, JSONBARRAYOID, JSONBARRAYOID}};

// An inserted job (insert_new_jobs's row): its id, workflow id and step name.
struct InsertedJob {
    int64 id;
    Datum workflow_id, name;
};

int CompareInsertedJobs(const void *a, const void *b) {
    auto *x = static_cast<const InsertedJob *>(a), *y = static_cast<const InsertedJob *>(b);
    int order = CompareTexts(x->workflow_id, y->workflow_id);
    return order != 0 ? order : CompareTexts(x->name, y->name);
}

// An edge to write: the waiting job and the dep (texts).
struct NewEdge {
    int64 job_id;
    Datum workflow_id, dep_workflow_id, dep_name;
};

int CompareNewEdges(const void *a, const void *b) {
    auto *x = static_cast<const NewEdge *>(a), *y = static_cast<const NewEdge *>(b);
    if (x->job_id != y->job_id) return x->job_id < y->job_id ? -1 : 1;
    int order = CompareTexts(x->dep_workflow_id, y->dep_workflow_id);
    return order != 0 ? order : CompareTexts(x->dep_name, y->dep_name);
}

// Writes the waits and edges of the jobs insert_new_jobs inserted (`rows`, `count` of them: id,
// workflow_id, name, ...): an edge from each distinct dep of each job (`deps`, JobDep *) and a wait
// counting them, as the insert trigger would have for deps still pending. Straight into the tables
// (DirectInsert), not by INSERT statements: for a small workflow, those statements' executor setup
// (a DISTINCT and a GROUP BY over the jobs' deps) cost more than their rows (bench/RESULTS.md,
// session 17). Jobs are matched to their deps by workflow id and step name, unique in a spec.
void WriteWaitsAndEdges(Oid schema, List *deps, SPITupleTable *rows, uint64 count) {
    if (deps == NIL) return;
    auto *jobs = static_cast<InsertedJob *>(palloc(sizeof(InsertedJob) * Max(count, 1)));
    for (uint64 r = 0; r < count; r++) {
        bool id_null = false, workflow_null = false, name_null = false;
        jobs[r].id = DatumGetInt64(SPI_getbinval(rows->vals[r], rows->tupdesc, 1, &id_null));
        jobs[r].workflow_id = SPI_getbinval(rows->vals[r], rows->tupdesc, 2, &workflow_null);
        jobs[r].name = SPI_getbinval(rows->vals[r], rows->tupdesc, 3, &name_null);
        if (id_null || workflow_null || name_null)
            elog(ERROR, "an inserted workflow job has no id, workflow or name");
    }
    qsort(jobs, count, sizeof(InsertedJob), CompareInsertedJobs);

    auto *edges = static_cast<NewEdge *>(palloc(sizeof(NewEdge) * list_length(deps)));
    int edge_count = 0;
    ListCell *cell;
    foreach (cell, deps) {
        auto *dep = static_cast<JobDep *>(lfirst(cell));
        InsertedJob key{0, dep->workflow_id, dep->name};
        auto *job =
            static_cast<InsertedJob *>(bsearch(&key, jobs, count, sizeof(InsertedJob), CompareInsertedJobs));
        if (job == nullptr) elog(ERROR, "a workflow job with deps was not inserted");
        edges[edge_count++] = NewEdge{job->id, dep->workflow_id, dep->dep_workflow_id, dep->dep_name};
    }
    qsort(edges, edge_count, sizeof(NewEdge), CompareNewEdges);

    WaitWriter writer;
    OpenWaitWriter(&writer, schema);
    for (int e = 0; e < edge_count;) {
        int remaining = 0, end = e;
        for (; end < edge_count && edges[end].job_id == edges[e].job_id; end++) {
            if (end > e && CompareNewEdges(&edges[end - 1], &edges[end]) == 0)
                continue;  // a dep listed twice
            WriteEdge(&writer, Int64GetDatum(edges[end].job_id), edges[end].dep_workflow_id,
                      edges[end].dep_name);
            remaining++;
        }
        WriteWait(&writer, Int64GetDatum(edges[e].job_id), edges[e].workflow_id, remaining);
        e = end;
    }
    CloseWaitWriter(&writer);
}

// Whether every dep of the spec (and so every dep a sub-workflow inherits) lies inside the spec.
bool AllDepsInside(const core::WorkflowSpec &spec) {
    for (size_t w = 0; w < spec.workflows.size(); w++)
        for (size_t s = 0; s < spec.workflows[w].steps.size(); s++)
            for (const core::ResolvedDep &dep : spec.DepsOf((int)w, (int)s))
                if (dep.kind == core::ResolvedDep::External) return false;
    return true;
}

Statement workflow_options{R"sql(
    SELECT name, parent_id, sub_name, ignore_cancelled, ignore_discarded, ignore_deleted, is_unique
    FROM @extschema@.oban_workflow_rows WHERE id = $1)sql",
                           1,
                           {TEXTOID}};

// The names a bare dep of an appended job may use: the workflow's steps and sub-workflows.
Statement existing_steps{R"sql(
    SELECT name FROM @extschema@.oban_workflow_steps WHERE workflow_id = $1 AND name IS NOT NULL
    UNION
    SELECT sub_name FROM @extschema@.oban_workflow_rows WHERE parent_id = $1 AND sub_name IS NOT NULL)sql",
                         1,
                         {TEXTOID}};

int SqlState(core::SpecError error) {
    switch (error) {
        case core::SpecError::Duplicate:
            return ERRCODE_DUPLICATE_OBJECT;
        case core::SpecError::UnknownDep:
            return ERRCODE_UNDEFINED_OBJECT;
        case core::SpecError::Cycle:
            return ERRCODE_INVALID_RECURSION;
        case core::SpecError::TooDeep:
            return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
        default:
            return ERRCODE_INVALID_PARAMETER_VALUE;
    }
}

char *TextCopy(const RawField &field) {
    return field.kind == JsonKind::String ? pnstrdup(field.text.data(), field.text.size()) : nullptr;
}

// One row per job of the spec, none persisted: id and state NULL, conflicted true.
void ReturnConflicted(const core::WorkflowSpec &spec, char **ids, ReturnSetInfo *result) {
    for (size_t w = 0; w < spec.workflows.size(); w++) {
        for (const core::RawStep &step : spec.workflows[w].steps) {
            if (step.sub_workflow >= 0) continue;
            Datum values[5] = {
                (Datum)0, CStringGetTextDatum(ids[w]),
                PointerGetDatum(cstring_to_text_with_len(step.name.text.data(), (int)step.name.text.size())),
                (Datum)0, BoolGetDatum(true)};
            bool nulls[5] = {true, false, false, true, false};
            tuplestore_putvalues(result->setResult, result->setDesc, values, nulls);
        }
    }
}

// Gives every workflow of the spec its id (`top_id`, the spec's own, or a new UUID), inserts all
// the jobs in one statement, and returns one row per job into the function's result. With
// `claim_name`, the spec is a unique workflow: its name is claimed first, and on a conflict nothing
// is inserted and every job comes back conflicted.
void InsertSpec(Oid schema, const core::WorkflowSpec &spec, const char *top_id, const Options &top,
                bool all_new, bool claim_name, ReturnSetInfo *result) {
    MemoryContext context = CurrentMemoryContext;
    char **ids = static_cast<char **>(palloc(sizeof(char *) * spec.workflows.size()));
    for (size_t w = 0; w < spec.workflows.size(); w++) {
        char *given = TextCopy(spec.workflows[w].workflow_id);
        ids[w] = w == 0 && top_id != nullptr ? pstrdup(top_id) : given != nullptr ? given : NewUuid();
    }
    Built built{initArrayResult(TEXTOID, context, false),
                initArrayResult(JSONBOID, context, false),
                initArrayResult(TEXTOID, context, false),
                initArrayResult(INT4OID, context, false),
                initArrayResult(INT4OID, context, false),
                initArrayResult(TEXTOID, context, false),
                initArrayResult(JSONBOID, context, false),
                initArrayResult(JSONBOID, context, false),
                0,
                NIL};
    BuildJobs(spec, ids, top, &built);

    Datum values[8] = {
        makeArrayResult(built.workers, context),      makeArrayResult(built.args, context),
        makeArrayResult(built.queues, context),       makeArrayResult(built.priorities, context),
        makeArrayResult(built.max_attempts, context), makeArrayResult(built.scheduled, context),
        makeArrayResult(built.metas, context),        makeArrayResult(built.tags, context)};
    BeginSql(schema);
    if (claim_name) {
        if (!ClaimWorkflowName(schema, CStringGetTextDatum(top.name), CStringGetTextDatum(ids[0]))) {
            EndSql();
            ReturnConflicted(spec, ids, result);
            return;
        }
        workflow_names_claimed = true;  // reset at the end of the transaction or on error
    }
    uint64 inserted;
    if (all_new) {
        workflow_deps_prepared = true;  // reset at the end of the statement or on error
        inserted = Execute(&insert_new_jobs, schema, values, nullptr);
        workflow_deps_prepared = false;
        WriteWaitsAndEdges(schema, built.deps, SPI_tuptable, inserted);
    } else {
        inserted = Execute(&insert_jobs, schema, values, nullptr);
    }
    workflow_names_claimed = false;
    for (uint64 i = 0; i < inserted; i++) tuplestore_puttuple(result->setResult, SPI_tuptable->vals[i]);
    EndSql();
}

[[noreturn]] void RaiseSpecError(const core::SpecResult &result) {
    throw oban::Error(SqlState(result.error), "invalid workflow: " + result.message);
}

}  // namespace

}  // namespace oban::pg

using namespace oban::pg;

OBAN_FUNCTION(oban_insert_workflow) {
    RequireArgument(fcinfo, 0, "workflow");
    Jsonb *document = PG_GETARG_JSONB_P(0);
    Oid schema = FunctionSchema(fcinfo);
    InitMaterializedSRF(fcinfo, 0);
    auto *result = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

    oban::MemoryContextResource memory(CurrentMemoryContext);
    oban::core::WorkflowSpec spec(&memory);
    oban::PgCall([&] {
        int top = spec.AddWorkflow(-1, -1);
        ReadWorkflow(&spec, top, RootValue(document));
    });
    oban::core::SpecResult validation = spec.Validate(true);
    if (validation.error != oban::core::SpecError::None) RaiseSpecError(validation);

    const oban::core::RawWorkflow &top = spec.workflows[0];
    oban::PgCall([&] {
        Options options{TextCopy(top.name),
                        nullptr,
                        nullptr,
                        IsTrue(top.unique),
                        IsTrue(top.ignore_cancelled),
                        IsTrue(top.ignore_discarded),
                        IsTrue(top.ignore_deleted)};
        InsertSpec(schema, spec, nullptr, options, AllDepsInside(spec), options.unique, result);
    });
    return (Datum)0;
}

OBAN_FUNCTION(oban_append_workflow) {
    RequireArgument(fcinfo, 0, "workflow_id");
    RequireArgument(fcinfo, 1, "jobs");
    RequireArgument(fcinfo, 2, "check_deps");
    Datum workflow_id = PG_GETARG_DATUM(0);
    Jsonb *jobs = PG_GETARG_JSONB_P(1);
    bool check_deps = PG_GETARG_BOOL(2);
    Oid schema = FunctionSchema(fcinfo);
    InitMaterializedSRF(fcinfo, 0);
    auto *result = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

    // The workflow's options, copied out of SPI before anything C++ is alive.
    char *id = TextDatumGetCString(workflow_id);
    Options options{};
    BeginSql(schema);
    Datum lookup[1] = {workflow_id};
    if (Execute(&workflow_options, schema, lookup, nullptr) == 0)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("workflow \"%s\" does not exist", id),
                        errhint("Insert it with oban_insert_workflow first.")));
    {
        HeapTuple row = SPI_tuptable->vals[0];
        TupleDesc descriptor = SPI_tuptable->tupdesc;
        bool is_null = false;
        MemoryContext spi_context = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
        char *name = SPI_getvalue(row, descriptor, 1);
        char *parent = SPI_getvalue(row, descriptor, 2);
        char *sub_name = SPI_getvalue(row, descriptor, 3);
        options.name = name;
        options.parent_id = parent;
        options.sub_name = sub_name;
        options.ignore_cancelled = DatumGetBool(SPI_getbinval(row, descriptor, 4, &is_null));
        options.ignore_discarded = DatumGetBool(SPI_getbinval(row, descriptor, 5, &is_null));
        options.ignore_deleted = DatumGetBool(SPI_getbinval(row, descriptor, 6, &is_null));
        // Appended jobs carry the workflow's unique flag like its first ones; appending by id
        // always succeeds (the claim trigger lets an existing workflow in).
        options.unique = DatumGetBool(SPI_getbinval(row, descriptor, 7, &is_null));
        MemoryContextSwitchTo(spi_context);
    }
    uint64 known = Execute(&existing_steps, schema, lookup, nullptr);
    char **known_names =
        static_cast<char **>(MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(char *) * Max(known, 1)));
    for (uint64 i = 0; i < known; i++)
        known_names[i] = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt,
                                             SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
    EndSql();

    oban::MemoryContextResource memory(CurrentMemoryContext);
    oban::core::WorkflowSpec spec(&memory);
    oban::PgCall([&] {
        int top = spec.AddWorkflow(-1, -1);
        oban::core::RawWorkflow &workflow = spec.workflows[top];
        workflow.is_object = true;
        workflow.workflow_id = {JsonKind::String, id};
        JsonbValue root = RootValue(jobs);
        workflow.jobs = root.type == jbvBinary && JsonContainerIsArray(root.val.binary.data)
                            ? JsonKind::Array
                            : JsonKind::Object;
        if (workflow.jobs == JsonKind::Array)
            ForEachElement(root.val.binary.data, [&](const JsonbValue &job) { ReadStep(&spec, top, job); });
    });
    for (uint64 i = 0; i < known; i++) spec.AddKnownStep(known_names[i]);
    oban::core::SpecResult validation = spec.Validate(check_deps);
    if (validation.error != oban::core::SpecError::None) RaiseSpecError(validation);

    oban::PgCall([&] { InsertSpec(schema, spec, id, options, false, false, result); });
    return (Datum)0;
}
