//! Keyword- and prefix-led values: API keys, JWTs, password assignments, and the SSN context
//! words that let a bare 9-digit run count as an SSN. One Aho-Corasick automaton finds every
//! trigger in a single pass; it matches ASCII case-insensitively (password and SSN keywords are
//! case-insensitive) and the case-sensitive prefixes are re-checked on each hit.

use super::{at, prev, run_end, spend};
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind, PatternID};

/// Provider key families, each with its own body rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyKind {
    /// `sk-`, `sk-proj-`, `sk-ant-` (OpenAI, Anthropic).
    OpenAi,
    /// `sk_live_`, `sk_test_`, `rk_live_`, `rk_test_`, `pk_live_`.
    Stripe,
    /// `AKIA`/`ASIA` access key ids.
    Aws,
    /// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`.
    GitHub,
    /// `github_pat_` fine-grained tokens.
    GitHubPat,
    /// `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`.
    Slack,
    /// `AIza` Google API keys.
    Google,
    /// `glpat-` GitLab personal access tokens.
    GitLab,
    /// `npm_` npm access tokens.
    Npm,
    /// `hf_` Hugging Face access tokens.
    HuggingFace,
    /// `SG.` SendGrid API keys (`SG.<22>.<43>`).
    SendGrid,
}

/// What an automaton hit starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trigger {
    /// `eyJ`: a JWT header.
    Jwt,
    /// An API-key prefix (case-sensitive).
    Key(KeyKind),
    /// `password`, `passwd`, `pwd`, `passphrase` (any case).
    Password,
    /// `ssn`, `social security`, `ss#` (any case).
    SsnContext,
    /// A word that says a phone number follows (`phone`, `tel`, `mobile`, `Handy`, `móvil`, ...).
    PhoneContext,
    /// A word that says a card number follows (`card`, `visa`, `tarjeta`, `Karte`, ...).
    CardContext,
}

/// Key prefixes, JWT start, password and SSN words.
const KEYS: [(&str, Trigger); 32] = [
    ("eyJ", Trigger::Jwt),
    ("sk-", Trigger::Key(KeyKind::OpenAi)),
    ("sk_live_", Trigger::Key(KeyKind::Stripe)),
    ("sk_test_", Trigger::Key(KeyKind::Stripe)),
    ("rk_live_", Trigger::Key(KeyKind::Stripe)),
    ("rk_test_", Trigger::Key(KeyKind::Stripe)),
    ("pk_live_", Trigger::Key(KeyKind::Stripe)),
    ("AKIA", Trigger::Key(KeyKind::Aws)),
    ("ASIA", Trigger::Key(KeyKind::Aws)),
    ("ghp_", Trigger::Key(KeyKind::GitHub)),
    ("gho_", Trigger::Key(KeyKind::GitHub)),
    ("ghu_", Trigger::Key(KeyKind::GitHub)),
    ("ghs_", Trigger::Key(KeyKind::GitHub)),
    ("ghr_", Trigger::Key(KeyKind::GitHub)),
    ("github_pat_", Trigger::Key(KeyKind::GitHubPat)),
    ("xoxb-", Trigger::Key(KeyKind::Slack)),
    ("xoxp-", Trigger::Key(KeyKind::Slack)),
    ("xoxa-", Trigger::Key(KeyKind::Slack)),
    ("xoxr-", Trigger::Key(KeyKind::Slack)),
    ("xoxs-", Trigger::Key(KeyKind::Slack)),
    ("AIza", Trigger::Key(KeyKind::Google)),
    ("glpat-", Trigger::Key(KeyKind::GitLab)),
    ("npm_", Trigger::Key(KeyKind::Npm)),
    ("hf_", Trigger::Key(KeyKind::HuggingFace)),
    ("SG.", Trigger::Key(KeyKind::SendGrid)),
    ("password", Trigger::Password),
    ("passwd", Trigger::Password),
    ("pwd", Trigger::Password),
    ("passphrase", Trigger::Password),
    ("ssn", Trigger::SsnContext),
    ("social security", Trigger::SsnContext),
    ("ss#", Trigger::SsnContext),
];

/// Words (and field names: `phone_number`, `"mobile":`) after which a number is a phone number,
/// in the languages Warden's users write: English, German, French, Spanish, Portuguese, Italian,
/// Dutch and the Nordic languages.
#[rustfmt::skip]
const PHONE_WORDS: [&str; 49] = [
    "phone", "telephone", "tel", "mobile", "mob", "cell", "cellphone", "call", "fax", "contact", "whatsapp",
    "landline", "sms", "ph", "téléphone", "tél", "portable", "handy", "handynummer", "telefon", "telefonnummer",
    "rufnummer", "rückruf", "anrufen", "mobil", "mobilnummer", "teléfono", "telefono", "móvil", "movil", "celular",
    "cellulare", "telemóvel", "telefone", "telefoon", "mobiel", "puhelin", "tlf", "numéro", "número", "numero",
    "rappelé", "llamen", "richiamato", "teruggebeld", "text", "reach", "callback", "ring",
];

/// Words after which a digit run is a card number.
#[rustfmt::skip]
const CARD_WORDS: [&str; 21] = [
    "card", "visa", "mastercard", "amex", "maestro", "discover", "jcb", "diners", "unionpay", "cc", "credit",
    "debit", "carte", "karte", "kreditkarte", "tarjeta", "cartão", "carta", "kaart", "pan", "payment",
];

/// Every trigger string with what it starts: the trigger automaton's patterns, then the context
/// automaton's (for the linear-time test). Keys and `eyJ` must match exactly; the rest ignore
/// ASCII case.
#[cfg(all(test, feature = "std"))]
pub(super) fn patterns() -> impl Iterator<Item = (&'static str, Trigger)> {
    KEYS.iter()
        .copied()
        .chain(PHONE_WORDS.iter().map(|&w| (w, Trigger::PhoneContext)))
        .chain(CARD_WORDS.iter().map(|&w| (w, Trigger::CardContext)))
}

/// True when a context-word hit at `start..end` is a word, or the first word of a field name
/// (`phone`, `Phone:`, `phones`, `mobile_number`, `tel.`), not part of another word (`telex`,
/// `cellar`, `recall`).
pub(super) fn is_context_word(b: &[u8], start: usize, end: usize) -> bool {
    let after = at(b, end);
    let plural = after.eq_ignore_ascii_case(&b's') && !at(b, end + 1).is_ascii_alphabetic();
    !prev(b, start).is_ascii_alphanumeric() && (!after.is_ascii_alphabetic() || plural) && after < 0x80
}

/// Builds the trigger automaton (`None` only if building failed, which the fixed pattern set
/// rules out; detection then simply finds no keyword-led values).
pub(super) fn build_automaton() -> Option<AhoCorasick> {
    // A DFA: no case-insensitive prefilter exists, so raw scan speed decides.
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .kind(Some(AhoCorasickKind::DFA))
        .build(KEYS.iter().map(|p| p.0))
        .ok()
}

/// Builds the automaton of phone and card context words. It is not part of the trigger scan:
/// these words are common in prose (`call`, `card`, `contact`), so they are looked for only in the
/// few dozen bytes before a number that needs them.
pub(super) fn build_context_automaton() -> Option<AhoCorasick> {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(PHONE_WORDS.iter().chain(CARD_WORDS.iter()))
        .ok()
}

/// What a hit of pattern `id` of the context automaton says.
pub(super) fn context_trigger(id: PatternID) -> Trigger {
    if id.as_usize() < PHONE_WORDS.len() {
        Trigger::PhoneContext
    } else {
        Trigger::CardContext
    }
}

/// The trigger for a hit of pattern `id` at `start..end`, or `None` when a case-sensitive
/// prefix matched only case-insensitively (`Asia`, `SK-`).
pub(super) fn trigger(b: &[u8], id: PatternID, start: usize, end: usize) -> Option<Trigger> {
    let (pattern, t) = *KEYS.get(id.as_usize())?;
    let exact = matches!(t, Trigger::Jwt | Trigger::Key(_));
    (!exact || b.get(start..end) == Some(pattern.as_bytes())).then_some(t)
}

/// Characters of key bodies and of the token a key must start (`-`/`_` included so that a
/// prefix inside a longer token such as `task-force` or `a-sk-...` is not a key start).
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Provider API key whose prefix is at `start..end`: the body after the prefix must have the
/// provider's alphabet and length. Returns the end of the key.
pub(super) fn api_key(b: &[u8], start: usize, end: usize, kind: KeyKind) -> Option<usize> {
    if is_token_char(prev(b, start)) {
        return None;
    }
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    let (e, ok) = match kind {
        KeyKind::OpenAi => {
            let e = run_end(b, end, usize::MAX, is_token_char);
            let body = b.get(end..e).unwrap_or_default();
            // Prose like `sk-this-is-not-a-key-at-all` has no digits; real keys are random base62.
            let mixed = body.iter().any(u8::is_ascii_digit) && body.iter().any(u8::is_ascii_alphabetic);
            (e, body.len() >= 20 && mixed)
        }
        KeyKind::Stripe => {
            let e = run_end(b, end, usize::MAX, alnum);
            (e, e - end >= 16)
        }
        KeyKind::Aws => {
            let e = run_end(b, end, 17, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
            (e, e - end == 16 && !at(b, e).is_ascii_alphanumeric())
        }
        KeyKind::GitHub => {
            let e = run_end(b, end, 37, alnum);
            (e, e - end == 36)
        }
        KeyKind::GitHubPat => {
            let e = run_end(b, end, usize::MAX, |c| alnum(c) || c == b'_');
            (e, e - end >= 22)
        }
        KeyKind::Slack => {
            let e = run_end(b, end, usize::MAX, |c| alnum(c) || c == b'-');
            let body = b.get(end..e).unwrap_or_default();
            (e, body.len() >= 10 && body.iter().any(u8::is_ascii_digit))
        }
        KeyKind::Google => {
            let e = run_end(b, end, 36, is_token_char);
            (e, e - end == 35)
        }
        KeyKind::GitLab => {
            let e = run_end(b, end, usize::MAX, is_token_char);
            (e, e - end >= 20)
        }
        KeyKind::Npm => {
            let e = run_end(b, end, 37, alnum);
            (e, e - end == 36)
        }
        KeyKind::HuggingFace => {
            let e = run_end(b, end, 35, alnum);
            (e, e - end == 34)
        }
        KeyKind::SendGrid => {
            let id_end = run_end(b, end, 23, is_token_char);
            let e = run_end(b, id_end + 1, 44, is_token_char);
            (e, id_end - end == 22 && at(b, id_end) == b'.' && e - id_end == 44)
        }
    };
    ok.then_some(e)
}

/// base64url alphabet (JWT segments are unpadded base64url).
fn b64_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// True for base64url characters.
fn is_b64(c: u8) -> bool {
    b64_value(c).is_some()
}

/// A short string packed big-endian, to compare against the rolling window of decoded bytes.
const fn tag(mut s: &[u8]) -> u64 {
    let mut v = 0u64;
    while let [c, rest @ ..] = s {
        v = (v << 8) | *c as u64;
        s = rest;
    }
    v
}

/// Decodes a JWT header segment and checks it is JSON object text naming `"alg"` or `"typ"`.
/// Returns whether it declares `"none"` (an unsigned token may have an empty signature).
fn jwt_header(seg: &[u8]) -> Option<bool> {
    if seg.len() % 4 == 1 {
        return None;
    }
    let (mut acc, mut bits) = (0u32, 0u32);
    let (mut first, mut last) = (0u8, 0u8);
    let mut window = 0u64;
    let (mut keyed, mut none) = (false, false);
    for &c in seg {
        acc = (acc << 6) | b64_value(c)?;
        bits += 6;
        if bits < 8 {
            continue;
        }
        bits -= 8;
        let byte = ((acc >> bits) & 0xFF) as u8;
        acc &= (1 << bits) - 1;
        if byte.is_ascii_whitespace() {
            continue;
        }
        // JSON text has no raw control bytes; random base64 decodes to plenty of them.
        if byte < 0x20 {
            return None;
        }
        if first == 0 {
            first = byte;
        }
        last = byte;
        window = (window << 8) | u64::from(byte);
        let w5 = window & 0xFF_FFFF_FFFF;
        keyed |= w5 == tag(b"\"alg\"") || w5 == tag(b"\"typ\"");
        none |= window & 0xFFFF_FFFF_FFFF == tag(b"\"none\"");
    }
    (first == b'{' && last == b'}' && keyed).then_some(none)
}

/// JWT starting at the `eyJ` at `start`: three base64url segments split by dots (header and
/// payload at least 10 characters, signature at least 10 or empty for `"none"`), header decoding
/// to a JSON object with `"alg"` or `"typ"`. Returns the end.
pub(super) fn jwt(b: &[u8], start: usize) -> Option<usize> {
    let p = prev(b, start);
    if is_b64(p) || p == b'.' {
        return None;
    }
    let h_end = run_end(b, start, usize::MAX, is_b64);
    let p_start = h_end + 1;
    if h_end - start < 10 || at(b, h_end) != b'.' {
        return None;
    }
    let p_end = run_end(b, p_start, usize::MAX, is_b64);
    let s_start = p_end + 1;
    if p_end - p_start < 10 || at(b, p_end) != b'.' {
        return None;
    }
    let s_end = run_end(b, s_start, usize::MAX, is_b64);
    let unsigned = jwt_header(b.get(start..h_end)?)?;
    (s_end - s_start >= 10 || (s_end == s_start && unsigned)).then_some(s_end)
}

/// True when an SSN context hit at `start..end` is a word (`SSN:`, `SSNs`, `ss#`), not part of
/// one (`carelessness`).
pub(super) fn is_ssn_context(b: &[u8], start: usize, end: usize) -> bool {
    let after = at(b, end);
    let plural = after.eq_ignore_ascii_case(&b's') && !at(b, end + 1).is_ascii_alphanumeric();
    !prev(b, start).is_ascii_alphanumeric() && (!after.is_ascii_alphabetic() || plural)
}

/// Words that follow "password is" in prose rather than a password.
#[rustfmt::skip]
const NOT_PASSWORDS: [&str; 40] = [
    "a", "an", "the", "not", "now", "also", "still", "only", "never", "always", "being", "required",
    "incorrect", "invalid", "wrong", "correct", "valid", "too", "expired", "empty", "missing",
    "set", "reset", "changed", "updated", "case", "weak", "strong", "stored", "hashed", "encrypted",
    "saved", "sent", "hidden", "optional", "mandatory", "secure", "short", "long", "same",
];

/// The last whitespace-free run an unquoted password value was read from. A later keyword inside
/// the same run (`pwd=${pwd=${...`, where every value is rejected) reuses its end instead of
/// rescanning to it, so the values of all keywords cost one read of the text in all.
#[derive(Default)]
pub(super) struct ValueRun {
    /// Where the run was first read from.
    start: usize,
    /// Its end (whitespace or the end of the text).
    end: usize,
    /// Its end without trailing punctuation, never before `start`.
    trimmed: usize,
}

impl ValueRun {
    /// End of the unquoted value starting at `j`: the whitespace-free run, without trailing
    /// punctuation.
    fn value_end(&mut self, b: &[u8], j: usize) -> usize {
        if !(self.start <= j && j < self.end) {
            let end = run_end(b, j, usize::MAX, |c| !c.is_ascii_whitespace());
            let mut k = end;
            while k > j && matches!(prev(b, k), b',' | b';' | b'.' | b')' | b']' | b'}' | b'"' | b'\'' | b'>') {
                k -= 1;
            }
            spend(end - k);
            *self = ValueRun { start: j, end, trimmed: k };
        }
        // Trimming from a later start stops at that start or where trimming from `start` stopped.
        self.trimmed.max(j)
    }
}

/// Longest value the whole-value checks (masks, placeholders, plain words) look at: longer values
/// are never stand-ins, and the bound keeps the work per keyword constant.
pub(super) const MAX_MASK: usize = 256;

/// Skips spaces and tabs (at most 16, which bounds the work per keyword).
fn skip_blanks(b: &[u8], i: usize) -> usize {
    run_end(b, i, 16, |c| c == b' ' || c == b'\t')
}

/// The value of a password assignment whose keyword is at `start..end`: `password: x`,
/// `pwd=x`, `passwd := x`, `"password": "x"`, `Password is x`. The keyword must be a word (`_`
/// and `-` count as separators, so `db_password=` qualifies and `mypasswords` does not). The
/// value runs to whitespace, without trailing punctuation, or to the closing quote. Returns it.
pub(super) fn password_value(b: &[u8], start: usize, end: usize, run: &mut ValueRun) -> Option<(usize, usize)> {
    let (before, after) = (prev(b, start), at(b, end));
    // After `/` or `\\` it is a path (`/etc/passwd: ...`), not a keyword.
    if before.is_ascii_alphanumeric()
        || matches!(before, b'/' | b'\\')
        || after.is_ascii_alphanumeric()
        || after == b'_'
    {
        return None;
    }
    if before == b'<' && after == b'>' {
        return xml_value(b, end + 1);
    }
    // The closing quote of a quoted key (`"password": ...`).
    let key_end = if matches!(after, b'"' | b'\'') { end + 1 } else { end };
    let mut j = skip_blanks(b, key_end);
    let mut prose = false;
    // A command-line flag takes its value after a blank: `docker login --password s3cret`.
    let flag = before == b'-' && prev(b, start - 1) == b'-' && j > key_end;
    match at(b, j) {
        b':' | b'=' => {
            j += 1;
            if matches!(at(b, j), b'=' | b'>') {
                j += 1;
            }
        }
        b'i' | b'I'
            if j > key_end && at(b, j + 1).eq_ignore_ascii_case(&b's') && matches!(at(b, j + 2), b' ' | b'\t') =>
        {
            j += 2;
            prose = true;
        }
        c if flag && !c.is_ascii_whitespace() => {}
        _ => return None,
    }
    j = skip_blanks(b, j);
    let q = at(b, j);
    if matches!(q, b'"' | b'\'') {
        let vs = j + 1;
        let mut k = vs;
        // Bounded so an unclosed quote costs O(1); JSON escapes are skipped.
        while k < b.len() && k - vs <= 256 {
            match at(b, k) {
                c if c == q => {
                    let value = b.get(vs..k).unwrap_or_default();
                    return (!value.is_empty() && !is_placeholder(value) && !is_stand_in(value)).then_some((vs, k));
                }
                b'\n' | b'\r' => return None,
                b'\\' => k += 2,
                _ => k += 1,
            }
        }
        return None;
    }
    let k = run.value_end(b, j);
    let value = b.get(j..k)?;
    let placeholder = b.get(j..=k).is_some_and(is_placeholder);
    let literal =
        ["null", "true", "false", "none", "undefined"].iter().any(|w| w.as_bytes().eq_ignore_ascii_case(value));
    let stop_word = prose && NOT_PASSWORDS.iter().any(|w| w.as_bytes().eq_ignore_ascii_case(value));
    // After a flag, a plain word is prose about the flag (`use --password to set it`).
    let word = flag && value.len() <= MAX_MASK && value.iter().all(u8::is_ascii_alphabetic);
    (!value.is_empty() && !placeholder && !literal && !stop_word && !word && !is_stand_in(value)).then_some((j, k))
}

/// The text of an XML element whose start tag ends at `vs` (`<password>s3cret</password>`):
/// up to the next `<`, which must open an end tag; bounded like a quoted value.
fn xml_value(b: &[u8], vs: usize) -> Option<(usize, usize)> {
    let len = b.get(vs..)?.iter().take(257).position(|&c| matches!(c, b'<' | b'\n' | b'\r'))?;
    let value = b.get(vs..vs + len)?;
    let closed = at(b, vs + len) == b'<' && at(b, vs + len + 1) == b'/';
    (closed && !value.is_empty() && !is_stand_in(value)).then_some((vs, vs + len))
}

/// True for values that stand in for a password rather than being one: a mask (`********`,
/// `xxxxxx`, `•••`), a reference to one held elsewhere (`${DB_PASSWORD}`, `{{ db_pass }}`,
/// `$(cat secret)`, `$DB_PASSWORD`) or a reversible token (an encrypted password must stay
/// restorable through later checks).
fn is_stand_in(v: &[u8]) -> bool {
    if crate::reversible::is_token(v) {
        return true;
    }
    if v.len() > MAX_MASK {
        // Only a reference prefix can be checked on a long value in constant time.
        return matches!(v, [b'$', b'{' | b'(', ..] | [b'{', b'{', ..]);
    }
    let masked = |c: u8| v.iter().all(|&x| x == c);
    // Prefixes only: the unquoted value has lost its closing bracket to the punctuation trim.
    let reference = match v {
        [b'$', b'{' | b'(', ..] | [b'{', b'{', ..] => true,
        [b'$', rest @ ..] => {
            !rest.is_empty() && rest.iter().all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        }
        _ => false,
    };
    // `•` is E2 80 A2 in UTF-8.
    let bullets = !v.is_empty() && v.chunks(3).all(|c| c == "\u{2022}".as_bytes());
    reference || bullets || masked(b'*') || (v.len() >= 3 && (masked(b'x') || masked(b'X')))
}

/// True for an already-redacted value such as `<PASSWORD>`, so redacted text stays stable.
fn is_placeholder(v: &[u8]) -> bool {
    v.len() <= MAX_MASK + 2
        && matches!(v, [b'<', mid @ .., b'>'] if !mid.is_empty() && mid.iter().all(|&c| c.is_ascii_uppercase() || c == b'_'))
}
