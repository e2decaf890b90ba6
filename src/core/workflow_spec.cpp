#include "core/pure.hpp"  // first: proves this file builds without Postgres headers

#include "core/workflow_spec.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

namespace oban::core {

namespace {

std::string Quoted(std::string_view text) {
    return "\"" + std::string(text) + "\"";
}

SpecResult Fail(SpecError error, std::string message) {
    return {error, std::move(message)};
}

bool IsNonEmptyString(const RawField &field) {
    return field.kind == JsonKind::String && !field.text.empty();
}

bool IsAbsent(const RawField &field) {
    return field.kind == JsonKind::Missing || field.kind == JsonKind::Null;
}

bool IsIntegerBetween(const RawField &field, int64_t low, int64_t high) {
    if (field.kind != JsonKind::Number) return false;
    int64_t value = 0;
    auto [end, error] = std::from_chars(field.text.data(), field.text.data() + field.text.size(), value);
    return error == std::errc() && end == field.text.data() + field.text.size() && value >= low &&
           value <= high;
}

bool IsBooleanOrAbsent(const RawField &field) {
    return IsAbsent(field) || field.kind == JsonKind::Boolean;
}

bool IsTrue(const RawField &field) {
    return field.kind == JsonKind::Boolean && field.text == "true";
}

using NamedIndex = std::pair<std::string_view, int>;

// Sorts `entries` by name (then index) and returns the index of the earliest second occurrence of a
// name, or -1 when all names differ: the entry a left-to-right scan would first find repeated.
int EarliestRepeat(Vector<NamedIndex> *entries) {
    std::sort(entries->begin(), entries->end());
    int earliest = -1;
    for (size_t i = 1; i < entries->size(); i++)
        if ((*entries)[i].first == (*entries)[i - 1].first &&
            (earliest < 0 || (*entries)[i].second < earliest))
            earliest = (*entries)[i].second;
    return earliest;
}

std::string StepLabel(const RawStep &step, size_t index) {
    if (IsNonEmptyString(step.name)) return "step " + Quoted(step.name.text);
    return "job " + std::to_string(index + 1);
}

}  // namespace

int WorkflowSpec::AddWorkflow(int parent, int parent_step) {
    workflows.emplace_back(memory_);
    RawWorkflow &added = workflows.back();
    added.parent = parent;
    added.parent_step = parent_step;
    added.depth = parent < 0 ? 0 : workflows[static_cast<size_t>(parent)].depth + 1;
    return static_cast<int>(workflows.size() - 1);
}

SpecResult WorkflowSpec::ValidateShape(int index) const {
    const RawWorkflow &workflow = workflows[static_cast<size_t>(index)];
    const std::string where =
        workflow.parent < 0 ? std::string("workflow")
                            : "sub-workflow " + Quoted(workflows[static_cast<size_t>(workflow.parent)]
                                                           .steps[static_cast<size_t>(workflow.parent_step)]
                                                           .name.text);
    if (!workflow.is_object) return Fail(SpecError::Invalid, where + " must be a JSON object");
    if (workflow.depth > kMaxNesting)
        return Fail(SpecError::TooDeep,
                    where + " is nested more than " + std::to_string(kMaxNesting) + " levels deep");
    if (!IsAbsent(workflow.workflow_id) && !IsNonEmptyString(workflow.workflow_id))
        return Fail(SpecError::Invalid, where + ": \"workflow_id\" must be a non-empty string");
    if (!IsAbsent(workflow.name) && workflow.name.kind != JsonKind::String)
        return Fail(SpecError::Invalid, where + ": \"name\" must be a string");
    if (!IsBooleanOrAbsent(workflow.unique) || !IsBooleanOrAbsent(workflow.ignore_cancelled) ||
        !IsBooleanOrAbsent(workflow.ignore_discarded) || !IsBooleanOrAbsent(workflow.ignore_deleted))
        return Fail(SpecError::Invalid, where + ": \"unique\" and the \"ignore_*\" options must be booleans");
    if (IsTrue(workflow.unique) && workflow.parent >= 0)
        return Fail(SpecError::Invalid, where + ": only a top-level workflow can be \"unique\"");
    if (IsTrue(workflow.unique) && !IsNonEmptyString(workflow.name))
        return Fail(SpecError::Invalid, where + ": a \"unique\" workflow needs a non-empty \"name\"");
    if (workflow.jobs == JsonKind::Missing || workflow.jobs == JsonKind::Null)
        return Fail(SpecError::Invalid, where + " has no \"jobs\"");
    if (workflow.jobs != JsonKind::Array)
        return Fail(SpecError::Invalid, where + ": \"jobs\" must be an array");
    if (workflow.steps.empty()) return Fail(SpecError::Invalid, where + " has no jobs");

    for (size_t i = 0; i < workflow.steps.size(); i++) {
        const RawStep &step = workflow.steps[i];
        const std::string label = StepLabel(step, i);
        if (!step.is_object) return Fail(SpecError::Invalid, label + " must be a JSON object");
        if (step.name.kind == JsonKind::Missing) return Fail(SpecError::Invalid, label + " has no \"name\"");
        if (!IsNonEmptyString(step.name))
            return Fail(SpecError::Invalid, label + ": \"name\" must be a non-empty string");
        if (step.name.text == "*") return Fail(SpecError::Invalid, label + ": \"*\" is not a step name");
        const bool is_sub = step.workflow != JsonKind::Missing;
        if (is_sub && step.workflow != JsonKind::Object)
            return Fail(SpecError::Invalid, label + ": \"workflow\" must be a JSON object");
        if (is_sub && step.worker.kind != JsonKind::Missing)
            return Fail(SpecError::Invalid, label + ": a sub-workflow entry has no \"worker\"");
        if (!is_sub && step.worker.kind == JsonKind::Missing)
            return Fail(SpecError::Invalid, label + " has no \"worker\"");
        if (!is_sub && !IsNonEmptyString(step.worker))
            return Fail(SpecError::Invalid, label + ": \"worker\" must be a non-empty string");
        if (step.args != JsonKind::Missing && step.args != JsonKind::Object)
            return Fail(SpecError::Invalid, label + ": \"args\" must be a JSON object");
        if (step.meta != JsonKind::Missing && step.meta != JsonKind::Object)
            return Fail(SpecError::Invalid, label + ": \"meta\" must be a JSON object");
        if (step.queue.kind != JsonKind::Missing && !IsNonEmptyString(step.queue))
            return Fail(SpecError::Invalid, label + ": \"queue\" must be a non-empty string");
        if (step.priority.kind != JsonKind::Missing && !IsIntegerBetween(step.priority, 0, 32767))
            return Fail(SpecError::Invalid, label + ": \"priority\" must be an integer between 0 and 32767");
        if (step.max_attempts.kind != JsonKind::Missing && !IsIntegerBetween(step.max_attempts, 1, 32767))
            return Fail(SpecError::Invalid,
                        label + ": \"max_attempts\" must be an integer between 1 and 32767");
        if (!IsAbsent(step.scheduled_at) && step.scheduled_at.kind != JsonKind::String)
            return Fail(SpecError::Invalid, label + ": \"scheduled_at\" must be a timestamp string or null");
        if (step.tags != JsonKind::Missing && (step.tags != JsonKind::Array || !step.tags_all_strings))
            return Fail(SpecError::Invalid, label + ": \"tags\" must be an array of strings");
        if (step.deps != JsonKind::Missing && step.deps != JsonKind::String && step.deps != JsonKind::Array)
            return Fail(SpecError::Invalid, label + ": \"deps\" must be a step name or an array of deps");
        for (const RawDep &dep : step.dep_list) {
            if (dep.kind == JsonKind::String) {
                if (dep.name.text.empty())
                    return Fail(SpecError::Invalid, label + ": a dep must not be empty");
                continue;
            }
            if (dep.kind != JsonKind::Array || dep.arity != 2 || !IsNonEmptyString(dep.workflow_id) ||
                !IsNonEmptyString(dep.name))
                return Fail(SpecError::Invalid,
                            label + ": a dep must be a step name or a [workflow_id, name] pair of strings");
        }
    }
    return {};
}

SpecResult WorkflowSpec::Resolve(int index, bool check_deps) {
    RawWorkflow &workflow = workflows[static_cast<size_t>(index)];
    Vector<NamedIndex> names{Allocator<NamedIndex>(memory_)};
    names.reserve(workflow.steps.size());
    for (size_t i = 0; i < workflow.steps.size(); i++)
        names.emplace_back(workflow.steps[i].name.text, static_cast<int>(i));
    int repeated = EarliestRepeat(&names);
    if (repeated >= 0)
        return Fail(SpecError::Duplicate,
                    "step " + Quoted(workflow.steps[static_cast<size_t>(repeated)].name.text) +
                        " appears more than once");
    if (index == 0) {
        for (const RawStep &step : workflow.steps)
            if (IsKnownStep(step.name.text))
                return Fail(SpecError::Duplicate, "step " + Quoted(step.name.text) +
                                                      " already exists in workflow " +
                                                      Quoted(workflow.workflow_id.text));
    }
    auto find = [&](std::string_view name) {
        auto found = std::lower_bound(names.begin(), names.end(), NamedIndex{name, -1});
        return found != names.end() && found->first == name ? found->second : -1;
    };

    auto &per_step = resolved_[static_cast<size_t>(index)];
    for (size_t i = 0; i < workflow.steps.size(); i++) {
        const RawStep &step = workflow.steps[i];
        per_step.emplace_back(Allocator<ResolvedDep>(memory_));
        Vector<ResolvedDep> &deps = per_step.back();
        for (const RawDep &dep : step.dep_list) {
            ResolvedDep resolved;
            const bool bare = dep.kind == JsonKind::String;
            const bool own_pair = !bare && IsNonEmptyString(workflow.workflow_id) &&
                                  dep.workflow_id.text == workflow.workflow_id.text && dep.name.text != "*";
            if (bare && dep.name.text == "*")
                return Fail(SpecError::Invalid, "step " + Quoted(step.name.text) +
                                                    ": \"*\" is not a step name (a whole workflow is "
                                                    "[workflow_id, \"*\"])");
            if (!bare && dep.name.text == "*" && EnclosesSelf(index, dep.workflow_id.text))
                return Fail(SpecError::Cycle, "step " + Quoted(step.name.text) + " waits for workflow " +
                                                  Quoted(dep.workflow_id.text) + ", which contains it");
            if (!bare && !own_pair) {
                resolved.kind = ResolvedDep::External;
                resolved.external_workflow_id = dep.workflow_id.text;
                resolved.name = dep.name.text;
                deps.push_back(resolved);
                continue;
            }
            if (dep.name.text == step.name.text)
                return Fail(SpecError::Cycle, "step " + Quoted(step.name.text) + " depends on itself");
            const int found = find(dep.name.text);
            if (found < 0) {
                if (check_deps && !IsKnownStep(dep.name.text))
                    return Fail(SpecError::UnknownDep, "step " + Quoted(step.name.text) +
                                                           " depends on unknown step " +
                                                           Quoted(dep.name.text));
                resolved.kind = ResolvedDep::External;  // a step of this workflow outside the spec
                resolved.name = dep.name.text;
                deps.push_back(resolved);
                continue;
            }
            const RawStep &target = workflow.steps[static_cast<size_t>(found)];
            if (target.sub_workflow >= 0) {
                resolved.kind = ResolvedDep::SubWorkflow;
                resolved.workflow = target.sub_workflow;
            } else {
                resolved.kind = ResolvedDep::Step;
                resolved.workflow = index;
                resolved.step = found;
            }
            deps.push_back(resolved);
        }
    }
    return {};
}

bool WorkflowSpec::IsKnownStep(std::string_view name) const {
    return std::binary_search(known_steps_.begin(), known_steps_.end(), name);
}

// Whether `workflow_id` is the given id of workflow `index` or of one of its enclosing workflows.
bool WorkflowSpec::EnclosesSelf(int index, std::string_view workflow_id) const {
    for (int w = index; w >= 0; w = workflows[static_cast<size_t>(w)].parent) {
        const RawField &id = workflows[static_cast<size_t>(w)].workflow_id;
        if (IsNonEmptyString(id) && id.text == workflow_id) return true;
    }
    return false;
}

// Kahn's algorithm over the steps of one workflow. The steps it leaves with unmet deps lie on a
// cycle or downstream of one; peeling off, again and again, those no leftover step depends on
// leaves only steps on a cycle, one of which the error names.
SpecResult WorkflowSpec::CheckCycles(int index) const {
    const RawWorkflow &workflow = workflows[static_cast<size_t>(index)];
    const auto &per_step = resolved_[static_cast<size_t>(index)];
    const size_t count = workflow.steps.size();
    Vector<int> unmet(count, 0, Allocator<int>(memory_));
    Vector<Vector<int>> dependents{Allocator<Vector<int>>(memory_)};
    for (size_t i = 0; i < count; i++) dependents.emplace_back(Allocator<int>(memory_));

    auto step_of = [&](const ResolvedDep &dep) -> int {
        if (dep.kind == ResolvedDep::Step && dep.workflow == index) return dep.step;
        if (dep.kind == ResolvedDep::SubWorkflow)
            return workflows[static_cast<size_t>(dep.workflow)].parent == index
                       ? workflows[static_cast<size_t>(dep.workflow)].parent_step
                       : -1;
        return -1;
    };
    for (size_t i = 0; i < count; i++) {
        for (const ResolvedDep &dep : per_step[i]) {
            int from = step_of(dep);
            if (from < 0) continue;
            unmet[i]++;
            dependents[static_cast<size_t>(from)].push_back(static_cast<int>(i));
        }
    }
    Vector<int> ready{Allocator<int>(memory_)};
    for (size_t i = 0; i < count; i++)
        if (unmet[i] == 0) ready.push_back(static_cast<int>(i));
    size_t done = 0;
    while (!ready.empty()) {
        int step = ready.back();
        ready.pop_back();
        done++;
        for (int next : dependents[static_cast<size_t>(step)])
            if (--unmet[static_cast<size_t>(next)] == 0) ready.push_back(next);
    }
    if (done == count) return {};
    Vector<int> leftover_dependents(count, 0, Allocator<int>(memory_));
    for (size_t i = 0; i < count; i++)
        if (unmet[i] > 0)
            for (int next : dependents[i])
                if (unmet[static_cast<size_t>(next)] > 0) leftover_dependents[i]++;
    // A worklist, so each step is peeled once: O(steps + deps) even for a long chain below a cycle.
    Vector<bool> peeled(count, false, Allocator<bool>(memory_));
    Vector<int> peelable{Allocator<int>(memory_)};
    for (size_t i = 0; i < count; i++)
        if (unmet[i] > 0 && leftover_dependents[i] == 0) peelable.push_back(static_cast<int>(i));
    while (!peelable.empty()) {
        const auto i = static_cast<size_t>(peelable.back());
        peelable.pop_back();
        peeled[i] = true;
        for (const ResolvedDep &dep : per_step[i]) {
            int from = step_of(dep);
            if (from >= 0 && unmet[static_cast<size_t>(from)] > 0 &&
                --leftover_dependents[static_cast<size_t>(from)] == 0)
                peelable.push_back(from);
        }
    }
    for (size_t i = 0; i < count; i++)
        if (unmet[i] > 0 && !peeled[i])
            return Fail(SpecError::Cycle,
                        "step " + Quoted(workflow.steps[i].name.text) + " is part of a dependency cycle");
    return {};
}

SpecResult WorkflowSpec::Validate(bool check_deps) {
    for (size_t w = 0; w < workflows.size(); w++) {
        SpecResult result = ValidateShape(static_cast<int>(w));
        if (result.error != SpecError::None) return result;
    }
    Vector<NamedIndex> ids{Allocator<NamedIndex>(memory_)};
    for (size_t w = 0; w < workflows.size(); w++)
        if (IsNonEmptyString(workflows[w].workflow_id))
            ids.emplace_back(workflows[w].workflow_id.text, static_cast<int>(w));
    int repeated = EarliestRepeat(&ids);
    if (repeated >= 0)
        return Fail(SpecError::Duplicate,
                    "workflow_id " + Quoted(workflows[static_cast<size_t>(repeated)].workflow_id.text) +
                        " is given to two workflows of the spec");
    std::sort(known_steps_.begin(), known_steps_.end());
    resolved_.clear();
    for (size_t w = 0; w < workflows.size(); w++)
        resolved_.emplace_back(Allocator<Vector<ResolvedDep>>(memory_));
    for (size_t w = 0; w < workflows.size(); w++) {
        SpecResult result = Resolve(static_cast<int>(w), check_deps);
        if (result.error != SpecError::None) return result;
    }
    for (size_t w = 0; w < workflows.size(); w++) {
        SpecResult result = CheckCycles(static_cast<int>(w));
        if (result.error != SpecError::None) return result;
    }
    return {};
}

const Vector<ResolvedDep> &WorkflowSpec::DepsOf(int workflow, int step) const {
    return resolved_[static_cast<size_t>(workflow)][static_cast<size_t>(step)];
}

}  // namespace oban::core
