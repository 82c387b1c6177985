//! Cron expressions: parsing (five fields, or six with seconds first; lists, ranges, steps,
//! month and weekday names, `@daily` and the other macros) with errors that point at the
//! offending text, and the times an expression matches in a time zone. Daylight saving
//! time is the time zone's: a local time that does not exist does not run, one that
//! happens twice runs the first time. Nothing here knows about rules or the queue.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};

/// How far ahead a match is looked for: more than the 28 years after which weekdays and
/// leap days repeat, so an expression that can match at all is found.
const SEARCH_YEARS: i16 = 30;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// The expression as written.
    text: String,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether day-of-month and day-of-week were both restricted (neither starts with `*`
    /// or `?`): then a day matches when either does, as in every cron since Vixie's.
    either_day: bool,
}

/// Why an expression does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    /// Byte offset in the expression of the text at fault.
    pub at: usize,
    /// What is wrong.
    pub message: String,
}

/// One field's range and names.
struct Field {
    /// Its name in messages.
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for `min`, `min + 1`, ... (months and weekdays).
    names: &'static [&'static str],
}

const SECOND: Field = Field { name: "second", min: 0, max: 59, names: &[] };
const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[] };
const DAY: Field = Field { name: "day-of-month", min: 1, max: 31, names: &[] };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
};
// 7 is Sunday too, as in most crons.
const WEEKDAY: Field =
    Field { name: "day-of-week", min: 0, max: 7, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

/// `@NAME` shorthands and what they stand for.
const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

impl Cron {
    /// Parses `text`: `min hour dom month dow`, or `sec min hour dom month dow`, or a macro
    /// such as `@daily`.
    pub fn parse(text: &str) -> Result<Self, CronError> {
        let trimmed_start = text.len() - text.trim_start().len();
        let body = text.trim();
        if let Some(word) = body.strip_prefix('@') {
            let Some((_, expanded)) = MACROS.iter().find(|(name, _)| name[1..].eq_ignore_ascii_case(word)) else {
                let known: Vec<&str> = MACROS.iter().map(|(name, _)| *name).collect();
                return Err(CronError {
                    at: trimmed_start,
                    message: format!("unknown shorthand `@{word}` (known: {})", known.join(", ")),
                });
            };
            let mut cron = Self::parse(expanded).expect("the shorthands are valid expressions");
            cron.text = body.to_owned();
            return Ok(cron);
        }
        let fields = words(text);
        let layout: &[&Field] = match fields.len() {
            5 => &[&MINUTE, &HOUR, &DAY, &MONTH, &WEEKDAY],
            6 => &[&SECOND, &MINUTE, &HOUR, &DAY, &MONTH, &WEEKDAY],
            n => {
                let at = fields.get(6).map_or(text.trim_end().len(), |(at, _)| *at);
                return Err(CronError {
                    at,
                    message: format!(
                        "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), \
                         found {n}"
                    ),
                });
            }
        };
        let mut sets = [0u64; 6];
        // Without a seconds field, a matching minute runs at its second 0.
        let offset = 6 - layout.len();
        if offset == 1 {
            sets[0] = 1;
        }
        for (index, ((at, word), field)) in fields.iter().zip(layout).enumerate() {
            sets[index + offset] = parse_field(word, *at, field)?;
        }
        let [seconds, minutes, hours, days, months, mut weekdays] = sets;
        // Sunday is 0 and 7.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let restricted = |word: &str| !word.starts_with(['*', '?']);
        let (day_field, weekday_field) = (&fields[fields.len() - 3], &fields[fields.len() - 1]);
        let either_day = restricted(day_field.1) && restricted(weekday_field.1);
        let cron = Self { text: body.to_owned(), seconds, minutes, hours, days, months, weekdays, either_day };
        if !either_day && !cron.some_month_has_a_day() {
            return Err(CronError {
                at: day_field.0,
                message: format!("day-of-month `{}` never falls in the months chosen", day_field.1),
            });
        }
        Ok(cron)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether some chosen month has a chosen day of month (February counted with 29 days).
    fn some_month_has_a_day(&self) -> bool {
        const LONGEST: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12u32).any(|month| {
            self.months & (1 << month) != 0 && (1..=LONGEST[month as usize - 1]).any(|day| self.days & (1 << day) != 0)
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let by_day = self.days & (1 << date.day()) != 0;
        let by_weekday = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.either_day { by_day || by_weekday } else { by_day && by_weekday }
    }

    /// The first local time after `after` (to the second) that matches, within
    /// [`SEARCH_YEARS`].
    fn next_local(&self, after: DateTime) -> Option<DateTime> {
        let (mut year, mut month, mut day) = (after.year(), after.month(), after.day());
        let (mut hour, mut minute, mut second) = (after.hour(), after.minute(), after.second() + 1);
        let limit = year.saturating_add(SEARCH_YEARS);
        loop {
            if second > 59 {
                second = 0;
                minute += 1;
            }
            if minute > 59 {
                minute = 0;
                hour += 1;
            }
            if hour > 23 {
                hour = 0;
                day += 1;
            }
            let date = Date::new(year, month, 1).ok()?;
            if day > date.days_in_month() {
                day = 1;
                month += 1;
            }
            if month > 12 {
                month = 1;
                year += 1;
            }
            if year > limit {
                return None;
            }
            if self.months & (1 << month) == 0 {
                (month, day, hour, minute, second) = (month + 1, 1, 0, 0, 0);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
                continue;
            }
            if !self.day_matches(Date::new(year, month, day).ok()?) {
                // Hour 24 carries into the next day at the top of the loop.
                (hour, minute, second) = (24, 0, 0);
                continue;
            }
            if self.hours & (1 << hour) == 0 {
                (hour, minute, second) = (hour + 1, 0, 0);
                continue;
            }
            if self.minutes & (1 << minute) == 0 {
                (minute, second) = (minute + 1, 0);
                continue;
            }
            if self.seconds & (1 << second) == 0 {
                second += 1;
                continue;
            }
            return DateTime::new(year, month, day, hour, minute, second, 0).ok();
        }
    }

    /// The first instant strictly after `after` at which the expression matches in `tz`:
    /// local times in a gap (clocks jumping forward) are skipped, and a local time that
    /// happens twice (clocks going back) matches only its first time.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let mut local = tz.to_datetime(after);
        loop {
            let candidate = self.next_local(local)?;
            let instant = match tz.to_ambiguous_timestamp(candidate).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(candidate).ok(),
                AmbiguousOffset::Gap { .. } => None,
                AmbiguousOffset::Fold { before, .. } => before.to_timestamp(candidate).ok(),
            };
            match instant {
                Some(instant) if instant > after => return Some(instant),
                _ => local = candidate,
            }
        }
    }

    /// [`Cron::next_after`] in Unix milliseconds.
    pub fn next_after_ms(&self, after_ms: i64, tz: &TimeZone) -> Option<i64> {
        let after = Timestamp::from_millisecond(after_ms).ok()?;
        self.next_after(after, tz).map(|t| t.as_millisecond())
    }

    /// The latest match in `(after_ms, until_ms]`, if there is one. A binary search over
    /// [`Cron::next_after_ms`]: a few dozen steps however many matches the span holds.
    pub fn last_in(&self, after_ms: i64, until_ms: i64, tz: &TimeZone) -> Option<i64> {
        let first = self.next_after_ms(after_ms, tz).filter(|first| *first <= until_ms)?;
        // next(low) <= until < next(high).
        let (mut low, mut high) = (first - 1, until_ms);
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            match self.next_after_ms(middle, tz) {
                Some(next) if next <= until_ms => low = middle,
                _ => high = middle,
            }
        }
        self.next_after_ms(low, tz)
    }

    /// The matches in `(after_ms, until_ms]`, in order, stopping after `at_most + 1` (so a
    /// caller can tell there were more than `at_most`).
    pub fn between(&self, after_ms: i64, until_ms: i64, tz: &TimeZone, at_most: usize) -> Vec<i64> {
        let mut found = Vec::new();
        let mut cursor = after_ms;
        while found.len() <= at_most {
            match self.next_after_ms(cursor, tz) {
                Some(next) if next <= until_ms => {
                    found.push(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        found
    }

    /// The latest `count` matches in `(after_ms, until_ms]` (all of them when there are
    /// fewer), in order, and whether there were more.
    pub fn latest(&self, after_ms: i64, until_ms: i64, tz: &TimeZone, count: usize) -> (Vec<i64>, bool) {
        let all = self.between(after_ms, until_ms, tz, count);
        if all.len() <= count {
            return (all, false);
        }
        // More than `count`: find where the last `count` start. The number of matches in
        // (start, until] shrinks as start grows; look for the largest start leaving `count`.
        let (mut low, mut high) = (after_ms, until_ms);
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if self.between(middle, until_ms, tz, count).len() >= count {
                low = middle;
            } else {
                high = middle;
            }
        }
        let mut last = self.between(low, until_ms, tz, count);
        last.truncate(count);
        (last, true)
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whitespace-separated words with their byte offsets.
fn words(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (at, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(at),
            (true, Some(from)) => {
                out.push((from, &text[from..at]));
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// One field (`1,5-10/2,*/15`) as a bit set of its values; `at` is its offset in the
/// expression.
fn parse_field(word: &str, at: usize, field: &Field) -> Result<u64, CronError> {
    let mut set = 0u64;
    let mut offset = 0;
    for item in word.split(',') {
        let item_at = at + offset;
        offset += item.len() + 1;
        if item.is_empty() {
            return Err(CronError { at: item_at, message: format!("an empty item in the {} list", field.name) });
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some((item_at + range.len() + 1, step))),
            None => (item, None),
        };
        let wildcard = range == "*" || (range == "?" && matches!(field.name, "day-of-month" | "day-of-week"));
        let (low, high) = if wildcard {
            (field.min, field.max)
        } else if let Some((low, high)) = range.split_once('-') {
            let low_value = value(low, item_at, field)?;
            let mut high_value = value(high, item_at + low.len() + 1, field)?;
            // `FRI-SUN`: Sunday closes a week as 7.
            if field.name == WEEKDAY.name && high_value == 0 && high.eq_ignore_ascii_case("sun") {
                high_value = 7;
            }
            if low_value > high_value {
                return Err(CronError {
                    at: item_at,
                    message: format!("the {} range `{range}` runs backwards", field.name),
                });
            }
            (low_value, high_value)
        } else {
            let single = value(range, item_at, field)?;
            // `5/15` means from 5 to the end, every 15.
            (single, if step.is_some() { field.max } else { single })
        };
        let step = match step {
            None => 1,
            Some((step_at, text)) => match text.parse::<u32>() {
                Ok(step) if (1..=field.max.max(1)).contains(&step) => step,
                Ok(_) => {
                    return Err(CronError {
                        at: step_at,
                        message: format!("the {} step `{text}` must be between 1 and {}", field.name, field.max.max(1)),
                    });
                }
                Err(_) => {
                    return Err(CronError {
                        at: step_at,
                        message: format!("the {} step `{text}` is not a number", field.name),
                    });
                }
            },
        };
        let mut value = low;
        while value <= high {
            set |= 1 << value;
            value += step;
        }
    }
    Ok(set)
}

/// A number or (for months and weekdays) a three-letter name, checked against the field's range.
fn value(text: &str, at: usize, field: &Field) -> Result<u32, CronError> {
    if text.is_empty() {
        return Err(CronError { at, message: format!("a {} range is missing a value", field.name) });
    }
    if let Ok(number) = text.parse::<u32>() {
        if (field.min..=field.max).contains(&number) {
            return Ok(number);
        }
        return Err(CronError {
            at,
            message: format!("{} `{text}` is out of range ({}-{})", field.name, field.min, field.max),
        });
    }
    if let Some(index) = field.names.iter().position(|name| name.eq_ignore_ascii_case(text)) {
        return Ok(field.min + index as u32);
    }
    let message = if field.names.is_empty() {
        format!("{} `{text}` is not a number", field.name)
    } else {
        let names: Vec<String> = field.names.iter().map(|name| name.to_ascii_uppercase()).collect();
        format!("{} `{text}` is not a number or a name ({})", field.name, names.join(", "))
    };
    Err(CronError { at, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn show(ms: i64, tz: &TimeZone) -> String {
        let zoned = Timestamp::from_millisecond(ms).unwrap().to_zoned_datetime(tz.clone());
        zoned.strftime("%Y-%m-%d %H:%M:%S %:z").to_string()
    }

    /// The next `n` matches after `from`, shown in `tz`.
    fn next(expression: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
        let cron = Cron::parse(expression).unwrap();
        let tz = TimeZone::get(zone).unwrap();
        let mut cursor = at(from);
        (0..n)
            .map(|_| {
                cursor = cron.next_after_ms(cursor, &tz).unwrap();
                show(cursor, &tz)
            })
            .collect()
    }

    #[test]
    fn expressions_parse_into_their_values() {
        /// Expression, seconds, minutes, hours, days, months, weekdays, either_day.
        type Row<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, bool);
        let rows: &[Row] = &[
            ("* * * * *", "0", "0-59", "0-23", "1-31", "1-12", "0-6", false),
            ("*/15 9-17 * * MON-FRI", "0", "0,15,30,45", "9-17", "1-31", "1-12", "1-5", false),
            ("30 */10 * * * *", "30", "0,10,20,30,40,50", "0-23", "1-31", "1-12", "0-6", false),
            ("0 0 1,15 jan,Jul sun", "0", "0", "0", "1,15", "1,7", "0", true),
            ("0 12 * * 7", "0", "0", "12", "1-31", "1-12", "0", false),
            ("0 12 * * 5-7", "0", "0", "12", "1-31", "1-12", "0,5,6", false),
            ("0 12 * * FRI-SUN", "0", "0", "12", "1-31", "1-12", "0,5,6", false),
            ("5/20 * * * *", "0", "5,25,45", "0-23", "1-31", "1-12", "0-6", false),
            ("0 0 1-10/3 * ?", "0", "0", "0", "1,4,7,10", "1-12", "0-6", false),
            ("@daily", "0", "0", "0", "1-31", "1-12", "0-6", false),
            ("@Weekly", "0", "0", "0", "1-31", "1-12", "0", false),
        ];
        let bits = |text: &str| -> u64 {
            text.split(',')
                .map(|part| match part.split_once('-') {
                    Some((a, b)) => (a.parse::<u32>().unwrap()..=b.parse().unwrap()).fold(0, |s, v| s | 1 << v),
                    None => 1 << part.parse::<u32>().unwrap(),
                })
                .fold(0, |s, v| s | v)
        };
        for (expression, seconds, minutes, hours, days, months, weekdays, either) in rows {
            let cron = Cron::parse(expression).unwrap_or_else(|err| panic!("{expression}: {err}"));
            let got = (cron.seconds, cron.minutes, cron.hours, cron.days, cron.months, cron.weekdays, cron.either_day);
            let want = (bits(seconds), bits(minutes), bits(hours), bits(days), bits(months), bits(weekdays), *either);
            assert_eq!(got, want, "{expression}");
            assert_eq!(cron.as_str(), expression.trim());
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong_and_where() {
        let rows: &[(&str, usize, &str)] = &[
            (
                "* * * *",
                7,
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found 4",
            ),
            (
                "* * * * * * *",
                12,
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found 7",
            ),
            ("61 * * * *", 0, "minute `61` is out of range (0-59)"),
            ("0 0 * * * 8", 10, "day-of-week `8` is out of range (0-7)"),
            ("0 24 * * *", 2, "hour `24` is out of range (0-23)"),
            ("0 0 0 * *", 4, "day-of-month `0` is out of range (1-31)"),
            (
                "0 0 * foo *",
                6,
                "month `foo` is not a number or a name (JAN, FEB, MAR, APR, MAY, JUN, JUL, AUG, SEP, OCT, NOV, DEC)",
            ),
            ("0 0 * * MON-XYZ", 12, "day-of-week `XYZ` is not a number or a name (SUN, MON, TUE, WED, THU, FRI, SAT)"),
            ("0 0 * * FRI-MON", 8, "the day-of-week range `FRI-MON` runs backwards"),
            ("*/0 * * * *", 2, "the minute step `0` must be between 1 and 59"),
            ("0 */x * * *", 4, "the hour step `x` is not a number"),
            ("1,,2 * * * *", 2, "an empty item in the minute list"),
            ("0 0 30 2 *", 4, "day-of-month `30` never falls in the months chosen"),
            ("0 0 31 apr,jun *", 4, "day-of-month `31` never falls in the months chosen"),
            (
                "  @often",
                2,
                "unknown shorthand `@often` (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)",
            ),
            ("x * * * *", 0, "minute `x` is not a number"),
            ("0 0 -3 * *", 4, "a day-of-month range is missing a value"),
        ];
        for (expression, position, message) in rows {
            let err = Cron::parse(expression).unwrap_err();
            assert_eq!((err.at, err.message.as_str()), (*position, *message), "{expression}");
        }
    }

    #[test]
    fn next_times_follow_the_fields() {
        let rows: &[(&str, &str, &[&str])] = &[
            (
                "*/15 9-17 * * MON-FRI",
                "2026-11-27T17:50:00Z", // a Friday, after the last quarter hour
                &["2026-11-30 09:00:00 +00:00", "2026-11-30 09:15:00 +00:00", "2026-11-30 09:30:00 +00:00"],
            ),
            (
                "*/2 * * * * *",
                "2026-11-28T10:00:00.500Z",
                &["2026-11-28 10:00:02 +00:00", "2026-11-28 10:00:04 +00:00", "2026-11-28 10:00:06 +00:00"],
            ),
            // Either day: the 13th or any Friday.
            (
                "0 0 13 * FRI",
                "2026-02-01T00:00:00Z",
                &["2026-02-06 00:00:00 +00:00", "2026-02-13 00:00:00 +00:00", "2026-02-20 00:00:00 +00:00"],
            ),
            // A day-of-week written with `*` makes both days required: a 13th on a Sunday or Friday.
            (
                "0 0 13 * */5",
                "2026-01-01T00:00:00Z",
                &["2026-02-13 00:00:00 +00:00", "2026-03-13 00:00:00 +00:00", "2026-09-13 00:00:00 +00:00"],
            ),
            ("0 0 29 2 *", "2026-01-01T00:00:00Z", &["2028-02-29 00:00:00 +00:00", "2032-02-29 00:00:00 +00:00"]),
            ("@yearly", "2026-12-31T23:59:59Z", &["2027-01-01 00:00:00 +00:00"]),
        ];
        for (expression, from, want) in rows {
            assert_eq!(next(expression, "UTC", from, want.len()), *want, "{expression} after {from}");
        }
    }

    #[test]
    fn daylight_saving_skips_missing_times_and_runs_repeated_ones_once() {
        // Paris: 2026-03-29 02:00 CET jumps to 03:00 CEST; 2026-10-25 03:00 CEST goes back to 02:00 CET.
        let spring = next("30 2 * * *", "Europe/Paris", "2026-03-27T12:00:00Z", 3);
        assert_eq!(spring, ["2026-03-28 02:30:00 +01:00", "2026-03-30 02:30:00 +02:00", "2026-03-31 02:30:00 +02:00"]);
        let autumn = next("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z", 3);
        assert_eq!(autumn, ["2026-10-25 02:30:00 +02:00", "2026-10-26 02:30:00 +01:00", "2026-10-27 02:30:00 +01:00"]);
        // Hourly across the repeated hour: 02:00 runs once (the first time), then 03:00.
        let hourly = next("0 * * * *", "Europe/Paris", "2026-10-25T00:30:00+02:00", 4);
        assert_eq!(
            hourly,
            [
                "2026-10-25 01:00:00 +02:00",
                "2026-10-25 02:00:00 +02:00",
                "2026-10-25 03:00:00 +01:00",
                "2026-10-25 04:00:00 +01:00"
            ]
        );
        // Starting inside the second pass of the repeated hour finds nothing in it again.
        let inside = next("45 2 * * *", "Europe/Paris", "2026-10-25T02:10:00+01:00", 1);
        assert_eq!(inside, ["2026-10-26 02:45:00 +01:00"]);
        // New York jumps at 02:00 too: the 02:30 of that Sunday never happens.
        let new_york = next("30 2 * * SUN", "America/New_York", "2027-03-13T00:00:00Z", 2);
        assert_eq!(new_york, ["2027-03-21 02:30:00 -04:00", "2027-03-28 02:30:00 -04:00"]);
    }

    #[test]
    fn the_latest_matches_are_found_without_walking_every_one() {
        let cron = Cron::parse("* * * * * *").unwrap();
        let tz = TimeZone::UTC;
        let (from, until) = (at("2026-10-01T00:00:00Z"), at("2026-11-01T00:00:00.250Z"));
        assert_eq!(cron.last_in(from, until, &tz), Some(at("2026-11-01T00:00:00Z")));
        assert_eq!(cron.last_in(until, until + 700, &tz), None);
        let (latest, more) = cron.latest(from, until, &tz, 1000);
        assert!(more);
        assert_eq!(latest.len(), 1000);
        assert_eq!(latest[999], at("2026-11-01T00:00:00Z"));
        assert_eq!(latest[0], at("2026-11-01T00:00:00Z") - 999_000);
        let (few, more) = cron.latest(from, from + 3_500, &tz, 1000);
        assert_eq!((few.len(), more), (3, false));
        // `from` itself is excluded, `until` included.
        assert_eq!(cron.between(from, from + 2_000, &tz, 10), [from + 1_000, from + 2_000]);
    }
}
