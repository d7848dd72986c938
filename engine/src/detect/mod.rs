//! Built-in PII detection (SPEC §4): one linear pass over the text, then cheap validators.
//!
//! The pass merges two position-ordered event streams: trigger bytes (digits, `@`, `+`, `(`,
//! `:`) found by a byte-class scan that skips plain prose, and hits of one Aho-Corasick
//! automaton over keyword/prefix triggers (API-key prefixes, the JWT start `eyJ`, password
//! keywords, SSN context words). Phone and card context words have an automaton of their own,
//! run only over the few dozen bytes before a number whose format alone does not say what it is.
//! Each event runs one parser that either reads a bounded window
//! (failure costs O(1)) or consumes what it reads (the cursor moves past it), so the whole pass is
//! linear on any input. A value is emitted only at or after the end of the previous one, so the
//! output is sorted and non-overlapping by construction; where two kinds could claim the same
//! start, the parsers are tried in priority order.

mod extra;
mod keywords;
#[cfg(all(test, feature = "std"))]
mod linear;
mod names;
mod net;
mod numbers;
#[cfg(test)]
mod tests;
pub(crate) mod unicode;

use crate::pii::PiiKind;
use alloc::sync::Arc;
use alloc::vec::Vec;
pub use extra::{Extra, MAX_ADDRESS_SPAN, MAX_CONTEXT_REACH, MAX_PERSON_SPAN};
use keywords::{Trigger, ValueRun};
pub use names::{NamesError, MAX_NAMES_ASSET};

/// How far (in bytes of the folded text, see `unicode`) detection may read ahead of a position
/// across whitespace to decide a value that starts before it: a password keyword (at most 15
/// bytes with its quotes), up to 16 blanks, `:=>`, 16 more blanks and a quoted or XML value of
/// at most `MAX_MASK` + 1 bytes plus its closing quote; a spaced number (an IBAN in groups, 42
/// bytes; a card or phone with separators and extension, under 64) and the few bytes a value's
/// end checks (`runs_on`). Runs without whitespace (keys, JWTs, e-mails, unquoted passwords)
/// end at whitespace and need no bound. Streaming evaluation holds this much back.
pub(crate) const MAX_LOOK_AHEAD: usize = 15 + 16 + 3 + 16 + keywords::MAX_MASK + 3 + 16;

/// How far (in bytes of the folded text) what precedes a value may change whether and where it
/// is found: a context word (at most 15 bytes, `social security`, plus a plural `s`) and the
/// 32-byte gap `near` allows; the 48 bytes `context_words` reads back and the 16 it may back
/// up over a cut word; an e-mail's 64-byte local part; `version` (9 bytes) before a dotted quad;
/// the 3 bytes of an escape `prev` reads. A value found differently from a later start can end
/// up to one spaced number (under 64 bytes) further; twice the sum leaves room for that.
/// Streaming evaluation keeps this much of the released text as the next window's context.
pub(crate) const MAX_LOOK_BEHIND: usize = 2 * (48 + 16 + 64);

/// One detected value: byte offsets into the input (`start < end`, both on char boundaries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// What was found.
    pub kind: PiiKind,
    /// Byte offset of the first byte of the value.
    pub start: usize,
    /// Byte offset one past the last byte of the value.
    pub end: usize,
}

/// The built-in detector. Holds the trigger automaton, built once by the caller and reused
/// for every text (the engine keeps no global state).
#[derive(Clone, Debug)]
pub struct Detector {
    triggers: Option<aho_corasick::AhoCorasick>,
    contexts: Option<aho_corasick::AhoCorasick>,
    /// Name gazetteers of the opt-in person detector (shared by clones).
    names: Arc<extra::Gazetteer>,
}

/// The detector's automata, borrowed for one text.
#[derive(Clone, Copy)]
struct Automata<'a> {
    triggers: Option<&'a aho_corasick::AhoCorasick>,
    contexts: Option<&'a aho_corasick::AhoCorasick>,
    names: &'a extra::Gazetteer,
}

impl Default for Detector {
    fn default() -> Detector {
        Detector::new()
    }
}

impl Detector {
    /// Builds the detector (about a millisecond, mostly decoding the name gazetteers: do it
    /// once, not per text).
    pub fn new() -> Detector {
        Detector {
            triggers: keywords::build_automaton(),
            contexts: keywords::build_context_automaton(),
            names: extra::Gazetteer::new(),
        }
    }

    /// Builds the detector with the person detector's name tables given at run time: the
    /// `warden-names.bin` asset (format in `detect/names.rs`), for builds without the feature
    /// `embedded-names`. A bad asset is an error naming the table and line at fault.
    pub fn with_names(tables: &[u8]) -> Result<Detector, NamesError> {
        let (first, last) = names::parse(tables)?;
        Ok(Detector {
            triggers: keywords::build_automaton(),
            contexts: keywords::build_context_automaton(),
            names: extra::Gazetteer::from_hashes(first, last),
        })
    }

    /// True when the person detector has its name tables (embedded, or given to
    /// [`with_names`](Self::with_names)); without them it finds only names with a strong cue,
    /// so services refuse a policy with `detect_extra: [person]` instead.
    pub fn has_names(&self) -> bool {
        self.names.is_loaded()
    }

    fn automata(&self) -> Automata<'_> {
        Automata { triggers: self.triggers.as_ref(), contexts: self.contexts.as_ref(), names: &self.names }
    }

    /// Finds every built-in PII value in `text`, sorted by `start`, non-overlapping.
    pub fn detect(&self, text: &str) -> Vec<Found> {
        detect_with(self.automata(), Context::default(), text)
    }

    /// Like [`detect`](Self::detect), for the value of a field named `field` (a JSON member
    /// name): when the name says what the value is (`phone`, `mobile_number`, `customerPhone`,
    /// `ssn`, `card_number`), a value at the start of `text` counts as if that word preceded it,
    /// so `{"phone": "0412 345 678"}` and `{"ssn": "123456789"}` are found.
    pub fn detect_in_field(&self, field: Option<&str>, text: &str) -> Vec<Found> {
        self.detect_with_extra(field, text, Extra::default())
    }

    /// Like [`detect_in_field`](Self::detect_in_field), plus the opt-in kinds `extra` asks for
    /// (person names, street addresses: a policy's `detect_extra`). A field named like a name
    /// (`name`, `customer_name`, `fullName`) makes a value at the start of `text` a name.
    pub fn detect_with_extra(&self, field: Option<&str>, text: &str, extra: Extra) -> Vec<Found> {
        let mut context = field.map(|name| field_context(self.automata(), name)).unwrap_or_default();
        context.extra = extra;
        context.name = field.is_some_and(name_field);
        detect_with(self.automata(), context, text)
    }
}

/// True when a field name says its value is a person's name: it has the word `name` (or is
/// `customer`, `contact`, `author`, ...) and is not the name of a thing (`username`, `file_name`).
fn name_field(field: &str) -> bool {
    let f = field.as_bytes();
    let f = f.get(..f.len().min(64)).unwrap_or_default();
    let mut low = [0u8; 64];
    let Some(low) = low.get_mut(..f.len()) else { return false };
    for (o, c) in low.iter_mut().zip(f) {
        *o = if c.is_ascii_alphabetic() { c.to_ascii_lowercase() } else { b'_' };
    }
    let low = &*low;
    const THINGS: [&[u8]; 18] = [
        b"user", b"file", b"host", b"db", b"path", b"type", b"domain", b"class", b"bucket", b"table", b"key", b"app",
        b"service", b"product", b"company", b"org", b"project", b"event",
    ];
    const PEOPLE: [&[u8]; 9] =
        [b"customer", b"contact", b"author", b"signed_by", b"recipient", b"sender", b"patient", b"person", b"owner"];
    let named = low.windows(4).any(|w| w == b"name") && !THINGS.iter().any(|t| low.windows(t.len()).any(|w| w == *t));
    named || PEOPLE.contains(&low)
}

/// Which context words a field name holds.
#[derive(Clone, Copy, Default)]
struct Context {
    phone: bool,
    card: bool,
    ssn: bool,
    /// The field name says the value is a person's name.
    name: bool,
    /// The opt-in detectors to run.
    extra: Extra,
}

/// The context words of a field name: each automaton hit that is a word of the identifier
/// (`phone`, `mobile_number`, `customerPhone`, `PHONE_NO`, `cardNumber`), at most 64 bytes read.
fn field_context(automata: Automata<'_>, name: &str) -> Context {
    let b = name.as_bytes();
    let b = b.get(..b.len().min(64)).unwrap_or_default();
    let mut c = Context::default();
    let keys = automata.triggers.into_iter().flat_map(|ac| ac.find_iter(b)).map(|h| (h, false));
    let words = automata.contexts.into_iter().flat_map(|ac| ac.find_iter(b)).map(|h| (h, true));
    for (h, word) in keys.chain(words) {
        let (s, e) = (h.start(), h.end());
        // A word of an identifier starts after a non-letter or as a camelCase hump, and ends
        // before a non-lowercase letter (or an `s`, `phones`).
        let starts =
            !prev(b, s).is_ascii_alphabetic() || (at(b, s).is_ascii_uppercase() && prev(b, s).is_ascii_lowercase());
        let after = at(b, e);
        let ends = !after.is_ascii_lowercase() || (after == b's' && !at(b, e + 1).is_ascii_lowercase());
        if !(starts && ends) {
            continue;
        }
        let t =
            if word { Some(keywords::context_trigger(h.pattern())) } else { keywords::trigger(b, h.pattern(), s, e) };
        match t {
            Some(Trigger::PhoneContext) => c.phone = true,
            Some(Trigger::CardContext) => c.card = true,
            Some(Trigger::SsnContext) => c.ssn = true,
            _ => {}
        }
    }
    c
}

/// Detection on `text`, through its Unicode look-alikes (see `unicode`): offsets point into
/// `text`.
fn detect_with(automata: Automata<'_>, context: Context, text: &str) -> Vec<Found> {
    let Some(folded) = unicode::folded(text) else {
        return detect_folded(automata, context, text);
    };
    let mut out = detect_folded(automata, context, &folded.text);
    for f in &mut out {
        (f.start, f.end) = (folded.start(f.start), folded.end(f.end));
    }
    out
}

fn detect_folded(automata: Automata<'_>, context: Context, text: &str) -> Vec<Found> {
    let b = text.as_bytes();
    // A field name's context word stands right before the text.
    let field = |on: bool| on.then_some(0);
    let mut scan = Scan {
        b,
        out: Vec::new(),
        floor: 0,
        ssn_context_end: field(context.ssn),
        value_run: ValueRun::default(),
        phone_context_end: field(context.phone),
        card_context_end: field(context.card),
        context_scanned: 0,
        contexts: automata.contexts,
    };
    let extra = context.extra;
    let mut hits = automata.triggers.map(|ac| ac.find_iter(text));
    let mut next_hit = hits.as_mut().and_then(Iterator::next);
    // Everything before `pos` has been handled; no new value may start there.
    let mut pos = 0;
    let mut next_byte = next_trigger(b, 0);
    loop {
        spend(1);
        while next_hit.is_some_and(|h| h.start() < pos) {
            next_hit = hits.as_mut().and_then(Iterator::next);
        }
        if next_byte < pos {
            next_byte = next_trigger(b, pos);
        }
        match next_hit {
            Some(h) if h.start() < next_byte => {
                next_hit = hits.as_mut().and_then(Iterator::next);
                if let Some(end) = keywords::trigger(b, h.pattern(), h.start(), h.end())
                    .and_then(|t| scan.on_hit(t, h.start(), h.end()))
                {
                    pos = end;
                }
            }
            _ if next_byte < b.len() => pos = scan.on_byte(next_byte),
            _ => break,
        }
    }
    if extra.is_empty() {
        return scan.out;
    }
    with_extra(automata.names, text, scan.out, context)
}

/// Adds the opt-in kinds to the built-in values `found`: street addresses where no built-in value
/// lies, then person names where neither does; the result stays sorted and non-overlapping.
fn with_extra(names: &extra::Gazetteer, text: &str, found: Vec<Found>, context: Context) -> Vec<Found> {
    let builtin: Vec<(usize, usize)> = found.iter().map(|f| (f.start, f.end)).collect();
    let mut spans: Vec<(usize, usize, PiiKind)> = Vec::new();
    if context.extra.street_address {
        let mut a = Vec::new();
        extra::addresses(text, &mut a);
        let mut k = 0;
        for (s, e) in a {
            while builtin.get(k).is_some_and(|&(_, be)| be <= s) {
                k += 1;
            }
            if builtin.get(k).is_none_or(|&(bs, _)| bs >= e) {
                spans.push((s, e, PiiKind::StreetAddress));
            }
        }
    }
    if context.extra.person {
        let mut taken: Vec<(usize, usize)> =
            builtin.iter().copied().chain(spans.iter().map(|&(s, e, _)| (s, e))).collect();
        taken.sort_unstable();
        let mut p = Vec::new();
        extra::persons(names, text, &taken, context.name, &mut p);
        spans.extend(p.into_iter().map(|(s, e)| (s, e, PiiKind::Person)));
    }
    let mut out: Vec<Found> = found;
    out.extend(spans.into_iter().map(|(start, end, kind)| Found { kind, start, end }));
    out.sort_unstable_by_key(|f| f.start);
    out
}

/// True for bytes that can start a digit/punctuation-led value.
fn is_trigger(c: u8) -> bool {
    matches!(c, b'0'..=b'9' | b'@' | b'+' | b'(' | b':')
}

/// Index of the first trigger byte at or after `from` (`b.len()` if none). Prose is skipped
/// eight bytes at a time: a word-wide test flags any chunk holding a byte in `(`..=`:` or `@`
/// (a superset of the triggers), and only flagged chunks are checked byte by byte.
fn next_trigger(b: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let rest = b.get(from..).unwrap_or_default();
    let mut chunks = rest.chunks_exact(8);
    let mut offset = from;
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(bytes);
        // Per-byte adds on the low 7 bits cannot carry into the next byte.
        let low7 = w & !HIGH;
        let at_least_open = low7 + ONES * (0x80 - u64::from(b'('));
        let above_colon = low7 + ONES * (0x80 - u64::from(b':') - 1);
        let in_range = at_least_open & !above_colon & !w & HIGH;
        let x = w ^ (ONES * u64::from(b'@'));
        let has_at = x.wrapping_sub(ONES) & !x & HIGH;
        if in_range | has_at != 0 {
            if let Some(k) = chunk.iter().position(|&c| is_trigger(c)) {
                return offset + k;
            }
        }
        offset += 8;
    }
    chunks.remainder().iter().position(|&c| is_trigger(c)).map_or(b.len(), |k| offset + k)
}

/// Detection state for one text.
struct Scan<'a> {
    b: &'a [u8],
    out: Vec<Found>,
    /// End of the last emitted value: look-behind never reaches before it.
    floor: usize,
    /// End of the most recent SSN context word (`SSN`, `social security`, `ss#`).
    ssn_context_end: Option<usize>,
    /// Where unquoted password values were last read to.
    value_run: ValueRun,
    /// Where the latest phone word ends (a field name's: 0, it speaks for the start of the text).
    phone_context_end: Option<usize>,
    /// Where the latest card word ends.
    card_context_end: Option<usize>,
    /// Where the context automaton stopped reading.
    context_scanned: usize,
    /// The phone and card context words.
    contexts: Option<&'a aho_corasick::AhoCorasick>,
}

impl Scan<'_> {
    /// Records a value and returns its end (the new cursor).
    fn emit(&mut self, kind: PiiKind, start: usize, end: usize) -> usize {
        self.out.push(Found { kind, start, end });
        self.floor = end;
        end
    }

    /// Handles an automaton hit at `start..end`; returns the new cursor if a value was emitted.
    fn on_hit(&mut self, t: Trigger, start: usize, end: usize) -> Option<usize> {
        let b = self.b;
        // A context word's plural `s` is part of it (`SSNs on file: `).
        let word_end = if at(b, end).eq_ignore_ascii_case(&b's') { end + 1 } else { end };
        match t {
            Trigger::SsnContext => {
                if keywords::is_ssn_context(b, start, end) {
                    self.ssn_context_end = Some(word_end);
                }
                None
            }
            // Context words come from their own automaton (`context_words`).
            Trigger::PhoneContext | Trigger::CardContext => None,
            Trigger::Password => {
                let (vs, ve) = keywords::password_value(b, start, end, &mut self.value_run)?;
                Some(self.emit(PiiKind::Password, vs, ve))
            }
            Trigger::Jwt => {
                let e = keywords::jwt(b, start)?;
                Some(self.emit(PiiKind::JwtToken, start, e))
            }
            Trigger::Key(k) => {
                let e = keywords::api_key(b, start, end, k)?;
                Some(self.emit(PiiKind::ApiKey, start, e))
            }
        }
    }

    /// Handles the trigger byte at `i`; returns the new cursor (always `> i`).
    fn on_byte(&mut self, i: usize) -> usize {
        let b = self.b;
        match at(b, i) {
            b'@' => match net::email(b, i, self.floor) {
                Some((s, e)) => self.emit(PiiKind::EmailAddress, s, e),
                None => i + 1,
            },
            b':' => match net::ipv6_at_colon(b, i, self.floor) {
                Some((s, e)) => self.emit(PiiKind::IpAddress, s, e),
                None => i + 1,
            },
            b'+' => match numbers::plus_phone(b, i) {
                Some(e) => self.emit(PiiKind::PhoneNumber, i, e),
                None => i + 1,
            },
            b'(' => match numbers::paren_phone(b, i).or_else(|| numbers::national_phone(b, i, false)) {
                Some(e) if !prev(b, i).is_ascii_alphanumeric() => self.emit(PiiKind::PhoneNumber, i, e),
                _ => i + 1,
            },
            _ => self.on_digit(i),
        }
    }

    /// The digit-led value at token start `i`, tried in priority order, with or without a card or
    /// phone word speaking for it.
    fn digit_value(&self, i: usize, card_word: bool, phone_word: bool) -> Option<(PiiKind, usize)> {
        let b = self.b;
        numbers::card(b, i, card_word)
            .map(|e| (PiiKind::CreditCard, e))
            .or_else(|| numbers::ssn(b, i, near(b, self.ssn_context_end, i)).map(|e| (PiiKind::UsSsn, e)))
            .or_else(|| numbers::us_phone(b, i, phone_word).map(|e| (PiiKind::PhoneNumber, e)))
            .or_else(|| net::ipv4(b, i).map(|e| (PiiKind::IpAddress, e)))
            .or_else(|| numbers::national_phone(b, i, phone_word).map(|e| (PiiKind::PhoneNumber, e)))
    }

    /// Whether a card word and a phone word speak for a value at `i` (see `near`): a field name's,
    /// or the latest one found before `i`. Only the latest word of each kind matters (an earlier
    /// one has it in its gap), so the context automaton reads each byte about once: from where
    /// the last look stopped (backing up over a word cut there), at most 48 bytes back.
    fn context_words(&mut self, i: usize) -> (bool, bool) {
        let b = self.b;
        let floor = i.saturating_sub(48);
        let mut from = self.context_scanned.max(floor);
        let word_byte = |c: u8| c.is_ascii_alphabetic() || c >= 0x80;
        while from > floor && from + 16 > self.context_scanned && word_byte(prev(b, from)) {
            from -= 1;
        }
        spend(i.saturating_sub(from));
        let window = b.get(from..i).unwrap_or_default();
        for h in self.contexts.into_iter().flat_map(|ac| ac.find_iter(window)) {
            let (s, e) = (from + h.start(), from + h.end());
            if !keywords::is_context_word(b, s, e) {
                continue;
            }
            // A context word's plural `s` is part of it (`phones: `).
            let word_end = Some(if at(b, e).eq_ignore_ascii_case(&b's') { e + 1 } else { e });
            match keywords::context_trigger(h.pattern()) {
                Trigger::CardContext => self.card_context_end = self.card_context_end.max(word_end),
                _ => self.phone_context_end = self.phone_context_end.max(word_end),
            }
        }
        self.context_scanned = self.context_scanned.max(i);
        (near(b, self.card_context_end, i), near(b, self.phone_context_end, i))
    }

    /// Tries the digit-led kinds in priority order at `i`; on failure skips the rest of the
    /// alphanumeric run, where no value can start (they all need a token boundary).
    fn on_digit(&mut self, i: usize) -> usize {
        let b = self.b;
        match numbers::iban(b, i, self.floor) {
            Some(numbers::Iban::Valid(s, e)) => return self.emit(PiiKind::IbanCode, s, e),
            Some(numbers::Iban::Invalid(e)) => return e,
            None => {}
        }
        if numbers::starts_token(b, i) {
            // Context words are looked for only when the number's format alone does not tell.
            let found = self.digit_value(i, false, false).or_else(|| {
                let (card_word, phone_word) = self.context_words(i);
                (card_word || phone_word).then(|| self.digit_value(i, card_word, phone_word)).flatten()
            });
            if let Some((kind, e)) = found {
                return self.emit(kind, i, e);
            }
        } else if net::ipv4_range_start(b, i) {
            if let Some(e) = net::ipv4(b, i) {
                return self.emit(PiiKind::IpAddress, i, e);
            }
        }
        run_end(b, i, usize::MAX, |c| c.is_ascii_alphanumeric())
    }
}

/// True when a context word ending at `end` speaks for a value starting at `i`: at most 32 bytes
/// and two words lie between them, no other number, and no sentence or line ends there (`Phone: `,
/// `"mobile_number": "`, `call me at `, `text me on `; not `call us about invoice `, nor
/// `... cell. See ticket `).
fn near(b: &[u8], end: Option<usize>, i: usize) -> bool {
    let Some(gap) = end.filter(|&c| c <= i && i - c <= 32).and_then(|c| b.get(c..i)) else {
        return false;
    };
    let mut words = 0;
    let mut in_word = false;
    for (k, &c) in gap.iter().enumerate() {
        let letter = c.is_ascii_alphabetic() || c >= 0x80;
        words += usize::from(letter && !in_word);
        in_word = letter;
        let next = gap.get(k + 1..).unwrap_or_default().iter().find(|&&x| x != b' ');
        let sentence_end = matches!(c, b'.' | b'!' | b'?')
            && gap.get(k + 1) == Some(&b' ')
            && next.is_some_and(u8::is_ascii_uppercase);
        // A number in between is the one the word speaks for (`tel 923019935, order 0480981098`).
        if c == b'\n' || c.is_ascii_digit() || sentence_end {
            return false;
        }
    }
    words <= 2
}

/// The byte at `i`, or 0 past the end (0 belongs to no class the parsers accept).
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// The byte before `i`, or 0 at the start of the text. The escape sequences `\n`, `\r` and `\t`
/// of text copied out of JSON or logs read as the blank they stand for, so a value right after
/// one starts a token (`\nalice@example.com` is not `nalice@...`); `\\n` is a backslash and `n`.
fn prev(b: &[u8], i: usize) -> u8 {
    match i.checked_sub(1).map_or(0, |j| at(b, j)) {
        b'n' | b'r' | b't' if i >= 2 && at(b, i - 2) == b'\\' && (i < 3 || at(b, i - 3) != b'\\') => b' ',
        c => c,
    }
}

/// End of the run of bytes matching `pred` starting at `i`, reading at most `max` bytes.
fn run_end(b: &[u8], i: usize, max: usize, pred: impl Fn(u8) -> bool) -> usize {
    let rest = b.get(i..).unwrap_or_default();
    let len = rest.iter().take(max).take_while(|&&c| pred(c)).count();
    spend(len + 1);
    i + len
}

/// Charges `units` of work to the linear-time test's counter (nothing outside that test).
/// Charged: one unit per event of the main loop and per byte read by a run scan, the only reads
/// whose length is not bounded by a constant per event.
#[inline(always)]
pub(crate) fn spend(units: usize) {
    #[cfg(all(test, feature = "std"))]
    work::add(units);
    #[cfg(not(all(test, feature = "std")))]
    let _ = units;
}

/// Per-thread work counter read by the linear-time test.
#[cfg(all(test, feature = "std"))]
mod work {
    use core::cell::Cell;

    std::thread_local! {
        static UNITS: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn add(units: usize) {
        UNITS.with(|u| u.set(u.get().saturating_add(units as u64)));
    }

    /// Returns the work counted on this thread since the last call, and resets it.
    pub(super) fn take() -> u64 {
        UNITS.with(|u| u.replace(0))
    }
}

/// Length of the digit run at `i`, counting at most `max` digits (callers pass one more than the
/// longest run they accept, so "too long" is detected without scanning long runs).
fn digit_run(b: &[u8], i: usize, max: usize) -> usize {
    run_end(b, i, max, |c| c.is_ascii_digit()) - i
}

/// Decimal value of the `len` bytes at `i` (callers pass digit runs of at most 4 digits).
fn number(b: &[u8], i: usize, len: usize) -> u32 {
    b.get(i..i + len).unwrap_or_default().iter().fold(0, |acc, &c| acc * 10 + u32::from(c.wrapping_sub(b'0')))
}
