//! Digit-led values: payment cards, US SSNs, phone numbers and IBANs. Every parser reads a
//! bounded window (at most a few dozen bytes), so trying them all at a token start is O(1).

use super::{at, digit_run, number, prev};

/// Separators accepted between digit groups of cards, SSNs and phones.
fn is_group_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.')
}

/// True when a digit at `i` may start a value: it must not continue a word, a number, or a
/// dotted/dashed run (`v1.2.3`, `ORD-2024-000123`, the tail of `+1`).
pub(super) fn starts_token(b: &[u8], i: usize) -> bool {
    let p = prev(b, i);
    !(p.is_ascii_alphanumeric() || matches!(p, b'.' | b'-' | b'_' | b'+'))
}

/// True when a value that starts at `i` with groups separated by spaces is really the tail of a
/// longer space-grouped number (`12 555 123 4567`).
fn glued_before(b: &[u8], i: usize, sep: u8) -> bool {
    sep == b' ' && prev(b, i) == b' ' && i.checked_sub(2).is_some_and(|j| at(b, j).is_ascii_digit())
}

/// True when the value ending at `end` runs on into a longer token: more word characters, an
/// `@` (it is an e-mail local part), or another group after a separator (`123-45-6789-1`).
fn runs_on(b: &[u8], end: usize, sep: u8) -> bool {
    let c = at(b, end);
    c.is_ascii_alphanumeric()
        || matches!(c, b'_' | b'@')
        || ((matches!(c, b'.' | b'-') || (c == sep && sep != 0)) && at(b, end + 1).is_ascii_digit())
}

/// Payment card at `i` (`context`: a card word is near): 12–19 digits, either one run or groups split by single spaces or
/// dashes in the usual layouts (4-4-4-4[-1..4], Amex 4-6-5, Diners 4-6-4). Luhn-valid with a
/// known issuer prefix and length. Space-separated groups may be followed by more numbers
/// (`4111 1111 1111 1111 2 items`): the longest valid prefix wins. Returns the end.
pub(super) fn card(b: &[u8], i: usize, context: bool) -> Option<usize> {
    let sep = match digit_run(b, i, 20) {
        12..=19 => 0,
        4 if matches!(at(b, i + 4), b' ' | b'-') => at(b, i + 4),
        _ => return None,
    };

    let mut digits = [0u8; 19];
    let mut n = 0;
    let mut lens = [0usize; 6];
    let mut groups = 0;
    let mut j = i;
    let mut best = None;
    loop {
        let len = digit_run(b, j, 20);
        if n + len > 19 || (sep != 0 && len > 6) {
            break;
        }
        *lens.get_mut(groups)? = len;
        groups += 1;
        for (slot, &c) in digits.iter_mut().skip(n).zip(b.get(j..j + len)?) {
            *slot = c - b'0';
        }
        n += len;
        j += len;
        let more = sep != 0 && at(b, j) == sep && at(b, j + 1).is_ascii_digit();
        let tail_ok = if more { sep == b' ' } else { !runs_on(b, j, sep) };
        let d = digits.get(..n)?;
        if tail_ok && (12..=19).contains(&n) && layout_ok(lens.get(..groups)?) && issuer_ok(d, context) && luhn(d) {
            best = Some(j);
        }
        if !more || groups == lens.len() {
            break;
        }
        j += 1;
    }
    best
}

/// Card group layouts in use: one run, 4-4-…-4 with a last group of 1–4, Amex 4-6-5, Diners
/// 4-6-4.
fn layout_ok(lens: &[usize]) -> bool {
    match lens {
        [_] | [4, 6, 5] | [4, 6, 4] => true,
        [body @ .., last] => body.iter().all(|&l| l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

/// Known issuer prefix with a length that issuer uses (Visa, Mastercard 51–55 and 2221–2720,
/// Amex, Discover, JCB 35 and the old 15-digit 1800/2131, Diners, UnionPay, Maestro 12–19). The
/// Maestro ranges 56–58 are shared with too many other numbers to be taken below 16 digits
/// without a card word near (`context`).
fn issuer_ok(d: &[u8], context: bool) -> bool {
    let p = |k: usize| d.iter().take(k).fold(0u32, |a, &x| a * 10 + u32::from(x));
    let (p1, p2, p3, p4) = (p(1), p(2), p(3), p(4));
    let n = d.len();
    let long = (16..=19).contains(&n);
    (p1 == 4 && matches!(n, 13 | 16 | 19))
        || (((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && n == 16)
        || ((p2 == 34 || p2 == 37) && n == 15)
        || ((p4 == 6011 || p2 == 65 || (644..=649).contains(&p3)) && long)
        || (p2 == 35 && long)
        || (matches!(p4, 1800 | 2131) && n == 15)
        || (((300..=305).contains(&p3) || p2 == 36 || p2 == 38) && (14..=19).contains(&n))
        || (p2 == 62 && long)
        || (matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6390 | 6759 | 6761 | 6762 | 6763 | 604) && n >= 12)
        || ((56..=58).contains(&p2) && (long || (context && n >= 12)))
}

/// The Luhn check, for tests that build card numbers.
#[cfg(test)]
pub(super) fn luhn_for_test(d: &[u8]) -> bool {
    luhn(d)
}

/// Luhn checksum over decimal digit values.
fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &x)| {
            let x = u32::from(x);
            match (k % 2 == 1, x * 2) {
                (false, _) => x,
                (true, y) if y > 9 => y - 9,
                (true, y) => y,
            }
        })
        .sum();
    sum % 10 == 0
}

/// US SSN at `i`: `AAA-GG-SSSS` or `AAA GG SSSS` (one separator kind), or a bare 9-digit run
/// when an SSN word speaks for it (`context`, see `near`). Area 000, 666 and 900–999, group 00 and
/// serial 0000 are never issued. Returns the end.
pub(super) fn ssn(b: &[u8], i: usize, context: bool) -> Option<usize> {
    let valid = |a: usize, g: usize, s: usize| {
        let area = number(b, a, 3);
        area != 0 && area != 666 && area < 900 && number(b, g, 2) != 0 && number(b, s, 4) != 0
    };
    match digit_run(b, i, 10) {
        3 => {
            let sep = at(b, i + 3);
            let shaped = matches!(sep, b'-' | b' ')
                && digit_run(b, i + 4, 3) == 2
                && at(b, i + 6) == sep
                && digit_run(b, i + 7, 5) == 4;
            (shaped && valid(i, i + 4, i + 7) && !glued_before(b, i, sep) && !runs_on(b, i + 11, sep)).then_some(i + 11)
        }
        9 => (context && valid(i, i + 3, i + 5) && !runs_on(b, i + 9, 0)).then_some(i + 9),
        _ => None,
    }
}

/// NANP area code: three digits, the first 2–9 (area codes never start with 0 or 1).
fn area(b: &[u8], i: usize) -> bool {
    (b'2'..=b'9').contains(&at(b, i)) && digit_run(b, i, 3) == 3
}

/// NANP exchange: three digits. Real exchanges also avoid a leading 0/1, but placeholder numbers
/// such as `555-123-4567` are written that way and must still be caught.
fn exchange(b: &[u8], i: usize) -> bool {
    digit_run(b, i, 3) == 3
}

/// NANP number body at `i`: `(NXX) NXX-XXXX` (space after `)` optional; separator `-`, `.` or
/// space) or `NXX-NXX-XXXX` with one consistent separator; `bare` also allows `NXXNXXXXXX` (only
/// used after `+1`). Returns the end and the separator (0 for bare).
fn nanp(b: &[u8], i: usize, bare: bool) -> Option<(usize, u8)> {
    if at(b, i) == b'(' {
        // Brackets say "area code" whatever its first digit (`+1 (152) 317-1611`).
        if digit_run(b, i + 1, 4) != 3 || at(b, i + 4) != b')' {
            return None;
        }
        let j = if at(b, i + 5) == b' ' { i + 6 } else { i + 5 };
        let sep = at(b, j + 3);
        let ok = exchange(b, j) && is_group_sep(sep) && digit_run(b, j + 4, 5) == 4;
        return ok.then_some((j + 8, sep));
    }
    let sep = at(b, i + 3);
    // Text in the wild writes `174-346-6196` too: with dashes or dots the 3-3-4 shape is enough;
    // spaced and bare forms keep the NANP rule that area codes start with 2–9.
    let area_ok = area(b, i) || (matches!(sep, b'-' | b'.') && digit_run(b, i, 4) == 3);
    if !area_ok {
        return None;
    }
    if is_group_sep(sep) {
        let ok = exchange(b, i + 4) && at(b, i + 7) == sep && digit_run(b, i + 8, 5) == 4;
        ok.then_some((i + 12, sep))
    } else {
        (bare && area(b, i) && digit_run(b, i, 11) == 10).then_some((i + 10, 0))
    }
}

/// End of a phone extension after the number ending at `end` (`x6149`, `ext204`, ` ext. 204`),
/// or `end` when none follows. A spaced ` x12` stays outside: that `x` may be prose.
fn extension(b: &[u8], end: usize) -> usize {
    let mut k = end;
    if at(b, k).eq_ignore_ascii_case(&b'x') {
        k += 1;
    } else if at(b, k) == b' ' || b.get(k..k + 3).is_some_and(|w| w.eq_ignore_ascii_case(b"ext")) {
        if at(b, k) == b' ' {
            k += 1;
        }
        if !b.get(k..k + 3).is_some_and(|w| w.eq_ignore_ascii_case(b"ext")) {
            return end;
        }
        k += 3;
        if at(b, k) == b'.' {
            k += 1;
        }
        if at(b, k) == b' ' {
            k += 1;
        }
    } else {
        return end;
    }
    let len = digit_run(b, k, 6);
    if (1..=5).contains(&len) && !at(b, k + len).is_ascii_alphanumeric() {
        k + len
    } else {
        end
    }
}

/// US phone led by a digit at `i`: a NANP body, optionally after country code `1` and a
/// separator (`1-800-555-0199`), optionally with an extension. A bare digit run is a phone only
/// with a phone word near (`context`). Returns the end.
pub(super) fn us_phone(b: &[u8], i: usize, context: bool) -> Option<usize> {
    // `1-800-...`, and `001-...` as the number is dialled from abroad.
    let cc = if b.get(i..i + 3) == Some(b"001") { 3 } else { usize::from(at(b, i) == b'1') };
    if cc > 0 && is_group_sep(at(b, i + cc)) {
        if let Some((end, sep)) = nanp(b, i + cc + 1, false) {
            let end = extension(b, end);
            if !runs_on(b, end, sep) && !glued_before(b, i, at(b, i + cc)) {
                return Some(end);
            }
        }
    }
    // A bare 10-digit run is a phone only when a phone word is near.
    let (end, sep) = nanp(b, i, context)?;
    let end = extension(b, end);
    (!glued_before(b, i, sep) && !runs_on(b, end, sep)).then_some(end)
}

/// US phone in the `(NXX) NXX-XXXX` form starting at the `(` at `i`. Returns the end.
pub(super) fn paren_phone(b: &[u8], i: usize) -> Option<usize> {
    if prev(b, i).is_ascii_alphanumeric() {
        return None;
    }
    let (end, sep) = nanp(b, i, false)?;
    let end = extension(b, end);
    (!runs_on(b, end, sep)).then_some(end)
}

/// Separators accepted between the groups of a national phone number.
fn is_phone_sep(c: u8) -> bool {
    matches!(c, b' ' | b'-' | b'.' | b'/')
}

/// National phone number (no country code) at `i`, in the trunk formats of common locales:
/// `041 164 9606`, `0650 126 40 10`, `07700 754 923`, `03.93.92.16.85`, `0555-3477864`,
/// `(07) 4550 6193`, `(029) 0059-366`, `030/1234 5678`, `(351) 255438748`. The trunk `0` and a
/// non-zero digit start it (or a bracketed area or country code); 9–13 digits in groups split by
/// one kind of separator (the area code may be set off by another). Taken without a phone word
/// near only when the format says it is a phone: a bracketed code, three or more groups, or two
/// groups of 10+ digits. With a phone word near (`context`) the trunk is not required
/// (`612 345 678`) and one compact run qualifies too. Returns the end.
pub(super) fn national_phone(b: &[u8], i: usize, context: bool) -> Option<usize> {
    let mut j = i;
    let mut total = 0;
    let mut groups = 0;
    let paren = at(b, i) == b'(';
    if paren {
        let len = digit_run(b, i + 1, 6);
        if !(2..=5).contains(&len) || b.get(i + 1..i + 3) == Some(b"00") || at(b, i + 1 + len) != b')' {
            return None;
        }
        total = len;
        groups = 1;
        j = i + 2 + len;
        if matches!(at(b, j), b' ' | b'-') {
            j += 1;
        }
    } else if !(context || at(b, i) == b'0' && at(b, i + 1) != b'0') {
        return None;
    }
    let mut sep = 0;
    let mut lens = [0usize; 3];
    loop {
        let len = digit_run(b, j, 14);
        if len == 0 || total + len > 13 || (groups > 0 && len < 2) {
            return None;
        }
        if let Some(slot) = lens.get_mut(groups) {
            *slot = len;
        }
        total += len;
        groups += 1;
        j += len;
        let c = at(b, j);
        // The area code may be set off by its own separator (`030/1234 5678`).
        if is_phone_sep(c) && at(b, j + 1).is_ascii_digit() && (groups == 1 || sep == 0 || c == sep) {
            if groups > 1 || paren {
                sep = c;
            }
            j += 1;
        } else {
            break;
        }
    }
    // An area code has at most 5 digits; 3-2-4 is the SSN layout.
    let [first, second, third] = lens;
    let layout_ok = (groups == 1 || paren || first <= 5) && !(groups == 3 && [first, second, third] == [3, 2, 4]);
    let shaped = paren || groups >= 3 || context || (groups == 2 && total >= 10);
    let time = at(b, j) == b':' && at(b, j + 1).is_ascii_digit();
    // Not the tail of a longer number (`3773 079660 71401`).
    let glued = is_phone_sep(prev(b, i)) && i.checked_sub(2).is_some_and(|k| at(b, k).is_ascii_digit());
    let ok = layout_ok && shaped && total >= 9 && !time && !glued && !runs_on(b, j, sep);
    ok.then_some(j)
}

/// International phone starting at the `+` at `i`. `+1` must be followed by a NANP number;
/// other country codes take digit groups split by single spaces, dashes or dots, 8–15 digits
/// in all (E.164), stopping before a group that would exceed 15. The national trunk prefix may
/// follow the country code in brackets, as European numbers are often written
/// (`+44 (0)20 7946 0958`); it is not one of the E.164 digits. Returns the end.
pub(super) fn plus_phone(b: &[u8], i: usize) -> Option<usize> {
    if prev(b, i).is_ascii_alphanumeric() {
        return None;
    }
    let c = at(b, i + 1);
    if c == b'1' {
        let j = i + 2;
        let (end, sep) = if is_group_sep(at(b, j)) { nanp(b, j + 1, false)? } else { nanp(b, j, true)? };
        let end = extension(b, end);
        return (!runs_on(b, end, sep)).then_some(end);
    }
    if !(b'2'..=b'9').contains(&c) {
        return None;
    }
    let mut j = i + 1;
    let mut end = None;
    let mut total = 0;
    loop {
        let len = digit_run(b, j, 16);
        if total + len > 15 {
            break;
        }
        let c = at(b, j + len);
        if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'@') {
            return None;
        }
        total += len;
        j += len;
        end = Some(j);
        if total == len && len <= 3 {
            if let Some(k) = trunk_prefix(b, j) {
                j = k;
                continue;
            }
            if let Some((_, area_len, k)) = bracketed_area(b, j) {
                total += area_len;
                j = k;
                continue;
            }
        }
        if is_group_sep(at(b, j)) && at(b, j + 1).is_ascii_digit() {
            j += 1;
        } else {
            break;
        }
    }
    end.filter(|_| total >= 8)
}

/// `(0)` after a country code at `j`, optionally with a space on either side and followed by
/// a digit: returns the index of that digit.
fn trunk_prefix(b: &[u8], j: usize) -> Option<usize> {
    let k = if at(b, j) == b' ' { j + 1 } else { j };
    if at(b, k) != b'(' || at(b, k + 1) != b'0' || at(b, k + 2) != b')' {
        return None;
    }
    let d = if at(b, k + 3) == b' ' { k + 4 } else { k + 3 };
    at(b, d).is_ascii_digit().then_some(d)
}

/// An area code of 2–4 digits in brackets after a country code at `j` (`+62 (183) 291 7857`),
/// optionally set off by a space on either side: returns its digits' span and the index of the
/// digit after it.
fn bracketed_area(b: &[u8], j: usize) -> Option<(usize, usize, usize)> {
    let k = if at(b, j) == b' ' { j + 1 } else { j };
    let len = digit_run(b, k + 1, 5);
    if at(b, k) != b'(' || !(2..=4).contains(&len) || at(b, k + 1 + len) != b')' {
        return None;
    }
    let d = k + 2 + len;
    let d = if matches!(at(b, d), b' ' | b'-') { d + 1 } else { d };
    at(b, d).is_ascii_digit().then_some((k + 1, len, d))
}

/// What [`iban`] found.
pub(super) enum Iban {
    /// A valid IBAN: its span.
    Valid(usize, usize),
    /// IBAN-shaped (country, check digits, registered length) but failing mod-97: its end. No
    /// value starts inside it, so the digit groups of a mistyped IBAN
    /// (`DE08 4140 7335 5610 5830 14`) are not taken for a card.
    Invalid(usize),
}

/// IBAN whose first check digit is at `i` (the country letters are the two bytes before it, at
/// or after `floor`): compact or in space-separated groups of four, the length registered for
/// the country (15–34 for countries not in the table), and mod-97 remainder 1.
pub(super) fn iban(b: &[u8], i: usize, floor: usize) -> Option<Iban> {
    let start = i.checked_sub(2).filter(|&s| s >= floor)?;
    let (c0, c1) = (at(b, start), at(b, start + 1));
    if !c0.is_ascii_uppercase()
        || !c1.is_ascii_uppercase()
        || prev(b, start).is_ascii_alphanumeric()
        || digit_run(b, i, 2) < 2
    {
        return None;
    }
    let want = country_len(c0, c1);
    let max = want.unwrap_or(34);
    let is_char = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    let mut buf = [0u8; 34];
    let mut n = 0;
    let mut j = start;
    let grouped = at(b, i + 2) == b' ';
    // Length of the current group; the first group is the country code and check digits.
    let mut group = 0;
    while n < max {
        let c = at(b, j);
        if is_char(c) && (!grouped || group < 4) {
            *buf.get_mut(n)? = c;
            n += 1;
            group += 1;
            j += 1;
        } else if grouped && c == b' ' && group == 4 && is_char(at(b, j + 1)) {
            group = 0;
            j += 1;
        } else {
            break;
        }
    }
    let len_ok = want.map_or((15..=34).contains(&n), |w| n == w);
    let check = number(b, i, 2);
    let tail = at(b, j);
    let shaped = len_ok && (2..=98).contains(&check) && !(tail.is_ascii_alphanumeric() || matches!(tail, b'_' | b'@'));
    if !shaped {
        return None;
    }
    Some(if mod97_is_one(buf.get(..n)?) { Iban::Valid(start, j) } else { Iban::Invalid(j) })
}

/// ISO 13616 check: move the first four characters to the end, read letters as 10–35, and the
/// number must leave remainder 1 modulo 97. Computed incrementally, so no big integers.
fn mod97_is_one(iban: &[u8]) -> bool {
    let Some((head, tail)) = iban.split_at_checked(4) else {
        return false;
    };
    tail.iter().chain(head).fold(0u32, |r, &c| {
        if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        }
    }) == 1
}

/// Registered IBAN length for a country (SWIFT IBAN registry), if known.
fn country_len(c0: u8, c1: u8) -> Option<usize> {
    let len = match [c0, c1] {
        [b'N', b'O'] => 15,
        [b'B', b'E'] => 16,
        [b'D', b'K'] | [b'F', b'I'] | [b'F', b'O'] | [b'G', b'L'] | [b'N', b'L'] => 18,
        [b'M', b'K'] | [b'S', b'I'] => 19,
        [b'A', b'T'] | [b'B', b'A'] | [b'E', b'E'] | [b'K', b'Z'] | [b'L', b'T'] | [b'L', b'U'] | [b'X', b'K'] => 20,
        [b'C', b'H'] | [b'H', b'R'] | [b'L', b'I'] | [b'L', b'V'] => 21,
        [b'B', b'G']
        | [b'B', b'H']
        | [b'C', b'R']
        | [b'D', b'E']
        | [b'G', b'B']
        | [b'G', b'E']
        | [b'I', b'E']
        | [b'M', b'E']
        | [b'R', b'S']
        | [b'V', b'A'] => 22,
        [b'A', b'E'] | [b'G', b'I'] | [b'I', b'L'] | [b'I', b'Q'] | [b'T', b'L'] => 23,
        [b'A', b'D']
        | [b'C', b'Z']
        | [b'E', b'S']
        | [b'M', b'D']
        | [b'P', b'K']
        | [b'R', b'O']
        | [b'S', b'A']
        | [b'S', b'E']
        | [b'S', b'K']
        | [b'T', b'N']
        | [b'V', b'G'] => 24,
        [b'P', b'T'] | [b'S', b'T'] => 25,
        [b'I', b'S'] | [b'T', b'R'] => 26,
        [b'F', b'R'] | [b'G', b'R'] | [b'I', b'T'] | [b'M', b'C'] | [b'M', b'R'] | [b'S', b'M'] => 27,
        [b'A', b'L']
        | [b'A', b'Z']
        | [b'B', b'Y']
        | [b'C', b'Y']
        | [b'D', b'O']
        | [b'G', b'T']
        | [b'H', b'U']
        | [b'L', b'B']
        | [b'P', b'L']
        | [b'S', b'V'] => 28,
        [b'B', b'R'] | [b'E', b'G'] | [b'P', b'S'] | [b'Q', b'A'] | [b'U', b'A'] => 29,
        [b'J', b'O'] | [b'K', b'W'] | [b'M', b'U'] => 30,
        [b'M', b'T'] | [b'S', b'C'] => 31,
        [b'L', b'C'] => 32,
        _ => return None,
    };
    Some(len)
}
