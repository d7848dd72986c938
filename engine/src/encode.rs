//! Small encodings shared by the engine and its adapters: lowercase hex, HMAC-SHA256 and UTC
//! calendar dates from Unix times. One copy here, so tokens, signatures, hashes and timestamps
//! agree everywhere.
//!
//! ```
//! use warden_engine::encode::{civil_from_days, hex_lower, iso8601_utc_ms};
//!
//! assert_eq!(hex_lower(&[0x0f, 0xa0]), "0fa0");
//! assert_eq!(civil_from_days(0), (1970, 1, 1));
//! assert_eq!(iso8601_utc_ms(1_758_745_697_123), "2025-09-24T20:28:17.123Z");
//! ```

use alloc::string::String;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Lowercase hex of `bytes`, two characters per byte.
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_mul(2));
    push_hex(&mut out, bytes, usize::MAX);
    out
}

/// Appends the first `n` lowercase hex characters of `bytes` to `out` (all of them when `n`
/// is at least twice the length; an odd `n` ends with a high nibble).
pub fn push_hex(out: &mut String, bytes: &[u8], n: usize) {
    for (i, b) in bytes.iter().enumerate() {
        if 2 * i >= n {
            break;
        }
        out.push(nibble(b >> 4));
        if 2 * i + 1 < n {
            out.push(nibble(b & 0x0f));
        }
    }
}

fn nibble(n: u8) -> char {
    // Nibbles are < 16, so `from_digit` always yields a digit; '0' is never reached.
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// HMAC-SHA256 of `msg` keyed by `key`.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; fall back to the
    // empty-key MAC rather than panic if that ever changes.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`). Exact for every day count a Unix time in
/// seconds or milliseconds can produce; day counts within 719 468 of `i64::MAX` saturate.
pub const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// ISO-8601 UTC with milliseconds, `YYYY-MM-DDTHH:MM:SS.mmmZ`, of a Unix time in
/// milliseconds (negative times are before 1970).
pub fn iso8601_utc_ms(unix_ms: i64) -> String {
    const MS_PER_DAY: i64 = 86_400_000;
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(MS_PER_DAY));
    let ms_of_day = unix_ms.rem_euclid(MS_PER_DAY);
    let hour = ms_of_day / 3_600_000;
    let minute = ms_of_day / 60_000 % 60;
    let second = ms_of_day / 1_000 % 60;
    let milli = ms_of_day % 1_000;
    alloc::format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex() {
        assert_eq!(hex_lower(&[]), "");
        assert_eq!(hex_lower(&[0x00, 0x9f, 0xff]), "009fff");
        let mut s = String::from("pii_");
        push_hex(&mut s, &[0xab, 0xcd, 0xef], 3);
        assert_eq!(s, "pii_abc");
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex_lower(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso8601_utc_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601_utc_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso8601_utc_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso8601_utc_ms(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        // Extremes do not panic.
        let _ = iso8601_utc_ms(i64::MAX);
        let _ = iso8601_utc_ms(i64::MIN);
        let _ = civil_from_days(i64::MAX);
        let _ = civil_from_days(i64::MIN);
    }
}
