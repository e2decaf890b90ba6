#include "core/pure.hpp"

#include "core/signal.hpp"

namespace oban::core {

namespace {

// Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool ReadDigits(std::string_view text, size_t at, size_t count, int *out) {
    if (at + count > text.size()) return false;
    int value = 0;
    for (size_t i = at; i < at + count; i++) {
        char c = text[i];
        if (c < '0' || c > '9') return false;
        value = value * 10 + (c - '0');
    }
    *out = value;
    return true;
}

bool LeapYear(int year) {
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int DaysInMonth(int year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && LeapYear(year) ? 29 : days[month - 1];
}

}  // namespace

int64_t TimestampMicros(int year, int month, int day, int hour, int minute, int second, int micros) {
    constexpr int64_t kDaysFrom1970To2000 = 10957;
    int64_t days = DaysFromCivil(year, month, day) - kDaysFrom1970To2000;
    int64_t seconds = ((days * 24 + hour) * 60 + minute) * 60 + second;
    return seconds * 1000000 + micros;
}

Deadline ParseDeadline(std::string_view text) {
    Deadline deadline;
    if (text == "infinity") {
        deadline.kind = Deadline::Kind::Infinity;
        return deadline;
    }
    int year, month, day, hour, minute, second;
    if (!ReadDigits(text, 0, 4, &year) || text.size() < 19 || text[4] != '-' ||
        !ReadDigits(text, 5, 2, &month) || text[7] != '-' || !ReadDigits(text, 8, 2, &day) ||
        text[10] != 'T' || !ReadDigits(text, 11, 2, &hour) || text[13] != ':' ||
        !ReadDigits(text, 14, 2, &minute) || text[16] != ':' || !ReadDigits(text, 17, 2, &second))
        return deadline;
    if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) || hour > 23 || minute > 59 ||
        second > 59)
        return deadline;
    int micros = 0;
    if (text.size() > 19) {
        size_t digits = text.size() - 20;
        if (text[19] != '.' || digits < 1 || digits > 6 || !ReadDigits(text, 20, digits, &micros))
            return deadline;
        for (size_t i = digits; i < 6; i++) micros *= 10;
    }
    deadline.kind = Deadline::Kind::At;
    deadline.at_us = TimestampMicros(year, month, day, hour, minute, second, micros);
    return deadline;
}

AwaitDecision DecideAwait(const Deadline &deadline, int64_t now_us, int64_t block_until_us) {
    int64_t until = block_until_us;
    if (deadline.kind == Deadline::Kind::At) {
        if (now_us >= deadline.at_us) return {AwaitStep::Timeout, 0};
        if (deadline.at_us < until) until = deadline.at_us;
    }
    if (now_us < until) return {AwaitStep::Block, until - now_us};
    return {AwaitStep::Park, 0};
}

}  // namespace oban::core
