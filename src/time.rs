//! Time: the wall clock in microseconds, RFC 3339 parsing and formatting (the H2O, Pangea and
//! envelope forms), and durations (`7d`, `12h`) as used by the configuration, the CLI and both
//! dialects. Depends on nothing else in the crate.

/// The wall clock, µs since the Unix epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Parses an RFC 3339 timestamp with a mandatory offset into (µs since epoch, sub-µs nanos).
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    // chrono accepts some forms we don't (e.g. spaces); check the shape first.
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
        return None;
    }
    let dt = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    if dt.timestamp_subsec_nanos() >= 1_000_000_000 {
        return None; // leap second
    }
    let us = dt.timestamp_micros();
    Some((us, dt.timestamp_subsec_nanos() % 1000))
}

/// protojson-style timestamp: UTC `Z`, 0/3/6/9 fraction digits.
pub fn format_protojson(us: i64, sub_nanos: u32) -> String {
    let dt = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    let nanos = dt.timestamp_subsec_nanos() + sub_nanos;
    let digits = if nanos == 0 {
        0
    } else if nanos.is_multiple_of(1_000_000) {
        3
    } else if nanos.is_multiple_of(1000) {
        6
    } else {
        9
    };
    // nanos < 10^9: the microseconds' nanoseconds plus fewer than 1,000 more.
    format_utc(&chrono::Timelike::with_nanosecond(&dt, nanos).unwrap_or(dt), digits)
}

/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` with `fraction` digits (0–9) of the second, written digit by
/// digit: receive times are formatted for every stored and every rendered event, and chrono's
/// format-string machinery cost more than the rest of an envelope's tail. Years outside 0–9999
/// go through chrono.
pub fn format_utc(dt: &chrono::DateTime<chrono::Utc>, fraction: usize) -> String {
    use chrono::{Datelike, Timelike};
    let year = dt.year();
    let nanos = dt.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 || fraction > 9 {
        let base = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
        let frac = format!("{nanos:09}");
        return if fraction == 0 { format!("{base}Z") } else { format!("{base}.{}Z", &frac[..fraction.min(9)]) };
    }
    let mut b = *b"0000-00-00T00:00:00.000000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, dt.month());
    put(8, 2, dt.day());
    put(11, 2, dt.hour());
    put(14, 2, dt.minute());
    put(17, 2, dt.second());
    put(20, 9, nanos);
    let mut out = String::with_capacity(31);
    out.push_str(std::str::from_utf8(&b[..19]).unwrap_or_default());
    if fraction > 0 {
        out.push_str(std::str::from_utf8(&b[19..20 + fraction]).unwrap_or_default());
    }
    out.push('Z');
    out
}

/// Format a microsecond timestamp as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn format_micros(us: i64) -> String {
    let dt = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    format_utc(&dt, 6)
}

/// `7d`, `1h`, `30mins`, `2y`…: microseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let secs: i64 = match unit {
        "d" | "da" | "day" | "days" => 86_400,
        "h" | "hour" | "hr" | "hrs" | "hours" => 3600,
        "mi" | "min" | "mins" | "minute" | "minutes" => 60,
        "mo" | "mon" | "month" | "months" => 30 * 86_400,
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "w" | "week" | "weeks" => 7 * 86_400,
        "y" | "year" | "years" => 365 * 86_400,
        _ => return None,
    };
    n.checked_mul(secs)?.checked_mul(1_000_000)
}

/// Formats microseconds as the largest exact unit (`90d`, `36h`, `1s`).
pub fn format_duration(us: i64) -> String {
    let secs = us / 1_000_000;
    for (unit, n) in [("y", 365 * 86_400), ("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("mins", 60)] {
        if secs >= n && secs % n == 0 {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// Parses `^\d{4}-\d{1,2}-\d{1,2}T\d{1,2}:\d{1,2}:\d{1,2}(.\d{1,6})?([\+\-]\d{1,2}(:?\d{1,2})?|Z)?$` to µs (naive = UTC).
pub fn parse_pangea_time(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once('T')?;
    let mut d = date.split('-');
    let (y, mo, da) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || y.len() != 4 || !(1..=2).contains(&mo.len()) || !(1..=2).contains(&da.len()) {
        return None;
    }
    let tz_pos = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (time, tz) = rest.split_at(tz_pos);
    let (hms, frac) = match time.split_once('.') {
        Some((a, f)) if (1..=6).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => (a, f),
        Some(_) => return None,
        None => (time, ""),
    };
    let mut t = hms.split(':');
    let (h, mi, se) = (t.next()?, t.next()?, t.next()?);
    if t.next().is_some() {
        return None;
    }
    let num = |v: &str, lo: usize, hi: usize| -> Option<u32> {
        if !(lo..=hi).contains(&v.len()) || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse().ok()
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(y, 4, 4)? as i32, num(mo, 1, 2)?, num(da, 1, 2)?)?;
    let micros = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
    let time = chrono::NaiveTime::from_hms_micro_opt(num(h, 1, 2)?, num(mi, 1, 2)?, num(se, 1, 2)?, micros)?;
    let offset_secs: i64 = match tz {
        "" | "Z" => 0,
        _ => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let body = &tz[1..];
            let (oh, om) = match body.split_once(':') {
                Some((a, b)) => (a, b),
                None if body.len() > 2 => body.split_at(body.len() - 2),
                None => (body, "0"),
            };
            sign * (num(oh, 1, 2)? as i64 * 3600 + num(om, 1, 2)? as i64 * 60)
        }
    };
    Some(date.and_time(time).and_utc().timestamp_micros() - offset_secs * 1_000_000)
}

/// RFC 3339 (naive = UTC) or a duration before `now`, as µs.
pub fn parse_time_or_duration(s: &str, now: i64) -> Option<i64> {
    parse_pangea_time(s).or_else(|| parse_duration(s).map(|d| now - d))
}

/// One hour in µs.
pub const HOUR_US: i64 = 3_600_000_000;

/// The UTC hour (hours since the epoch) of a time in µs.
pub fn hour_of(us: i64) -> i64 {
    us.div_euclid(HOUR_US)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digit-by-digit formats equal chrono's for random times and every fraction width.
    #[test]
    fn protojson_format_is_chronos() {
        let chrono_fmt = |us: i64, sub: u32| {
            let dt = chrono::DateTime::from_timestamp_micros(us).unwrap();
            let nanos = dt.timestamp_subsec_nanos() + sub;
            let base = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
            match nanos {
                0 => format!("{base}Z"),
                n if n % 1_000_000 == 0 => format!("{base}.{:03}Z", n / 1_000_000),
                n if n % 1000 == 0 => format!("{base}.{:06}Z", n / 1000),
                n => format!("{base}.{n:09}Z"),
            }
        };
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Whole seconds, whole milliseconds, microseconds, and sub-microsecond remainders.
            let us = match i % 4 {
                0 => (x % 253_402_300_800) as i64 * 1_000_000,
                1 => (x % 253_402_300_800_000) as i64 * 1_000,
                _ => (x % 253_402_300_800_000_000) as i64,
            };
            let sub = if i % 4 == 3 { (x >> 40) as u32 % 1000 } else { 0 };
            assert_eq!(format_protojson(us, sub), chrono_fmt(us, sub), "{us} {sub}");
        }
        assert_eq!(format_protojson(-1, 0), chrono_fmt(-1, 0));
        assert_eq!(format_protojson(300_000_000_000_000_000, 0), chrono_fmt(300_000_000_000_000_000, 0));
    }

    #[test]
    fn timestamps_round_trip() {
        let (us, ns) = parse_rfc3339("2025-07-02T10:00:00.123456+00:00").unwrap();
        assert_eq!(format_protojson(us, ns), "2025-07-02T10:00:00.123456Z");
        let (us, ns) = parse_rfc3339("2025-07-02T10:00:00.123456789Z").unwrap();
        assert_eq!(format_protojson(us, ns), "2025-07-02T10:00:00.123456789Z");
        let (us, ns) = parse_rfc3339("2025-07-02T12:00:00+02:00").unwrap();
        assert_eq!(format_protojson(us, ns), "2025-07-02T10:00:00Z");
        assert_eq!(format_protojson(parse_rfc3339("2025-07-02T10:00:00.5Z").unwrap().0, 0), "2025-07-02T10:00:00.500Z");
        assert!(parse_rfc3339("2025-07-02T10:00:00").is_none());
        assert!(parse_rfc3339("2025-07-02 10:00:00Z").is_none());
    }

    #[test]
    fn format_micros_is_chronos_format() {
        let chrono_fmt =
            |us: i64| chrono::DateTime::from_timestamp_micros(us).unwrap().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for fixed in
            [0, 1, 999_999, 1_000_000, 1_764_633_600_000_000, 253_402_300_799_999_999, -1, -62_167_219_200_000_000]
        {
            assert_eq!(format_micros(fixed), chrono_fmt(fixed), "{fixed}");
        }
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let us = (x % 253_402_300_800_000_000) as i64;
            assert_eq!(format_micros(us), chrono_fmt(us), "{us}");
        }
        // Outside years 0–9999 chrono's own format is used.
        assert_eq!(format_micros(300_000_000_000_000_000), chrono_fmt(300_000_000_000_000_000));
    }

    #[test]
    fn pangea_times() {
        assert_eq!(parse_pangea_time("2024-01-02T03:04:05Z"), Some(1_704_164_645_000_000));
        assert_eq!(parse_pangea_time("2024-01-02T03:04:05"), Some(1_704_164_645_000_000));
        assert_eq!(parse_pangea_time("2024-01-02T04:04:05.5+01:00"), Some(1_704_164_645_500_000));
        assert_eq!(parse_pangea_time("2024-1-2T3:4:5.123456-0100"), Some(1_704_168_245_123_456));
        assert!(parse_pangea_time("2024-01-02").is_none());
        assert!(parse_pangea_time("2024-01-02T03:04:05.1234567Z").is_none());
        assert!(parse_pangea_time("yesterday").is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Some(7 * 86_400 * 1_000_000));
        assert_eq!(parse_duration("1hour"), Some(3_600_000_000));
        assert_eq!(parse_duration("2mo"), Some(60 * 86_400 * 1_000_000));
        assert!(parse_duration("7").is_none());
        assert!(parse_duration("d").is_none());
        assert!(parse_duration("7 days").is_none());
    }
}
