#include "core/workflow_spec.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

using oban::core::HeapResource;
using oban::core::JsonKind;
using oban::core::kMaxNesting;
using oban::core::RawDep;
using oban::core::RawField;
using oban::core::RawStep;
using oban::core::RawWorkflow;
using oban::core::ResolvedDep;
using oban::core::SpecError;
using oban::core::SpecResult;
using oban::core::WorkflowSpec;

namespace {

RawField String(std::string_view text) {
    return {JsonKind::String, text};
}
RawField Number(std::string_view text) {
    return {JsonKind::Number, text};
}
RawField Boolean(bool value) {
    return {JsonKind::Boolean, value ? "true" : "false"};
}
RawField Kind(JsonKind kind) {
    return {kind, {}};
}

// A dep as src/pg/workflow_insert.cpp reads it: a bare JSON string, or an array whose first two
// elements are the workflow id and the name (non-strings keep their kind and no text).
RawDep Bare(std::string_view name) {
    RawDep dep;
    dep.kind = JsonKind::String;
    dep.name = String(name);
    return dep;
}
RawDep Pair(std::string_view workflow_id, std::string_view name) {
    RawDep dep;
    dep.kind = JsonKind::Array;
    dep.arity = 2;
    dep.workflow_id = String(workflow_id);
    dep.name = String(name);
    return dep;
}

std::string ErrorName(SpecError error) {
    switch (error) {
        case SpecError::None:
            return "None";
        case SpecError::Invalid:
            return "Invalid";
        case SpecError::Duplicate:
            return "Duplicate";
        case SpecError::UnknownDep:
            return "UnknownDep";
        case SpecError::Cycle:
            return "Cycle";
        case SpecError::TooDeep:
            return "TooDeep";
    }
    return "?";
}

// Builds RawWorkflow/RawStep/RawDep the way ReadWorkflow/ReadStep fill them from JSON. Steps and
// workflows are addressed by index, since adding either may move the others.
class WorkflowSpecTest : public ::testing::Test {
protected:
    // The top workflow: an object with a "jobs" array.
    int Top() {
        int top = spec_.AddWorkflow(-1, -1);
        Flow(top).is_object = true;
        Flow(top).jobs = JsonKind::Array;
        return top;
    }

    RawWorkflow &Flow(int workflow) { return spec_.workflows[static_cast<size_t>(workflow)]; }
    RawStep &StepAt(int workflow, int step) { return Flow(workflow).steps[static_cast<size_t>(step)]; }

    // A step object with a name and a worker.
    int Job(int workflow, std::string_view name, std::string_view worker = "MyApp.Worker") {
        Flow(workflow).steps.emplace_back(spec_.memory());
        int index = static_cast<int>(Flow(workflow).steps.size() - 1);
        RawStep &step = StepAt(workflow, index);
        step.is_object = true;
        step.name = String(name);
        step.worker = String(worker);
        return index;
    }

    // "deps": [...] with the given deps.
    void Deps(int workflow, int step, std::initializer_list<RawDep> deps) {
        RawStep &raw = StepAt(workflow, step);
        raw.deps = JsonKind::Array;
        for (const RawDep &dep : deps) raw.dep_list.push_back(dep);
    }

    // A sub-workflow entry {"name": name, "workflow": {"jobs": []}}; returns the sub-workflow's index.
    int Sub(int workflow, std::string_view name) {
        Flow(workflow).steps.emplace_back(spec_.memory());
        int index = static_cast<int>(Flow(workflow).steps.size() - 1);
        StepAt(workflow, index).is_object = true;
        StepAt(workflow, index).name = String(name);
        StepAt(workflow, index).workflow = JsonKind::Object;
        int sub = spec_.AddWorkflow(workflow, index);
        StepAt(workflow, index).sub_workflow = sub;
        Flow(sub).is_object = true;
        Flow(sub).jobs = JsonKind::Array;
        return sub;
    }

    std::string_view Keep(std::string text) { return kept_.emplace_back(std::move(text)); }

    // Validates and expects `error` with a message containing `names` (e.g. the offending step).
    void ExpectError(SpecError error, std::string_view names, bool check_deps = true) {
        SpecResult result = spec_.Validate(check_deps);
        EXPECT_EQ(ErrorName(result.error), ErrorName(error)) << result.message;
        EXPECT_NE(result.message.find(names), std::string::npos)
            << "message \"" << result.message << "\" does not name " << names;
    }
    void ExpectValid(bool check_deps = true) {
        SpecResult result = spec_.Validate(check_deps);
        ASSERT_EQ(ErrorName(result.error), "None") << result.message;
        EXPECT_TRUE(result.message.empty());
    }

    void ExpectStepDep(const ResolvedDep &dep, int workflow, int step) {
        EXPECT_EQ(dep.kind, ResolvedDep::Step);
        EXPECT_EQ(dep.workflow, workflow);
        EXPECT_EQ(dep.step, step);
    }

    HeapResource heap_;
    WorkflowSpec spec_{&heap_};
    std::deque<std::string> kept_;
};

// --- valid shapes ---------------------------------------------------------------------------------

TEST_F(WorkflowSpecTest, ChainResolvesEachDepToTheStepBefore) {
    int top = Top();
    int a = Job(top, "a");
    int b = Job(top, "b");
    int c = Job(top, "c");
    Deps(top, b, {Bare("a")});
    Deps(top, c, {Bare("b")});
    ExpectValid();
    EXPECT_TRUE(spec_.DepsOf(top, a).empty());
    ASSERT_EQ(spec_.DepsOf(top, b).size(), 1u);
    ExpectStepDep(spec_.DepsOf(top, b)[0], top, a);
    ASSERT_EQ(spec_.DepsOf(top, c).size(), 1u);
    ExpectStepDep(spec_.DepsOf(top, c)[0], top, b);
}

TEST_F(WorkflowSpecTest, DiamondAndFanInAreValid) {
    int top = Top();
    int root = Job(top, "root");
    int left = Job(top, "left");
    int right = Job(top, "right");
    int join = Job(top, "join");
    int extra = Job(top, "extra");
    int sink = Job(top, "sink");
    Deps(top, left, {Bare("root")});
    Deps(top, right, {Bare("root")});
    Deps(top, join, {Bare("left"), Bare("right")});
    Deps(top, sink, {Bare("join"), Bare("extra"), Bare("root")});
    ExpectValid();
    ASSERT_EQ(spec_.DepsOf(top, join).size(), 2u);
    ExpectStepDep(spec_.DepsOf(top, join)[0], top, left);
    ExpectStepDep(spec_.DepsOf(top, join)[1], top, right);
    ASSERT_EQ(spec_.DepsOf(top, sink).size(), 3u);
    ExpectStepDep(spec_.DepsOf(top, sink)[0], top, join);
    ExpectStepDep(spec_.DepsOf(top, sink)[1], top, extra);
    ExpectStepDep(spec_.DepsOf(top, sink)[2], top, root);
}

TEST_F(WorkflowSpecTest, DepsMayPointForwardInTheJobList) {
    int top = Top();
    int first = Job(top, "first");
    int second = Job(top, "second");
    Deps(top, first, {Bare("second")});
    ExpectValid();
    ASSERT_EQ(spec_.DepsOf(top, first).size(), 1u);
    ExpectStepDep(spec_.DepsOf(top, first)[0], top, second);
}

TEST_F(WorkflowSpecTest, SingleStringDepIsAccepted) {
    int top = Top();
    int a = Job(top, "a");
    int b = Job(top, "b");
    StepAt(top, b).deps = JsonKind::String;  // "deps": "a"
    StepAt(top, b).dep_list.push_back(Bare("a"));
    ExpectValid();
    ASSERT_EQ(spec_.DepsOf(top, b).size(), 1u);
    ExpectStepDep(spec_.DepsOf(top, b)[0], top, a);
}

TEST_F(WorkflowSpecTest, AllOptionalFieldsOfTheRightKindsAreAccepted) {
    int top = Top();
    Flow(top).workflow_id = String("wf-1");
    Flow(top).name = String("nightly");
    Flow(top).unique = Boolean(true);
    Flow(top).ignore_cancelled = Boolean(true);
    Flow(top).ignore_discarded = Boolean(false);
    Flow(top).ignore_deleted = Kind(JsonKind::Null);
    int a = Job(top, "a");
    RawStep &step = StepAt(top, a);
    step.queue = String("default");
    step.priority = Number("0");
    step.max_attempts = Number("32767");
    step.scheduled_at = String("2030-01-01T00:00:00Z");
    step.args = JsonKind::Object;
    step.meta = JsonKind::Object;
    step.tags = JsonKind::Array;
    int b = Job(top, "b");
    StepAt(top, b).priority = Number("32767");
    StepAt(top, b).max_attempts = Number("1");
    StepAt(top, b).scheduled_at = Kind(JsonKind::Null);
    StepAt(top, b).deps = JsonKind::Array;  // "deps": []
    ExpectValid();
    EXPECT_TRUE(spec_.DepsOf(top, b).empty());
}

// --- workflow shape -------------------------------------------------------------------------------

TEST_F(WorkflowSpecTest, WorkflowNotAnObject) {
    spec_.AddWorkflow(-1, -1);  // e.g. a JSON array or scalar: is_object stays false
    ExpectError(SpecError::Invalid, "workflow must be a JSON object");
}

TEST_F(WorkflowSpecTest, NoJobs) {
    int top = Top();
    Flow(top).jobs = JsonKind::Missing;
    ExpectError(SpecError::Invalid, "workflow has no \"jobs\"");
    Flow(top).jobs = JsonKind::Null;
    ExpectError(SpecError::Invalid, "workflow has no \"jobs\"");
}

TEST_F(WorkflowSpecTest, JobsNotAnArray) {
    int top = Top();
    for (JsonKind kind : {JsonKind::Object, JsonKind::String, JsonKind::Number, JsonKind::Boolean}) {
        Flow(top).jobs = kind;
        ExpectError(SpecError::Invalid, "\"jobs\" must be an array");
    }
}

TEST_F(WorkflowSpecTest, EmptyJobs) {
    Top();
    ExpectError(SpecError::Invalid, "workflow has no jobs");
}

TEST_F(WorkflowSpecTest, WorkflowIdAndNameKinds) {
    int top = Top();
    Job(top, "a");
    Flow(top).workflow_id = String("");
    ExpectError(SpecError::Invalid, "\"workflow_id\" must be a non-empty string");
    Flow(top).workflow_id = Number("7");
    ExpectError(SpecError::Invalid, "\"workflow_id\" must be a non-empty string");
    Flow(top).workflow_id = Kind(JsonKind::Null);
    Flow(top).name = Number("7");
    ExpectError(SpecError::Invalid, "\"name\" must be a string");
    Flow(top).name = String("");  // an empty name is fine unless the workflow is unique
    ExpectValid();
}

TEST_F(WorkflowSpecTest, OptionsMustBeBooleans) {
    int top = Top();
    Job(top, "a");
    RawField RawWorkflow::*options[] = {&RawWorkflow::unique, &RawWorkflow::ignore_cancelled,
                                        &RawWorkflow::ignore_discarded, &RawWorkflow::ignore_deleted};
    for (RawField RawWorkflow::*option : options) {
        for (RawField bad : {String("true"), Number("1"), Kind(JsonKind::Object), Kind(JsonKind::Array)}) {
            Flow(top).*option = bad;
            ExpectError(SpecError::Invalid, "options must be booleans");
        }
        Flow(top).*option = Boolean(false);
        ExpectValid();
    }
}

// --- step shape -----------------------------------------------------------------------------------

TEST_F(WorkflowSpecTest, StepNotAnObject) {
    int top = Top();
    Job(top, "a");
    Flow(top).steps.emplace_back(spec_.memory());  // e.g. a string in "jobs"
    ExpectError(SpecError::Invalid, "job 2 must be a JSON object");
}

TEST_F(WorkflowSpecTest, MissingOrEmptyName) {
    int top = Top();
    Job(top, "a");
    int b = Job(top, "b");
    StepAt(top, b).name = RawField{};
    ExpectError(SpecError::Invalid, "job 2 has no \"name\"");
    for (RawField bad : {String(""), Number("3"), Kind(JsonKind::Null), Kind(JsonKind::Array)}) {
        StepAt(top, b).name = bad;
        ExpectError(SpecError::Invalid, "job 2: \"name\" must be a non-empty string");
    }
}

TEST_F(WorkflowSpecTest, StarIsNotAStepName) {
    int top = Top();
    Job(top, "*");
    ExpectError(SpecError::Invalid, "\"*\" is not a step name");
}

TEST_F(WorkflowSpecTest, MissingWorker) {
    int top = Top();
    int a = Job(top, "a");
    StepAt(top, a).worker = RawField{};
    ExpectError(SpecError::Invalid, "step \"a\" has no \"worker\"");
}

TEST_F(WorkflowSpecTest, WorkerMustBeANonEmptyString) {
    int top = Top();
    int a = Job(top, "a");
    for (RawField bad : {String(""), Number("1"), Kind(JsonKind::Null), Kind(JsonKind::Object)}) {
        StepAt(top, a).worker = bad;
        ExpectError(SpecError::Invalid, "step \"a\": \"worker\" must be a non-empty string");
    }
}

TEST_F(WorkflowSpecTest, QueueMustBeANonEmptyString) {
    int top = Top();
    int a = Job(top, "a");
    for (RawField bad : {String(""), Number("1"), Kind(JsonKind::Null), Boolean(true)}) {
        StepAt(top, a).queue = bad;
        ExpectError(SpecError::Invalid, "step \"a\": \"queue\" must be a non-empty string");
    }
}

TEST_F(WorkflowSpecTest, PriorityMustBeAnIntegerInRange) {
    int top = Top();
    int a = Job(top, "a");
    for (RawField bad : {Number("-1"), Number("32768"), Number("1.5"), Number("99999999999999999999"),
                         String("1"), Kind(JsonKind::Null), Boolean(true)}) {
        StepAt(top, a).priority = bad;
        ExpectError(SpecError::Invalid, "step \"a\": \"priority\" must be an integer between 0 and 32767");
    }
    StepAt(top, a).priority = Number("3");
    ExpectValid();
}

TEST_F(WorkflowSpecTest, MaxAttemptsMustBeAnIntegerInRange) {
    int top = Top();
    int a = Job(top, "a");
    for (RawField bad : {Number("0"), Number("-3"), Number("32768"), Number("2.0"), String("5")}) {
        StepAt(top, a).max_attempts = bad;
        ExpectError(SpecError::Invalid,
                    "step \"a\": \"max_attempts\" must be an integer between 1 and 32767");
    }
    StepAt(top, a).max_attempts = Number("5");
    ExpectValid();
}

TEST_F(WorkflowSpecTest, ScheduledAtMustBeAStringOrNull) {
    int top = Top();
    int a = Job(top, "a");
    StepAt(top, a).scheduled_at = Number("1700000000");
    ExpectError(SpecError::Invalid, "step \"a\": \"scheduled_at\" must be a timestamp string or null");
}

TEST_F(WorkflowSpecTest, ArgsAndMetaMustBeObjects) {
    int top = Top();
    int a = Job(top, "a");
    for (JsonKind bad : {JsonKind::Array, JsonKind::String, JsonKind::Null, JsonKind::Number}) {
        StepAt(top, a).args = bad;
        ExpectError(SpecError::Invalid, "step \"a\": \"args\" must be a JSON object");
    }
    StepAt(top, a).args = JsonKind::Object;
    for (JsonKind bad : {JsonKind::Array, JsonKind::String, JsonKind::Null, JsonKind::Boolean}) {
        StepAt(top, a).meta = bad;
        ExpectError(SpecError::Invalid, "step \"a\": \"meta\" must be a JSON object");
    }
}

TEST_F(WorkflowSpecTest, TagsMustBeAnArrayOfStrings) {
    int top = Top();
    int a = Job(top, "a");
    for (JsonKind bad : {JsonKind::Object, JsonKind::String, JsonKind::Null}) {
        StepAt(top, a).tags = bad;
        ExpectError(SpecError::Invalid, "step \"a\": \"tags\" must be an array of strings");
    }
    StepAt(top, a).tags = JsonKind::Array;
    StepAt(top, a).tags_all_strings = false;  // e.g. ["x", 1]
    ExpectError(SpecError::Invalid, "step \"a\": \"tags\" must be an array of strings");
}

TEST_F(WorkflowSpecTest, DepsMustBeANameOrAnArray) {
    int top = Top();
    Job(top, "a");
    int b = Job(top, "b");
    for (JsonKind bad : {JsonKind::Object, JsonKind::Number, JsonKind::Null, JsonKind::Boolean}) {
        StepAt(top, b).deps = bad;
        ExpectError(SpecError::Invalid, "step \"b\": \"deps\" must be a step name or an array of deps");
    }
}

TEST_F(WorkflowSpecTest, EmptyBareDepIsInvalid) {
    int top = Top();
    int a = Job(top, "a");
    Deps(top, a, {Bare("")});
    ExpectError(SpecError::Invalid, "step \"a\": a dep must not be empty");
}

TEST_F(WorkflowSpecTest, DepPairsOfTheWrongShape) {
    const std::string message = "a dep must be a step name or a [workflow_id, name] pair of strings";
    auto expect_bad = [&](RawDep dep) {
        spec_.workflows.clear();
        int top = Top();
        Job(top, "a");
        int b = Job(top, "b");
        Deps(top, b, {dep});
        ExpectError(SpecError::Invalid, "step \"b\": " + message);
    };
    RawDep one = Pair("wf", "a");
    one.arity = 1;
    one.name = RawField{};
    expect_bad(one);  // ["wf"]
    RawDep three = Pair("wf", "a");
    three.arity = 3;
    expect_bad(three);  // ["wf", "a", "x"]
    RawDep empty;
    empty.kind = JsonKind::Array;
    expect_bad(empty);  // []
    RawDep number_id = Pair("", "a");
    number_id.workflow_id = Number("1");
    expect_bad(number_id);  // [1, "a"]
    RawDep number_name = Pair("wf", "");
    number_name.name = Number("1");
    expect_bad(number_name);  // ["wf", 1]
    expect_bad(Pair("", "a"));
    expect_bad(Pair("wf", ""));
    for (JsonKind kind : {JsonKind::Number, JsonKind::Object, JsonKind::Null, JsonKind::Boolean}) {
        RawDep scalar;
        scalar.kind = kind;
        expect_bad(scalar);  // [1], [{}], [null], [true]
    }
}

// --- names and deps -------------------------------------------------------------------------------

TEST_F(WorkflowSpecTest, DuplicateStepNames) {
    int top = Top();
    Job(top, "a");
    Job(top, "b");
    Job(top, "a", "Other.Worker");
    ExpectError(SpecError::Duplicate, "step \"a\" appears more than once");
}

TEST_F(WorkflowSpecTest, SubWorkflowEntryNameCollidesWithAStep) {
    int top = Top();
    Job(top, "a");
    int sub = Sub(top, "a");
    Job(sub, "x");
    ExpectError(SpecError::Duplicate, "step \"a\" appears more than once");
}

TEST_F(WorkflowSpecTest, SameNameInDifferentWorkflowsIsFine) {
    int top = Top();
    Job(top, "a");
    int sub = Sub(top, "s");
    Job(sub, "a");
    ExpectValid();
}

TEST_F(WorkflowSpecTest, UnknownDepIsRejectedWhenCheckingDeps) {
    int top = Top();
    Job(top, "a");
    int b = Job(top, "b");
    Deps(top, b, {Bare("a"), Bare("ghost")});
    ExpectError(SpecError::UnknownDep, "step \"b\" depends on unknown step \"ghost\"");
}

TEST_F(WorkflowSpecTest, UnknownDepIsKeptWhenNotCheckingDeps) {
    int top = Top();
    int a = Job(top, "a");
    int b = Job(top, "b");
    Deps(top, b, {Bare("ghost"), Bare("a")});
    ExpectValid(/*check_deps=*/false);
    const auto &deps = spec_.DepsOf(top, b);
    ASSERT_EQ(deps.size(), 2u);
    EXPECT_EQ(deps[0].kind, ResolvedDep::External);
    EXPECT_EQ(deps[0].external_workflow_id, "");  // a later step of this same workflow
    EXPECT_EQ(deps[0].name, "ghost");
    ExpectStepDep(deps[1], top, a);
}

TEST_F(WorkflowSpecTest, UnknownDepInsideASubWorkflowNamesTheStep) {
    int top = Top();
    Job(top, "a");
    int sub = Sub(top, "s");
    int x = Job(sub, "x");
    Deps(sub, x, {Bare("a")});  // bare names resolve within the sub-workflow only
    ExpectError(SpecError::UnknownDep, "step \"x\" depends on unknown step \"a\"");
}

TEST_F(WorkflowSpecTest, KnownStepsLetABareDepNameAnExistingStep) {
    int top = Top();
    Flow(top).workflow_id = String("wf-1");
    int c = Job(top, "c");
    Deps(top, c, {Bare("a"), Pair("wf-1", "b")});
    ExpectError(SpecError::UnknownDep, "step \"c\" depends on unknown step \"a\"");

    spec_.AddKnownStep("a");
    ExpectError(SpecError::UnknownDep, "step \"c\" depends on unknown step \"b\"");

    spec_.AddKnownStep("b");
    ExpectValid();
    const auto &deps = spec_.DepsOf(top, c);
    ASSERT_EQ(deps.size(), 2u);
    EXPECT_EQ(deps[0].kind, ResolvedDep::External);
    EXPECT_EQ(deps[0].external_workflow_id, "");
    EXPECT_EQ(deps[0].name, "a");
    EXPECT_EQ(deps[1].kind, ResolvedDep::External);
    EXPECT_EQ(deps[1].external_workflow_id, "");
    EXPECT_EQ(deps[1].name, "b");
}

TEST_F(WorkflowSpecTest, ExternalPairsResolveToExternal) {
    int top = Top();
    Flow(top).workflow_id = String("mine");
    Job(top, "a");
    int b = Job(top, "b");
    Deps(top, b, {Pair("other", "x"), Pair("other", "*"), Pair("mine", "a"), Bare("a")});
    ExpectValid();
    const auto &deps = spec_.DepsOf(top, b);
    ASSERT_EQ(deps.size(), 4u);
    EXPECT_EQ(deps[0].kind, ResolvedDep::External);
    EXPECT_EQ(deps[0].external_workflow_id, "other");
    EXPECT_EQ(deps[0].name, "x");
    EXPECT_EQ(deps[1].kind, ResolvedDep::External);
    EXPECT_EQ(deps[1].external_workflow_id, "other");
    EXPECT_EQ(deps[1].name, "*");
    ExpectStepDep(deps[2], top, 0);  // a pair naming this workflow's own id is a step of it
    ExpectStepDep(deps[3], top, 0);
}

TEST_F(WorkflowSpecTest, ExternalPairsAreNotCheckedAgainstTheSpec) {
    int top = Top();
    int a = Job(top, "a");
    Deps(top, a, {Pair("elsewhere", "no-such-step")});
    ExpectValid(/*check_deps=*/true);
    ASSERT_EQ(spec_.DepsOf(top, a).size(), 1u);
    EXPECT_EQ(spec_.DepsOf(top, a)[0].kind, ResolvedDep::External);
}

TEST_F(WorkflowSpecTest, OwnIdPairNamingNoStepIsUnknown) {
    int top = Top();
    Flow(top).workflow_id = String("mine");
    int a = Job(top, "a");
    Deps(top, a, {Pair("mine", "ghost")});
    ExpectError(SpecError::UnknownDep, "step \"a\" depends on unknown step \"ghost\"");
}

// --- cycles ---------------------------------------------------------------------------------------

TEST_F(WorkflowSpecTest, SelfDep) {
    int top = Top();
    Job(top, "a");
    int b = Job(top, "b");
    Deps(top, b, {Bare("a"), Bare("b")});
    ExpectError(SpecError::Cycle, "step \"b\" depends on itself");
    // Even when unknown deps are allowed.
    ExpectError(SpecError::Cycle, "step \"b\" depends on itself", /*check_deps=*/false);
}

TEST_F(WorkflowSpecTest, SelfDepThroughOwnWorkflowId) {
    int top = Top();
    Flow(top).workflow_id = String("mine");
    int a = Job(top, "a");
    Deps(top, a, {Pair("mine", "a")});
    ExpectError(SpecError::Cycle, "step \"a\" depends on itself");
}

TEST_F(WorkflowSpecTest, CycleOfTwo) {
    int top = Top();
    int a = Job(top, "a");
    int b = Job(top, "b");
    Deps(top, a, {Bare("b")});
    Deps(top, b, {Bare("a")});
    ExpectError(SpecError::Cycle, "is part of a dependency cycle");
    ExpectError(SpecError::Cycle, "step \"a\"");
}

TEST_F(WorkflowSpecTest, CycleOfThreeBehindValidSteps) {
    int top = Top();
    Job(top, "root");
    int a = Job(top, "a");
    int b = Job(top, "b");
    int c = Job(top, "c");
    Deps(top, a, {Bare("root"), Bare("c")});
    Deps(top, b, {Bare("a")});
    Deps(top, c, {Bare("b")});
    ExpectError(SpecError::Cycle, "step \"a\" is part of a dependency cycle");
}

TEST_F(WorkflowSpecTest, CycleOfFifty) {
    int top = Top();
    const int length = 50;
    for (int i = 0; i < length; i++) Job(top, Keep("s" + std::to_string(i)));
    for (int i = 0; i < length; i++)
        Deps(top, i, {Bare(StepAt(top, (i + 1) % length).name.text)});  // s0 <- s1 <- ... <- s49 <- s0
    ExpectError(SpecError::Cycle, "step \"s0\" is part of a dependency cycle");

    // Breaking one edge leaves a valid chain of fifty.
    StepAt(top, length - 1).dep_list.clear();
    ExpectValid();
}

TEST_F(WorkflowSpecTest, LongChainIsNotACycle) {
    int top = Top();
    const int length = 500;
    for (int i = 0; i < length; i++) Job(top, Keep("s" + std::to_string(i)));
    for (int i = 1; i < length; i++) Deps(top, i, {Bare(StepAt(top, i - 1).name.text), Bare("s0")});
    ExpectValid();
    ASSERT_EQ(spec_.DepsOf(top, length - 1).size(), 2u);
    ExpectStepDep(spec_.DepsOf(top, length - 1)[0], top, length - 2);
}

TEST_F(WorkflowSpecTest, CycleThroughASubWorkflowEntry) {
    int top = Top();
    int a = Job(top, "a");
    int sub = Sub(top, "s");
    Job(sub, "x");
    Deps(top, a, {Bare("s")});
    Deps(top, 1, {Bare("a")});  // the entry "s" itself waits for "a"
    ExpectError(SpecError::Cycle, "is part of a dependency cycle");
}

TEST_F(WorkflowSpecTest, CycleInsideASubWorkflow) {
    int top = Top();
    Job(top, "a");
    int sub = Sub(top, "s");
    int x = Job(sub, "x");
    int y = Job(sub, "y");
    Deps(sub, x, {Bare("y")});
    Deps(sub, y, {Bare("x")});
    ExpectError(SpecError::Cycle, "step \"x\" is part of a dependency cycle");
}

// --- sub-workflows --------------------------------------------------------------------------------

TEST_F(WorkflowSpecTest, DepOnASubWorkflowResolvesToSubWorkflow) {
    int top = Top();
    Job(top, "a");
    int sub = Sub(top, "s");
    int x = Job(sub, "x");
    int y = Job(sub, "y");
    Deps(sub, y, {Bare("x")});
    int c = Job(top, "c");
    Deps(top, c, {Bare("a"), Bare("s")});
    Deps(top, 1, {Bare("a")});  // the entry waits for "a"
    ExpectValid();
    const auto &deps = spec_.DepsOf(top, c);
    ASSERT_EQ(deps.size(), 2u);
    ExpectStepDep(deps[0], top, 0);
    EXPECT_EQ(deps[1].kind, ResolvedDep::SubWorkflow);
    EXPECT_EQ(deps[1].workflow, sub);
    ASSERT_EQ(spec_.DepsOf(top, 1).size(), 1u);
    ExpectStepDep(spec_.DepsOf(top, 1)[0], top, 0);
    ASSERT_EQ(spec_.DepsOf(sub, y).size(), 1u);
    ExpectStepDep(spec_.DepsOf(sub, y)[0], sub, x);
    EXPECT_TRUE(spec_.DepsOf(sub, x).empty());
}

TEST_F(WorkflowSpecTest, SubWorkflowEntryShape) {
    int top = Top();
    int sub = Sub(top, "s");
    Job(sub, "x");
    StepAt(top, 0).worker = String("MyApp.Worker");
    ExpectError(SpecError::Invalid, "step \"s\": a sub-workflow entry has no \"worker\"");
    StepAt(top, 0).worker = RawField{};
    StepAt(top, 0).workflow = JsonKind::Array;
    ExpectError(SpecError::Invalid, "step \"s\": \"workflow\" must be a JSON object");
}

TEST_F(WorkflowSpecTest, SubWorkflowErrorsNameTheSubWorkflow) {
    int top = Top();
    Job(top, "a");
    int sub = Sub(top, "inner");
    Flow(sub).jobs = JsonKind::Missing;
    ExpectError(SpecError::Invalid, "sub-workflow \"inner\" has no \"jobs\"");
    Flow(sub).jobs = JsonKind::Object;
    ExpectError(SpecError::Invalid, "sub-workflow \"inner\": \"jobs\" must be an array");
    Flow(sub).jobs = JsonKind::Array;
    ExpectError(SpecError::Invalid, "sub-workflow \"inner\" has no jobs");
    int x = Job(sub, "x");
    StepAt(sub, x).worker = RawField{};
    ExpectError(SpecError::Invalid, "step \"x\" has no \"worker\"");
    StepAt(sub, x).worker = String("W");
    Flow(sub).is_object = false;
    ExpectError(SpecError::Invalid, "sub-workflow \"inner\" must be a JSON object");
}

TEST_F(WorkflowSpecTest, NestingUpToTheLimitIsFine) {
    int workflow = Top();
    for (int level = 1; level <= kMaxNesting; level++) {
        Job(workflow, Keep("job" + std::to_string(level)));
        workflow = Sub(workflow, Keep("level" + std::to_string(level)));
    }
    Job(workflow, "deepest");
    EXPECT_EQ(Flow(workflow).depth, kMaxNesting);
    ExpectValid();
}

TEST_F(WorkflowSpecTest, NestingBeyondTheLimitIsTooDeep) {
    int workflow = Top();
    for (int level = 1; level <= kMaxNesting + 1; level++)
        workflow = Sub(workflow, Keep("level" + std::to_string(level)));
    Job(workflow, "deepest");
    EXPECT_EQ(Flow(workflow).depth, kMaxNesting + 1);
    ExpectError(SpecError::TooDeep, "sub-workflow \"level" + std::to_string(kMaxNesting + 1) +
                                        "\" is nested more than " + std::to_string(kMaxNesting) +
                                        " levels deep");
}

TEST_F(WorkflowSpecTest, DepOnANestedSubWorkflowEntry) {
    int top = Top();
    int outer = Sub(top, "outer");
    Job(outer, "p");
    int inner = Sub(outer, "inner");
    Job(inner, "q");
    int r = Job(outer, "r");
    Deps(outer, r, {Bare("inner"), Bare("p")});
    int z = Job(top, "z");
    Deps(top, z, {Bare("outer")});
    ExpectValid();
    const auto &outer_deps = spec_.DepsOf(outer, r);
    ASSERT_EQ(outer_deps.size(), 2u);
    EXPECT_EQ(outer_deps[0].kind, ResolvedDep::SubWorkflow);
    EXPECT_EQ(outer_deps[0].workflow, inner);
    ExpectStepDep(outer_deps[1], outer, 0);
    ASSERT_EQ(spec_.DepsOf(top, z).size(), 1u);
    EXPECT_EQ(spec_.DepsOf(top, z)[0].kind, ResolvedDep::SubWorkflow);
    EXPECT_EQ(spec_.DepsOf(top, z)[0].workflow, outer);
}

// --- unique ---------------------------------------------------------------------------------------

TEST_F(WorkflowSpecTest, UniqueNeedsANonEmptyName) {
    int top = Top();
    Job(top, "a");
    Flow(top).unique = Boolean(true);
    ExpectError(SpecError::Invalid, "workflow: a \"unique\" workflow needs a non-empty \"name\"");
    Flow(top).name = String("");
    ExpectError(SpecError::Invalid, "a \"unique\" workflow needs a non-empty \"name\"");
    Flow(top).name = Kind(JsonKind::Null);
    ExpectError(SpecError::Invalid, "a \"unique\" workflow needs a non-empty \"name\"");
    Flow(top).name = String("nightly");
    ExpectValid();
    Flow(top).name = RawField{};
    Flow(top).unique = Boolean(false);  // not unique: no name needed
    ExpectValid();
}

TEST_F(WorkflowSpecTest, UniqueOnASubWorkflowIsInvalid) {
    int top = Top();
    Flow(top).name = String("outer");
    Job(top, "a");
    int sub = Sub(top, "inner");
    Job(sub, "x");
    Flow(sub).name = String("named");
    Flow(sub).unique = Boolean(true);
    ExpectError(SpecError::Invalid, "sub-workflow \"inner\": only a top-level workflow can be \"unique\"");
    Flow(top).unique = Boolean(true);  // still invalid with a unique top
    ExpectError(SpecError::Invalid, "sub-workflow \"inner\": only a top-level workflow can be \"unique\"");
}

// --- error order and re-validation ------------------------------------------------------------------

TEST_F(WorkflowSpecTest, ShapeErrorsComeBeforeDepErrors) {
    int top = Top();
    int a = Job(top, "a");
    Deps(top, a, {Bare("a")});  // a self-dep
    Job(top, "b");
    StepAt(top, 1).priority = Number("-1");  // and a bad field in a later step
    ExpectError(SpecError::Invalid, "step \"b\": \"priority\"");
}

TEST_F(WorkflowSpecTest, ValidateCanRunAgainAfterAFix) {
    int top = Top();
    int a = Job(top, "a");
    int b = Job(top, "b");
    Deps(top, b, {Bare("ghost")});
    ExpectError(SpecError::UnknownDep, "\"ghost\"");
    StepAt(top, b).dep_list.clear();
    Deps(top, b, {Bare("a")});
    ExpectValid();
    ASSERT_EQ(spec_.DepsOf(top, b).size(), 1u);  // no leftovers from the failed run
    ExpectStepDep(spec_.DepsOf(top, b)[0], top, a);
    EXPECT_TRUE(spec_.DepsOf(top, a).empty());
}

}  // namespace

// --- fixes for what these tests found ---------------------------------------------------------------

TEST_F(WorkflowSpecTest, WaitingForItsOwnWholeWorkflowIsACycle) {
    int top = Top();
    Flow(top).workflow_id = String("mine");
    int a = Job(top, "a");
    Deps(top, a, {Pair("mine", "*")});
    ExpectError(SpecError::Cycle, "step \"a\" waits for workflow \"mine\", which contains it");
    // Also from inside a sub-workflow, for any enclosing workflow.
    Deps(top, a, {});
    StepAt(top, a).dep_list.clear();
    int sub = Sub(top, "s");
    int x = Job(sub, "x");
    Deps(sub, x, {Pair("mine", "*")});
    ExpectError(SpecError::Cycle, "step \"x\" waits for workflow \"mine\", which contains it");
}

TEST_F(WorkflowSpecTest, BareStarIsNotAStepName) {
    int top = Top();
    int a = Job(top, "a");
    Deps(top, a, {Bare("*")});
    ExpectError(SpecError::Invalid, "step \"a\": \"*\" is not a step name", /*check_deps=*/false);
}

TEST_F(WorkflowSpecTest, CycleErrorNamesAStepOnTheCycle) {
    int top = Top();
    int c = Job(top, "c");
    int a = Job(top, "a");
    int b = Job(top, "b");
    Deps(top, c, {Bare("a")});  // downstream of the cycle, not on it
    Deps(top, a, {Bare("b")});
    Deps(top, b, {Bare("a")});
    SpecResult result = spec_.Validate(true);
    EXPECT_EQ(result.error, SpecError::Cycle);
    EXPECT_EQ(result.message.find("\"c\""), std::string::npos) << result.message;
    EXPECT_NE(result.message.find("is part of a dependency cycle"), std::string::npos) << result.message;
}

TEST_F(WorkflowSpecTest, TwoWorkflowsOfTheSpecCannotShareAnId) {
    int top = Top();
    Flow(top).workflow_id = String("same");
    Job(top, "a");
    int sub = Sub(top, "s");
    Flow(sub).workflow_id = String("same");
    Job(sub, "x");
    ExpectError(SpecError::Duplicate, "workflow_id \"same\" is given to two workflows of the spec");
}

// --- hostile sizes (issue 8): validation is O(n log n), whatever the order of the spec -----------

TEST_F(WorkflowSpecTest, AppendedStepNamedLikeAnExistingStepIsADuplicate) {
    int top = Top();
    Flow(top).workflow_id = String("wf-1");
    Job(top, "c");
    Job(top, "a");
    spec_.AddKnownStep("b");
    spec_.AddKnownStep("a");
    ExpectError(SpecError::Duplicate, "step \"a\" already exists in workflow \"wf-1\"");
}

TEST_F(WorkflowSpecTest, EarliestRepeatedNameIsReported) {
    int top = Top();
    Job(top, "z");
    Job(top, "b");
    Job(top, "b");  // repeated first (position 3)
    Job(top, "z");  // repeated later
    ExpectError(SpecError::Duplicate, "step \"b\" appears more than once");
}

TEST_F(WorkflowSpecTest, LongChainBelowACycleIsRejectedQuickly) {
    // a <-> b, then c1 <- b, c2 <- c1, ... in increasing order: the worst order for peeling one
    // pass at a time (O(n^2): about 10 s at this size before the worklist; now milliseconds).
    constexpr int kChain = 100000;
    std::vector<std::string> names;
    names.reserve(kChain + 2);
    names.emplace_back("a");
    names.emplace_back("b");
    for (int i = 1; i <= kChain; i++) names.push_back("c" + std::to_string(i));
    int top = Top();
    for (const std::string &name : names) Job(top, name);
    Deps(top, 0, {Bare(names[1])});
    Deps(top, 1, {Bare(names[0])});
    for (int i = 2; i < kChain + 2; i++) Deps(top, i, {Bare(names[static_cast<size_t>(i - 1)])});
    ExpectError(SpecError::Cycle, "step \"a\" is part of a dependency cycle");
}
