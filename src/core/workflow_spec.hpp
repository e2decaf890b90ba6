// Validation of the workflow specs given to oban_insert_workflow and oban_append_workflow: types,
// names, deps, cycles and nesting, over a dependency graph held in Boost.Container. The extension
// reads the JSON into the raw structures below (field kinds and texts); this code decides, without
// Postgres, whether the spec is valid, and resolves every dep to what it waits for.
#pragma once

#include "core/ack.hpp"  // JsonKind, RawField
#include "core/memory.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace oban::core {

// A dep as written: a bare step name, or a [workflow_id, name] pair (name may be "*").
struct RawDep {
    JsonKind kind = JsonKind::Missing;  // String (bare name) or Array (pair)
    int arity = 0;                      // elements of an array dep
    RawField workflow_id, name;         // of a pair; a bare name is in `name`
};

struct RawStep {
    bool is_object = false;
    RawField name, worker, queue, priority, max_attempts, scheduled_at;
    JsonKind args = JsonKind::Missing, meta = JsonKind::Missing, tags = JsonKind::Missing;
    bool tags_all_strings = true;
    JsonKind deps = JsonKind::Missing;  // String, Array or absent
    Vector<RawDep> dep_list;
    JsonKind workflow = JsonKind::Missing;  // Object for a sub-workflow entry
    int sub_workflow = -1;                  // index of that sub-workflow in WorkflowSpec::workflows
    const void *source = nullptr;           // the caller's handle on the step's JSON (opaque here)

    explicit RawStep(MemoryResource *memory) : dep_list(Allocator<RawDep>(memory)) {}
};

struct RawWorkflow {
    bool is_object = false;
    RawField workflow_id, name, unique, ignore_cancelled, ignore_discarded, ignore_deleted;
    JsonKind jobs = JsonKind::Missing;
    Vector<RawStep> steps;
    int parent = -1;       // index of the enclosing workflow, -1 for the top
    int parent_step = -1;  // index of the entry in the parent that holds it
    int depth = 0;

    explicit RawWorkflow(MemoryResource *memory) : steps(Allocator<RawStep>(memory)) {}
};

enum class SpecError {
    None,
    Invalid,     // wrong shape or type, missing field           → 22023
    Duplicate,   // two steps with one name                      → 42710
    UnknownDep,  // a dep naming no step of the workflow         → 42704
    Cycle,       // a step depending on itself, directly or not  → 42P19
    TooDeep,     // sub-workflows nested beyond kMaxNesting      → 54000
};

inline constexpr int kMaxNesting = 8;

// A resolved dep: a step of a workflow of the spec, a whole sub-workflow of the spec, or a target
// outside the spec ([workflow_id, name], with name "*" for a whole workflow).
struct ResolvedDep {
    enum Kind { Step, SubWorkflow, External } kind = Step;
    int workflow = -1;                            // Step / SubWorkflow: index in the spec's workflows
    int step = -1;                                // Step: index of the step
    std::string_view external_workflow_id, name;  // External
};

struct SpecResult {
    SpecError error = SpecError::None;
    std::string message;  // names the offending step
};

class WorkflowSpec {
public:
    explicit WorkflowSpec(MemoryResource *memory)
        : memory_(memory), workflows(Allocator<RawWorkflow>(memory)) {}

    // Adds a workflow (the top one first) and returns its index.
    int AddWorkflow(int parent, int parent_step);

    // A step already in the database of the workflow being appended to: bare deps may name it, and
    // no step of the spec's top workflow may take its name.
    void AddKnownStep(std::string_view name) { known_steps_.push_back(name); }

    // Checks everything. With `check_deps` false, a bare dep naming no step is kept as a dep on a
    // step of the same workflow that may come later.
    SpecResult Validate(bool check_deps);

    // After a successful Validate: what each dep of workflows[w].steps[s] waits for.
    const Vector<ResolvedDep> &DepsOf(int workflow, int step) const;

    MemoryResource *memory() const { return memory_; }

private:
    SpecResult ValidateShape(int workflow) const;
    SpecResult Resolve(int workflow, bool check_deps);
    SpecResult CheckCycles(int workflow) const;
    bool EnclosesSelf(int workflow, std::string_view workflow_id) const;

    bool IsKnownStep(std::string_view name) const;

    MemoryResource *memory_;

public:
    Vector<RawWorkflow> workflows;

private:
    // Every lookup structure is a vector sorted once, so validation stays O(n log n) in the number
    // of steps and workflows whatever the spec (a flat_map filled one name at a time is O(n^2)).
    Vector<std::string_view> known_steps_{Allocator<std::string_view>(memory_)};  // sorted by Validate
    // resolved_[w][s]: the deps of step s of workflow w.
    Vector<Vector<Vector<ResolvedDep>>> resolved_{Allocator<Vector<Vector<ResolvedDep>>>(memory_)};
};

}  // namespace oban::core
