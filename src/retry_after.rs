//! `Retry-After` (RFC 9110 §10.2.3): seconds, or an HTTP date, turned into
//! the delay before the next attempt. Parsed here, without a date library:
//! only the IMF-fixdate form servers are required to send is accepted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest wait a server can ask for; beyond it the normal backoff and
/// the caller's deadline decide.
pub(crate) const MAX: Duration = Duration::from_secs(300);

/// The delay a `Retry-After` value asks for, seen at `now`, capped at
/// [`MAX`]; a date in the past means no wait. `None` when unparsable.
pub(crate) fn delay(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX));
    }
    let at = UNIX_EPOCH + Duration::from_secs(imf_fixdate(value)?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → seconds since the Unix epoch.
fn imf_fixdate(value: &str) -> Option<u64> {
    let mut parts = value.split_ascii_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day: u64 = parts.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as u64 + 1;
    // Four digits (RFC 9110 §5.6.7): a longer year would overflow the
    // arithmetic below.
    let year: u64 = parts.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|n| n.parse::<u64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT" || parts.next().is_some() || clock.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || year < 1970 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to the given date, for dates from 1970 on.
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    crate::civil::days_from_civil(year as i64, month as i64, day as i64).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_capped() {
        let now = SystemTime::now();
        assert_eq!(delay("7", now), Some(Duration::from_secs(7)));
        assert_eq!(delay("100000", now), Some(MAX));
        assert_eq!(delay("soon", now), None);
    }

    #[test]
    fn imf_fixdate_is_seconds_since_the_epoch() {
        assert_eq!(
            imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            imf_fixdate("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert_eq!(imf_fixdate("Sun, 06 Nov 1994 08:49:37 CET"), None);
        assert_eq!(imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    #[test]
    fn a_date_far_in_the_future_waits_the_longest_and_panics_nowhere() {
        // A server's header: a year past any arithmetic's range.
        let now = SystemTime::now();
        for year in [
            "999999999999999",
            "18446744073709551615",
            "9223372036854775807",
        ] {
            let value = format!("Sun, 06 Nov {year} 08:49:37 GMT");
            assert_eq!(delay(&value, now), None, "{value}");
        }
        assert_eq!(delay("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX));
    }

    #[test]
    fn a_date_gives_the_time_left() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(delay(date, now), Some(Duration::from_secs(7)));
        let later = now + Duration::from_secs(60);
        assert_eq!(delay(date, later), Some(Duration::ZERO));
        let long_before = UNIX_EPOCH;
        assert_eq!(delay(date, long_before), Some(MAX));
    }
}
