#include "core/ack.hpp"

#include <gtest/gtest.h>

using oban::core::Ack;
using oban::core::AckKind;
using oban::core::JsonKind;
using oban::core::RawAck;
using oban::core::RawField;
using oban::core::ValidateAck;

namespace {

RawField String(std::string_view text) {
    return {JsonKind::String, text};
}
RawField Number(std::string_view text) {
    return {JsonKind::Number, text};
}

RawAck Entry(std::string_view id, std::string_view state) {
    RawAck raw;
    raw.is_object = true;
    raw.id = Number(id);
    raw.state = String(state);
    return raw;
}

}  // namespace

TEST(ValidateAck, AcceptsEveryState) {
    Ack ack;
    EXPECT_EQ(ValidateAck(Entry("1", "completed"), &ack), nullptr);
    EXPECT_EQ(ack.kind, AckKind::Complete);
    EXPECT_EQ(ack.id, 1);
    EXPECT_FALSE(ack.has_recorded);

    RawAck error = Entry("2", "retryable");
    error.error = String("boom");
    error.backoff = Number("30.5");
    EXPECT_EQ(ValidateAck(error, &ack), nullptr);
    EXPECT_EQ(ack.kind, AckKind::Error);
    EXPECT_TRUE(ack.has_error);
    EXPECT_TRUE(ack.has_backoff);
    EXPECT_DOUBLE_EQ(ack.backoff_seconds, 30.5);

    EXPECT_EQ(ValidateAck(Entry("3", "cancelled"), &ack), nullptr);
    EXPECT_EQ(ack.kind, AckKind::Cancel);
    EXPECT_FALSE(ack.has_error);
    EXPECT_EQ(ValidateAck(Entry("4", "discarded"), &ack), nullptr);
    EXPECT_EQ(ack.kind, AckKind::Discard);

    RawAck snooze = Entry("5", "scheduled");
    snooze.snooze = Number("60");
    EXPECT_EQ(ValidateAck(snooze, &ack), nullptr);
    EXPECT_EQ(ack.kind, AckKind::Snooze);
    EXPECT_DOUBLE_EQ(ack.snooze_seconds, 60);
}

TEST(ValidateAck, RecordedValueOnlyWhenPresentAndNotNull) {
    Ack ack;
    RawAck raw = Entry("1", "completed");
    raw.recorded = {JsonKind::Object, {}};
    EXPECT_EQ(ValidateAck(raw, &ack), nullptr);
    EXPECT_TRUE(ack.has_recorded);
    raw.recorded = {JsonKind::Null, {}};
    EXPECT_EQ(ValidateAck(raw, &ack), nullptr);
    EXPECT_FALSE(ack.has_recorded);
}

TEST(ValidateAck, RejectsMalformedEntries) {
    Ack ack;
    RawAck not_object;
    EXPECT_STREQ(ValidateAck(not_object, &ack), "an ack must be a JSON object");

    RawAck missing_id = Entry("1", "completed");
    missing_id.id = {};
    EXPECT_STREQ(ValidateAck(missing_id, &ack), "\"id\" is missing");

    for (auto id : {"0", "-3", "1.5", "1e3", "99999999999999999999", "", "abc"})
        EXPECT_STREQ(ValidateAck(Entry(id, "completed"), &ack), "\"id\" must be a positive integer") << id;

    RawAck string_id = Entry("1", "completed");
    string_id.id = String("1");
    EXPECT_STREQ(ValidateAck(string_id, &ack), "\"id\" must be a positive integer");

    RawAck missing_state = Entry("1", "x");
    missing_state.state = {};
    EXPECT_STREQ(ValidateAck(missing_state, &ack), "\"state\" is missing");
    RawAck numeric_state = Entry("1", "x");
    numeric_state.state = Number("1");
    EXPECT_STREQ(ValidateAck(numeric_state, &ack), "\"state\" must be a string");
    EXPECT_NE(ValidateAck(Entry("1", "executing"), &ack), nullptr);
    EXPECT_NE(ValidateAck(Entry("1", "Completed"), &ack), nullptr);
}

TEST(ValidateAck, RejectsBadDelaysAndErrors) {
    Ack ack;
    RawAck snooze = Entry("1", "scheduled");
    EXPECT_NE(ValidateAck(snooze, &ack), nullptr);  // snooze is required
    for (auto bad : {"-1", "1e300", "nan", "inf", "4000000000"}) {
        snooze.snooze = Number(bad);
        EXPECT_NE(ValidateAck(snooze, &ack), nullptr) << bad;
    }
    snooze.snooze = Number("1e-100");  // tiny but valid, however long its text
    EXPECT_EQ(ValidateAck(snooze, &ack), nullptr);
    RawAck error = Entry("1", "retryable");
    error.backoff = String("30");
    EXPECT_NE(ValidateAck(error, &ack), nullptr);
    error.backoff = {};
    error.error = {JsonKind::Object, {}};
    EXPECT_STREQ(ValidateAck(error, &ack), "\"error\" must be a string");
}
