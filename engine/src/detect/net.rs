//! Network identifiers: e-mail addresses, IPv4 and IPv6 addresses.

use super::{at, digit_run, number, prev, run_end};

/// Characters of an e-mail local part (the common unquoted subset of RFC 5322).
fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// True when the byte before `s` extends a local part that starts at `s`: a local-part character,
/// or an apostrophe between two alphanumerics (`o'brien@example.com`). A quote next to a
/// non-alphanumeric is punctuation, so `'alice@example.com'` keeps its quotes out.
fn extends_local(b: &[u8], s: usize) -> bool {
    let c = prev(b, s);
    is_local(c)
        || (c == b'\''
            && at(b, s).is_ascii_alphanumeric()
            && s.checked_sub(2).is_some_and(|k| at(b, k).is_ascii_alphanumeric()))
}

/// E-mail around the `@` at `at_pos`: a local part of at most 64 characters reaching back no
/// further than `floor`, and a domain of at most 255 characters with at least two labels and a
/// letters-only top-level label of two or more letters. Trailing dots/hyphens are not part of it.
/// Returns the span.
pub(super) fn email(b: &[u8], at_pos: usize, floor: usize) -> Option<(usize, usize)> {
    let mut s = at_pos;
    while s > floor && at_pos - s <= 64 && extends_local(b, s) {
        s -= 1;
    }
    if at_pos - s > 64 {
        return None;
    }
    // A local part cannot start with a dot (`see.alice@x.org` keeps the dot in prose).
    s = run_end(b, s, at_pos - s, |c| c == b'.');
    if s == at_pos || prev(b, at_pos) == b'.' {
        return None;
    }
    let d = at_pos + 1;
    let mut e = run_end(b, d, 256, |c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-'));
    if e - d > 255 {
        return None;
    }
    while e > d && matches!(prev(b, e), b'.' | b'-') {
        e -= 1;
    }
    let domain = b.get(d..e)?;
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in domain.split(|&c| c == b'.') {
        let edge_ok =
            label.first().is_some_and(u8::is_ascii_alphanumeric) && label.last().is_some_and(u8::is_ascii_alphanumeric);
        if !edge_ok || label.len() > 63 {
            return None;
        }
        labels += 1;
        last = label;
    }
    // Image names such as `logo@2x.png` end in a file extension that is no top-level domain.
    let file_ext = ["png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "bmp", "tif", "tiff", "heic"]
        .iter()
        .any(|x| x.as_bytes().eq_ignore_ascii_case(last));
    let tld_ok = last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic) && !file_ext;
    (labels >= 2 && tld_ok).then_some((s, e))
}

/// Dotted quad at `i`: four octets 0–255 without leading zeros. Returns its end.
fn dotted_quad(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for k in 0..4 {
        if k > 0 {
            if at(b, j) != b'.' {
                return None;
            }
            j += 1;
        }
        let len = digit_run(b, j, 4);
        if len == 0 || len > 3 || (len > 1 && at(b, j) == b'0') || number(b, j, len) > 255 {
            return None;
        }
        j += len;
    }
    Some(j)
}

/// IPv4 address at `i` (the caller checked the start boundary). Rejects longer dotted runs such
/// as `1.2.3.4.5`; a `-` may follow, as in the range `10.0.0.1-10.0.0.9`. Returns the end.
pub(super) fn ipv4(b: &[u8], i: usize) -> Option<usize> {
    if follows_version(b, i) {
        return None;
    }
    let end = dotted_quad(b, i)?;
    let c = at(b, end);
    let runs_on =
        c.is_ascii_alphanumeric() || matches!(c, b'_' | b'@') || (c == b'.' && at(b, end + 1).is_ascii_digit());
    (!runs_on).then_some(end)
}

/// True when the number at `i` follows the word `version` (`Version=1.0.0.0`,
/// `AssemblyVersion("2.0.0.0")`): a four-part version, as .NET writes them, not an address.
/// Looks back at most nine bytes.
fn follows_version(b: &[u8], i: usize) -> bool {
    let mut k = i;
    for _ in 0..2 {
        if matches!(prev(b, k), b' ' | b'=' | b':' | b'(' | b'"' | b'\'') {
            k -= 1;
        }
    }
    k.checked_sub(7).and_then(|s| b.get(s..k)).is_some_and(|w| w.eq_ignore_ascii_case(b"version"))
}

/// True when an IPv4 address may start at `i` although the digit does not start a token: the
/// second address of a range (`10.0.0.1-10.0.0.9`).
pub(super) fn ipv4_range_start(b: &[u8], i: usize) -> bool {
    prev(b, i) == b'-' && i.checked_sub(2).is_some_and(|j| at(b, j).is_ascii_digit())
}

/// IPv6 address containing the `:` at `colon`: its first group is the (at most 4) hex digits
/// right before the colon, found without reaching before `floor`. Returns the span.
pub(super) fn ipv6_at_colon(b: &[u8], colon: usize, floor: usize) -> Option<(usize, usize)> {
    let mut start = colon;
    while start > floor && colon - start <= 4 && prev(b, start).is_ascii_hexdigit() {
        start -= 1;
    }
    let p = prev(b, start);
    if colon - start > 4 || p.is_ascii_alphanumeric() || matches!(p, b':' | b'.' | b'_' | b'-') {
        return None;
    }
    Some((start, ipv6(b, start)?))
}

/// IPv6 address at `i`: hex groups of 1–4 digits split by `:`, at most one `::`, optionally
/// ending in a dotted quad; exactly 8 groups without `::`, at most 7 with it, and at least one
/// decimal digit (so `::`, `a:b` words, `Add::add` paths, times and MACs are not addresses).
/// Returns the end.
fn ipv6(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut groups = 0;
    let mut compressed = false;
    let mut has_digit = false;
    if at(b, j) == b':' {
        if at(b, j + 1) != b':' {
            return None;
        }
        compressed = true;
        j += 2;
    }
    loop {
        let len = run_end(b, j, 5, |c| c.is_ascii_hexdigit()) - j;
        if len == 0 {
            // Only reachable right after `::`, which may end the address.
            break;
        }
        if len > 4 {
            return None;
        }
        let group = b.get(j..j + len).unwrap_or_default();
        if at(b, j + len) == b'.' && at(b, j + len + 1).is_ascii_digit() && group.iter().all(u8::is_ascii_digit) {
            // Embedded IPv4 fills the last two groups.
            if groups > 6 {
                return None;
            }
            j = dotted_quad(b, j)?;
            groups += 2;
            has_digit = true;
            break;
        }
        // A dot after a hex group is punctuation (`server fe80::1.`), checked by `runs_on` below.
        has_digit |= group.iter().any(u8::is_ascii_digit);
        groups += 1;
        j += len;
        if groups > 8 || at(b, j) != b':' {
            break;
        }
        if at(b, j + 1) == b':' {
            if compressed {
                return None;
            }
            compressed = true;
            j += 2;
        } else if at(b, j + 1).is_ascii_hexdigit() {
            j += 1;
        } else {
            // A lone trailing colon is punctuation (`address ::1: ok`).
            break;
        }
    }
    let count_ok = if compressed { groups <= 7 } else { groups == 8 };
    let c = at(b, j);
    let next = at(b, j + 1);
    let runs_on = c.is_ascii_alphanumeric()
        || matches!(c, b'_' | b'@')
        || (c == b'.' && next.is_ascii_digit())
        || (c == b':' && (next == b':' || next.is_ascii_hexdigit()));
    (count_ok && groups >= 1 && has_digit && !runs_on).then_some(j)
}
