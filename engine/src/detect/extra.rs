//! Opt-in detectors (issue 14): person names (`PII:person`) and street addresses
//! (`PII:street_address`). No model at run time: name gazetteers (US Census 1990 first names and
//! surnames, `tables/`), capitalization, honorifics and cue words, and an address grammar
//! (house number + street words + suffix, or street word + number, unit, city/state/postcode).
//!
//! One forward pass per detector over the text. Each candidate reads a window bounded by
//! [`MAX_PERSON_SPAN`] / [`MAX_ADDRESS_SPAN`] ahead and [`MAX_CONTEXT_REACH`] behind, and a
//! rejected candidate moves the cursor past its first word, so the work is linear in the text.

use super::{at, prev, spend};
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Longest person span, in bytes (`Dr. Maria de los Angeles Fernández-García` fits).
pub const MAX_PERSON_SPAN: usize = 96;
/// Longest street-address span, in bytes (street, unit, city, state/region and postcode).
pub const MAX_ADDRESS_SPAN: usize = 160;
/// How far before a span the opt-in detectors look for cue words (`my name is`, `Dear`, the
/// closing line of a signature, the street word before a house number), in bytes.
pub const MAX_CONTEXT_REACH: usize = 64;

/// Longest word looked up or accepted as a name or street word.
const MAX_WORD: usize = 32;
/// Most tokens in a name (`Maria de los Angeles Fernández` is five).
const MAX_NAME_TOKENS: usize = 6;

/// Which opt-in detectors run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extra {
    /// `PII:person`.
    pub person: bool,
    /// `PII:street_address`.
    pub street_address: bool,
}

impl Extra {
    /// Every opt-in detector.
    pub const ALL: Extra = Extra { person: true, street_address: true };

    /// True when no opt-in detector runs.
    pub fn is_empty(self) -> bool {
        !(self.person || self.street_address)
    }
}

/// The name gazetteers: 64-bit hashes of the folded names, sorted (binary search).
#[derive(Debug)]
pub(super) struct Gazetteer {
    first: Vec<u64>,
    last: Vec<u64>,
}

impl Gazetteer {
    /// The tables compiled into the engine (feature `embedded-names`).
    #[cfg(feature = "embedded-names")]
    pub(super) fn new() -> Arc<Gazetteer> {
        Arc::new(Gazetteer {
            first: decode(include_str!("tables/first_names.txt")),
            last: decode(include_str!("tables/surnames.txt")),
        })
    }

    /// Without `embedded-names` the tables come at run time ([`Gazetteer::from_hashes`]);
    /// until then no name is known.
    #[cfg(not(feature = "embedded-names"))]
    pub(super) fn new() -> Arc<Gazetteer> {
        Arc::new(Gazetteer { first: Vec::new(), last: Vec::new() })
    }

    /// Tables decoded at run time (`super::names`), hashes as [`decode`] makes them.
    pub(super) fn from_hashes(mut first: Vec<u64>, mut last: Vec<u64>) -> Arc<Gazetteer> {
        first.sort_unstable();
        last.sort_unstable();
        Arc::new(Gazetteer { first, last })
    }

    /// True when tables are loaded (embedded or given at run time).
    pub(super) fn is_loaded(&self) -> bool {
        !(self.first.is_empty() || self.last.is_empty())
    }

    fn has(list: &[u64], word: &[u8]) -> bool {
        // Hyphenated names count when any part is known (`Smith-Jones`, `Jean-Luc`).
        word.split(|&c| c == b'-').any(|part| key(part).is_some_and(|h| list.binary_search(&h).is_ok()))
    }
}

/// Decodes a front-coded table (see scripts/corpus/gazetteer.py) into sorted hashes.
#[cfg(feature = "embedded-names")]
fn decode(table: &str) -> Vec<u64> {
    // The hash state after each prefix of the current name (`[0]` is the empty name): a line
    // hashes only the bytes it does not share with the name before it (`fnv` of the name).
    let mut states: Vec<u64> = alloc::vec![FNV_BASIS];
    let mut out = Vec::new();
    for line in table.as_bytes().split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(shared) = line.first().and_then(|&d| char::from(d).to_digit(36)) else {
            continue;
        };
        states.truncate(shared as usize + 1);
        let mut h = states.last().copied().unwrap_or(FNV_BASIS);
        for &c in line.get(1..).unwrap_or_default() {
            h = fnv_step(h, c);
            states.push(h);
        }
        out.push(h);
    }
    out.sort_unstable();
    out
}

const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv_step(h: u64, c: u8) -> u64 {
    (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3)
}

pub(super) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_BASIS, |h, &c| fnv_step(h, c))
}

/// The lookup key of a word: lower-case ASCII with Latin accents dropped and apostrophes left
/// out (`O'Brien` → `obrien`, `Müller` → `muller`); `None` for other scripts or long words.
fn key(word: &[u8]) -> Option<u64> {
    let s = core::str::from_utf8(word).ok()?;
    let mut buf = [0u8; MAX_WORD];
    let mut n = 0;
    for c in s.chars() {
        if matches!(c, '\'' | '’') {
            continue;
        }
        let a = fold(c)?;
        *buf.get_mut(n)? = a;
        n += 1;
        if c == 'ß' {
            *buf.get_mut(n)? = b's';
            n += 1;
        }
    }
    Some(fnv(buf.get(..n)?))
}

/// A Latin letter as its lower-case ASCII base letter.
fn fold(c: char) -> Option<u8> {
    if c.is_ascii_alphabetic() {
        return Some(c.to_ascii_lowercase() as u8);
    }
    let base = match c.to_lowercase().next()? {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' | 'ă' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'ď' | 'đ' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => 'e',
        'ğ' => 'g',
        'ì' | 'í' | 'î' | 'ï' | 'ı' => 'i',
        'ł' | 'ľ' => 'l',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ő' => 'o',
        'ř' => 'r',
        'ś' | 'š' | 'ş' | 'ß' => 's',
        'ť' | 'ţ' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ů' | 'ű' => 'u',
        'ý' | 'ÿ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        _ => return None,
    };
    Some(base as u8)
}

/// True for a byte that continues a word: ASCII letters and any byte of a non-ASCII character
/// (names and street words in other scripts and with accents).
fn letter(c: u8) -> bool {
    c.is_ascii_alphabetic() || c >= 0x80
}

/// The first character at `i`.
fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

fn upper_at(text: &str, i: usize) -> bool {
    char_at(text, i).is_some_and(char::is_uppercase)
}

/// End of the word at `i`: letters, with `'` and `-` between letters (`O'Brien`,
/// `Jean-Luc`); at most `MAX_WORD` + 1 bytes are read.
fn word_end(b: &[u8], i: usize) -> usize {
    // Non-ASCII bytes count as letters, so `’` is read with the word like `'`.
    let window = b.get(i..b.len().min(i + MAX_WORD + 1)).unwrap_or_default();
    let mut j = 0;
    loop {
        // A run of letters, then a joining `'` or `-` with a letter after it continues the word.
        j += letter_run(window.get(j..).unwrap_or_default());
        match window.get(j) {
            Some(b'\'' | b'-') if j > 0 && letter(at(b, i + j + 1)) => j += 1,
            _ => return i + j,
        }
    }
}

/// Length of the run of letters (`letter`) that starts `w`. Every word of the text is read here,
/// so eight bytes are tested at a time.
fn letter_run(w: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let mut n = 0;
    let mut chunks = w.chunks_exact(8);
    for chunk in &mut chunks {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else { break };
        let x = u64::from_le_bytes(bytes);
        // ASCII folded to lower case with bit 7 cleared, so the per-byte adds below never carry
        // into the next byte; bit 7 of each byte then says `>= 'a'`, and `> 'z'`.
        let low = (x | (ONES * 0x20)) & !HIGH;
        let from_a = (low + ONES * u64::from(0x80 - b'a')) & HIGH;
        let past_z = (low + ONES * u64::from(0x80 - b'z' - 1)) & HIGH;
        let letters = (x & HIGH) | (from_a & !past_z);
        let others = !letters & HIGH;
        if others != 0 {
            return n + (others.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + chunks.remainder().iter().position(|&c| !letter(c)).unwrap_or(chunks.remainder().len())
}

/// The word at `i..e`, ASCII-lower-cased into `buf` (for list look-ups); empty when too long.
fn lower<'a>(b: &[u8], i: usize, e: usize, buf: &'a mut [u8; MAX_WORD]) -> &'a [u8] {
    let Some(w) = b.get(i..e).filter(|w| w.len() <= MAX_WORD) else {
        return &[];
    };
    let Some(out) = buf.get_mut(..w.len()) else {
        return &[];
    };
    for (o, c) in out.iter_mut().zip(w) {
        *o = c.to_ascii_lowercase();
    }
    out
}

// --- word lists ---------------------------------------------------------------------------

// The lists a lower-cased word is on, as bits of one `u32` (see [`lists`]).
const HONORIFIC: u32 = 1 << 0;
const GREETING: u32 = 1 << 1;
const STRONG_CUE: u32 = 1 << 2;
const WEAK_CUE: u32 = 1 << 3;
const STOP_WORD: u32 = 1 << 4;
const ORGANISATION: u32 = 1 << 5;
const ARTICLE: u32 = 1 << 6;
const NAME_SUFFIX: u32 = 1 << 7;
const PARTICLE: u32 = 1 << 8;
const NEWLINE_CUE: u32 = 1 << 9;
const COPULA: u32 = 1 << 10;
const SUBJECT: u32 = 1 << 11;
const SUFFIX: u32 = 1 << 12;
const ABBREVIATION: u32 = 1 << 13;
const COUNTER: u32 = 1 << 14;
const PREFIX: u32 = 1 << 15;
const NUMBER_PREFIX: u32 = 1 << 16;
const STREET_WORD: u32 = 1 << 17;
const UNIT: u32 = 1 << 18;
const NAME_PARTICLE: u32 = 1 << 19;
const ORDINAL: u32 = 1 << 20;

/// Every list a word is looked up in, with its bit.
const LISTS: &[(&[&str], u32)] = &[
    (HONORIFICS, HONORIFIC),
    (GREETINGS, GREETING),
    (STRONG_CUES, STRONG_CUE),
    (WEAK_CUES, WEAK_CUE),
    (STOP, STOP_WORD),
    (ORGANISATIONS, ORGANISATION),
    (ARTICLES, ARTICLE),
    (NAME_SUFFIXES, NAME_SUFFIX),
    (PARTICLES, PARTICLE),
    (NEWLINE_CUES, NEWLINE_CUE),
    (COPULAS, COPULA),
    (SUBJECTS, SUBJECT),
    (SUFFIXES, SUFFIX),
    (ABBREVIATIONS, ABBREVIATION),
    (COUNTERS, COUNTER),
    (PREFIXES, PREFIX),
    (NUMBER_PREFIXES, NUMBER_PREFIX),
    (STREET_WORDS, STREET_WORD),
    (UNITS, UNIT),
    (NAME_PARTICLES, NAME_PARTICLE),
    (ORDINALS, ORDINAL),
];

/// Slots of [`WORDS`]: a power of two, at least twice the number of distinct list words.
const SLOTS: usize = 2048;

/// One slot of [`WORDS`]: a list word (empty when the slot is free) and the lists it is on.
#[derive(Clone, Copy)]
struct Slot {
    word: &'static [u8],
    lists: u32,
}

/// The hash table: slots, and beside them 16 bits of each slot's hash (0 when free) in a 4 KB
/// array that stays in the L1 cache, so most words, which are on no list, are turned away
/// without reading a slot or comparing bytes.
struct Table {
    tags: [u16; SLOTS],
    slots: [Slot; SLOTS],
}

/// The tag of a word hash: bits the slot index does not use, never 0.
const fn tag(h: usize) -> u16 {
    ((h >> 16) as u16) | 1
}

/// Every list word in one open-addressing hash table (FNV-1a, linear probing), filled at compile
/// time: a look-up is one hash and about one comparison whatever the lists' lengths (they were
/// scanned one entry at a time per capitalized word), and nothing is built at run time.
static WORDS: Table = table();

/// The lists the lower-cased word `w` is on (0 for none, and for the empty word).
fn lists(w: &[u8]) -> u32 {
    if w.is_empty() {
        return 0;
    }
    let mut s = word_hash(w);
    let t = tag(s);
    for _ in 0..SLOTS {
        let i = s & (SLOTS - 1);
        match WORDS.tags.get(i) {
            Some(&x) if x == t => {
                if let Some(slot) = WORDS.slots.get(i).filter(|slot| slot.word == w) {
                    return slot.lists;
                }
            }
            Some(0) | None => break,
            Some(_) => {}
        }
        s = s.wrapping_add(1);
    }
    0
}

const fn word_hash(w: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut rest = w;
    while let [c, tail @ ..] = rest {
        h = (h ^ *c as u64).wrapping_mul(0x0100_0000_01b3);
        rest = tail;
    }
    (h ^ (h >> 32)) as usize
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a, b);
    while let ([x, at @ ..], [y, bt @ ..]) = (a, b) {
        if *x != *y {
            return false;
        }
        (a, b) = (at, bt);
    }
    true
}

/// Builds [`WORDS`] from [`LISTS`] (a word on several lists gets all their bits). Compile-time
/// only: a table too small for the lists fails the build (at most half full, so probing ends).
const fn table() -> Table {
    let mut t = Table { tags: [0; SLOTS], slots: [Slot { word: &[], lists: 0 }; SLOTS] };
    let mut used = 0;
    let mut lists = LISTS;
    while let [(list, bit), more @ ..] = lists {
        let mut words = *list;
        while let [word, rest @ ..] = words {
            let w = word.as_bytes();
            let mut s = word_hash(w);
            assert!(used * 2 < SLOTS, "extra::SLOTS is too small for the word lists");
            loop {
                let (_, from) = t.slots.split_at_mut(s & (SLOTS - 1));
                let Some(slot) = from.first_mut() else { break };
                if slot.word.is_empty() {
                    *slot = Slot { word: w, lists: *bit };
                    let (_, tags) = t.tags.split_at_mut(s & (SLOTS - 1));
                    if let Some(x) = tags.first_mut() {
                        *x = tag(word_hash(w));
                    }
                    used += 1;
                    break;
                }
                if same(slot.word, w) {
                    slot.lists |= *bit;
                    break;
                }
                s = s.wrapping_add(1);
            }
            words = rest;
        }
        lists = more;
    }
    t
}

// --- person names -------------------------------------------------------------------------

/// Titles before a name (lower case, without the optional `.`).
const HONORIFICS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "mister", "doctor", "herr", "frau", "hr", "fr",
    "dott", "sig", "sigra", "signor", "signora", "sr", "sra", "srta", "señor", "señora", "don", "doña", "dña", "mme",
    "mlle", "monsieur", "madame", "dhr", "mevr", "mw", "pan", "pani", "rev", "capt", "lord", "lady",
];

/// Greetings and closings that name the person who follows them.
const GREETINGS: &[&str] = &[
    "dear",
    "hi",
    "hello",
    "hey",
    "hallo",
    "liebe",
    "lieber",
    "bonjour",
    "salut",
    "hola",
    "ciao",
    "olá",
    "oi",
    "beste",
    "cher",
    "chère",
    "caro",
    "cara",
    "querido",
    "querida",
    "estimado",
    "estimada",
    "gentile",
    "prezado",
    "prezada",
    "thanks",
    "thank",
    "attn",
    "sehr",
    "geehrte",
    "geehrter",
    "buongiorno",
    "bom",
    "dia",
];

/// Words before a name that say a name follows (a single word is then taken as a name).
const STRONG_CUES: &[&str] = &[
    "name",
    "names",
    "nom",
    "nombre",
    "nome",
    "naam",
    "heiße",
    "heisse",
    "appelle",
    "llamo",
    "chiamo",
    "chamo",
    "signed",
    "attn",
    "dear",
    "hi",
    "hello",
    "hey",
    "hallo",
    "liebe",
    "lieber",
    "bonjour",
    "hola",
    "ciao",
    "olá",
    "oi",
    "beste",
    "cher",
    "chère",
    "caro",
    "cara",
    "querido",
    "querida",
    "estimado",
    "estimada",
    "gentile",
    "prezado",
    "prezada",
    "thanks",
    "contact",
    "kontakt",
    "contacto",
    "contatto",
    "contato",
    "customer",
    "kunde",
    "kundin",
    "client",
    "cliente",
    "klant",
    "patient",
    "patiente",
    "paciente",
    "lead",
    "employee",
    "tenant",
    "assignee",
    "owner",
    "author",
    "requester",
    "reporter",
    "agent",
    "user",
];

/// Words before a name that make a run of two or more capitalized words a name even when
/// neither word is in the gazetteers (`escalated by Wiremu Tane`).
const WEAK_CUES: &[&str] =
    &["by", "spoke", "met", "called", "ask", "asked", "told", "cc", "von", "par", "por", "per", "door", "da"];

/// Capitalized words that are not names, or not the whole name, however the gazetteers read
/// them: sentence openers, greetings, places, organisations, days and months, labels.
const STOP: &[&str] = &[
    "the",
    "this",
    "that",
    "these",
    "those",
    "there",
    "please",
    "thank",
    "thanks",
    "you",
    "your",
    "yours",
    "our",
    "we",
    "i",
    "it",
    "he",
    "she",
    "they",
    "hi",
    "hello",
    "hey",
    "dear",
    "good",
    "best",
    "kind",
    "warm",
    "regards",
    "cheers",
    "sincerely",
    "morning",
    "afternoon",
    "evening",
    "night",
    "team",
    "support",
    "customer",
    "customers",
    "client",
    "service",
    "services",
    "billing",
    "account",
    "accounts",
    "order",
    "orders",
    "invoice",
    "ticket",
    "card",
    "phone",
    "mobile",
    "email",
    "mail",
    "note",
    "notes",
    "subject",
    "re",
    "fwd",
    "fw",
    "from",
    "to",
    "cc",
    "bcc",
    "date",
    "total",
    "amount",
    "status",
    "error",
    "warning",
    "info",
    "debug",
    "user",
    "admin",
    "manager",
    "director",
    "president",
    "ceo",
    "cto",
    "cfo",
    "head",
    "office",
    "department",
    "dept",
    "company",
    "inc",
    "ltd",
    "llc",
    "llp",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "sarl",
    "bv",
    "nv",
    "srl",
    "spa",
    "corp",
    "corporation",
    "group",
    "holdings",
    "partners",
    "associates",
    "bank",
    "university",
    "college",
    "school",
    "hospital",
    "clinic",
    "church",
    "hotel",
    "airport",
    "station",
    "center",
    "centre",
    "city",
    "county",
    "state",
    "republic",
    "kingdom",
    "united",
    "states",
    "north",
    "south",
    "east",
    "west",
    "new",
    "san",
    "santa",
    "saint",
    "st",
    "mount",
    "lake",
    "river",
    "park",
    "street",
    "road",
    "avenue",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "today",
    "tomorrow",
    "yesterday",
    "yes",
    "no",
    "ok",
    "okay",
    "all",
    "everyone",
    "friend",
    "friends",
    "colleague",
    "colleagues",
    "sir",
    "madam",
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "and",
    "or",
    "but",
    "if",
    "when",
    "where",
    "what",
    "who",
    "why",
    "how",
    "my",
    "his",
    "her",
    "its",
    "their",
    "an",
    "a",
    "in",
    "on",
    "at",
    "of",
    "for",
    "with",
    "by",
    "is",
    "are",
    "was",
    "be",
    "will",
    "can",
    "could",
    "would",
    "should",
    "have",
    "has",
    "had",
    "do",
    "does",
    "did",
    "not",
    "just",
    "also",
    "here",
    "then",
    "now",
    "free",
    "premium",
    "platinum",
    "online",
    "global",
    "national",
    "valued",
    "international",
    "public",
    "private",
    "general",
    "medical",
    "financial",
    "security",
    "privacy",
    "policy",
    "terms",
    "welcome",
    "congratulations",
    "happy",
    "merry",
    "christmas",
    "easter",
    "sorry",
    "hope",
    "love",
    "kunde",
    "kundin",
    "herr",
    "frau",
    "bitte",
    "danke",
    "vielen",
    "dank",
    "grüße",
    "gruß",
    "viele",
    "liebe",
    "lieber",
    "hallo",
    "guten",
    "tag",
    "sehr",
    "geehrte",
    "geehrter",
    "bestellung",
    "rechnung",
    "merci",
    "bonjour",
    "madame",
    "monsieur",
    "cordialement",
    "gracias",
    "hola",
    "saludos",
    "señor",
    "señora",
    "ciao",
    "grazie",
    "saluti",
    "cordiali",
    "olá",
    "obrigado",
    "obrigada",
    "atenciosamente",
    "bedankt",
    "groet",
    "met",
    "vriendelijke",
    "client",
    "cliente",
    "klant",
    "contact",
    "kontakt",
    "name",
    "nom",
    "nombre",
    "nome",
    "naam",
    "microsoft",
    "google",
    "apple",
    "amazon",
    "windows",
    "linux",
    "android",
    "iphone",
    "visa",
    "mastercard",
    "paypal",
    "stripe",
    "slack",
    "github",
    "teams",
    "zoom",
    "chrome",
    "firefox",
    "excel",
    "word",
    "outlook",
    "via",
    "calle",
    "rue",
    "rua",
    "avenida",
    "piazza",
    "platz",
    "straße",
    "strasse",
];

/// Organisations named after two people (`Wells Fargo`): well known, never a person.
const ORGANISATIONS: &[&str] = &[
    "wells fargo",
    "morgan stanley",
    "goldman sachs",
    "dow jones",
    "rolls royce",
    "harley davidson",
    "ernst young",
    "marks spencer",
    "johnson controls",
    "charles schwab",
    "edward jones",
    "hewlett packard",
    "lockheed martin",
    "pratt whitney",
    "baker mckenzie",
    "grant thornton",
    "jones lang",
    "dolce gabbana",
    "mercedes benz",
];

/// Words right before a name on a new line that still cue it (`Name:\nAnn Lee`).
const NEWLINE_CUES: &[&str] = &["name", "names", "nom", "nombre", "nome", "naam", "customer", "contact", "client"];

/// `is` in `my name is`, `this is`, `I'm` (`m`), ..., and the words before it.
const COPULAS: &[&str] = &["is", "es", "é", "est", "ist", "am", "m", "bin", "sono", "soy", "sou", "ben"];
const SUBJECTS: &[&str] = &["name", "nombre", "nome", "nom", "naam", "this", "i", "ich", "io", "yo", "eu", "ik", "it"];

/// Articles that open a capitalized phrase (`Le Service Client`) but may sit inside a name
/// (`Dani Le Marec`): stripped only at the start.
const ARTICLES: &[&str] = &["le", "la", "les", "il", "el", "los", "las", "die", "der", "das", "het", "de", "du"];

/// Name suffixes left out of the span.
const NAME_SUFFIXES: &[&str] = &["jr", "sr", "ii", "iii", "iv", "phd", "md", "dds", "esq", "mba", "cpa", "rn"];

/// Lower-case particles inside names (`Ludwig van Beethoven`, `Maria da Silva`).
const PARTICLES: &[&str] = &[
    "van", "von", "der", "den", "de", "da", "das", "do", "dos", "di", "du", "del", "della", "la", "le", "los", "las",
    "ten", "ter", "bin", "ibn", "al", "el", "y", "zu",
];

/// Closing words of a letter: a name on the line after one is its signature.
const CLOSINGS: &[&str] = &[
    "regards",
    "best",
    "thanks",
    "thank you",
    "cheers",
    "sincerely",
    "grüße",
    "gruß",
    "cordialement",
    "salutations",
    "saludos",
    "saluti",
    "groet",
    "groeten",
    "atenciosamente",
    "abraços",
    "pozdrawiam",
    "hälsningar",
    "merci",
    "gracias",
    "grazie",
    "obrigado",
    "obrigada",
    "un saludo",
    "yours",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// A capitalized word.
    Word,
    /// `J.` inside a name.
    Initial,
    /// `van`, `de`, ...
    Particle,
    /// `Mr.`, `Dr`, `Dear`, `Hi`: says a name follows.
    Title,
    /// `Patient`, `Customer`: says a name of two words or a known name follows.
    Cue,
}

/// Person-name detection over `text`, skipping `taken` spans (sorted; already claimed by
/// another detector). `field_cue`: the text is the value of a field whose name says it is a
/// name (`"name"`, `customer_name`).
pub(super) fn persons(
    gaz: &Gazetteer,
    text: &str,
    taken: &[(usize, usize)],
    field_cue: bool,
    out: &mut Vec<(usize, usize)>,
) {
    let b = text.as_bytes();
    let mut taken = taken.iter().peekable();
    let mut i = 0;
    while i < b.len() {
        spend(1);
        // The next capital letter that starts a word.
        let c = at(b, i);
        let starts = (c.is_ascii_uppercase() || c >= 0xC0) && !letter(prev(b, i)) && !prev(b, i).is_ascii_digit();
        if !starts || matches!(prev(b, i), b'@' | b'.' | b'_' | b'/' | b'\\' | b'#' | b'$') && prev(b, i) != b' ' {
            // The letter of an escape sequence (`\nTamsin`) is not the start of a word.
            let escape = matches!(c, b'n' | b'r' | b't') && i > 0 && at(b, i - 1) == b'\\';
            i += if letter(c) && !escape { word_end(b, i).max(i + 1) - i } else { 1 };
            continue;
        }
        while taken.peek().is_some_and(|t| t.1 <= i) {
            taken.next();
        }
        if let Some(&&(s, e)) = taken.peek().filter(|t| t.0 <= i) {
            i = e.max(s + 1);
            continue;
        }
        let next_taken = taken.peek().map_or(b.len(), |t| t.0);
        match person_at(gaz, text, i, next_taken, field_cue && i == first_word(b)) {
            Some((s, e)) => {
                out.push((s, e));
                i = e;
            }
            None => i = word_end(b, i).max(i + 1),
        }
    }
}

/// Offset of the first word of the text (a field value may start with a quote or blanks).
fn first_word(b: &[u8]) -> usize {
    b.iter().take(8).position(|&c| letter(c)).unwrap_or(usize::MAX)
}

/// The name starting with the capitalized word at `i`, ending before `limit`.
fn person_at(gaz: &Gazetteer, text: &str, i: usize, limit: usize, field_cue: bool) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let limit = limit.min(i + MAX_PERSON_SPAN);
    // Each token with the lists its word is on (looked up once).
    let mut toks: [(usize, usize, Tok, u32); MAX_NAME_TOKENS] = [(0, 0, Tok::Word, 0); MAX_NAME_TOKENS];
    let mut n = 0;
    let mut j = i;
    let mut buf = [0u8; MAX_WORD];
    while n < MAX_NAME_TOKENS {
        let e = word_end(b, j);
        if e == j || e - j > MAX_WORD || e > limit {
            break;
        }
        let w = lower(b, j, e, &mut buf);
        let on = lists(w);
        let dot = at(b, e) == b'.';
        let leading = toks.get(..n).is_some_and(|t| t.iter().all(|t| t.2 == Tok::Title));
        let tok = if upper_at(text, j) {
            if leading && (on & (HONORIFIC | GREETING) != 0 || w == b"i'm") {
                Tok::Title
            } else if leading && on & STRONG_CUE != 0 {
                Tok::Cue
            } else if e == j + 1 && dot {
                Tok::Initial
            } else if text.get(j..e).is_some_and(|s| s.chars().skip(1).any(char::is_lowercase)) {
                Tok::Word
            } else {
                break;
            }
        } else if n > 0 && on & PARTICLE != 0 {
            Tok::Particle
        } else {
            break;
        };
        let end = if dot && matches!(tok, Tok::Title | Tok::Initial) { e + 1 } else { e };
        if let Some(t) = toks.get_mut(n) {
            *t = (j, end, tok, on);
        }
        n += 1;
        // Tokens are separated by one blank (a greeting may be followed by a comma: `Hi, Ann`).
        let sep = if tok == Tok::Title && at(b, end) == b',' { end + 1 } else { end };
        if at(b, sep) == b' ' && sep < limit {
            j = sep + 1;
        } else {
            break;
        }
    }
    let toks = toks.get(..n)?;
    // Leading titles and stop words: a title is a cue.
    let mut lo = 0;
    let mut titled = false;
    let mut cued = false;
    // A word token's end is its word's end, so its list bits hold for the span `s..e`.
    while let Some(&(_, _, t, on)) = toks.get(lo) {
        let stop = t == Tok::Word && on & (STOP_WORD | ARTICLE) != 0;
        if t == Tok::Title {
            titled = true;
        } else if t == Tok::Cue {
            cued = true;
        } else if !stop {
            break;
        }
        lo += 1;
    }
    // Cut at the first stop word after the start, then drop trailing particles, initials and
    // name suffixes.
    let mut hi = lo;
    while let Some(&(_, _, t, on)) = toks.get(hi) {
        if matches!(t, Tok::Title | Tok::Cue) || (t == Tok::Word && on & STOP_WORD != 0) {
            break;
        }
        hi += 1;
    }
    while hi > lo {
        let Some(&(_, _, t, on)) = toks.get(hi - 1) else { break };
        if t == Tok::Word && on & NAME_SUFFIX == 0 {
            break;
        }
        hi -= 1;
    }
    let name = toks.get(lo..hi)?;
    let (&(start, _, _, _), &(_, end, _, _)) = (name.first()?, name.last()?);
    let mut spans = [(0, 0); MAX_NAME_TOKENS];
    let mut count = 0;
    for (slot, t) in spans.iter_mut().zip(name.iter().filter(|t| t.2 == Tok::Word)) {
        *slot = (t.0, t.1);
        count += 1;
    }
    let words = spans.get(..count)?;
    let (first, last) = (words.first()?, words.last()?);
    let word = |(s, e): (usize, usize)| b.get(s..e).unwrap_or_default();
    // A known first name anywhere but last (`Luiz Felipe Abreu`, `Anna Kowalczyk`).
    let known_first = || words.iter().rev().skip(1).any(|&w| Gazetteer::has(&gaz.first, word(w)));
    let known_last = || Gazetteer::has(&gaz.last, word(*last));
    let org = words.len() == 2 && lists(lower(b, first.0, last.1, &mut buf)) & ORGANISATION != 0;
    let cue = match (titled || field_cue, cued) {
        (true, _) => Cue::Strong,
        (false, true) if words.len() > 1 => Cue::Strong,
        (false, true) => Cue::None,
        (false, false) => cue_before(b, start),
    };
    // The gazetteers are searched last, and only when the cue leaves the answer open.
    let accept = match words.len() {
        1 => cue == Cue::Strong || (cued && Gazetteer::has(&gaz.first, word(*first))),
        _ => !org && (cue == Cue::Strong || known_first() || (cue == Cue::Weak && known_last())),
    };
    accept.then_some((start, end))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cue {
    None,
    Weak,
    Strong,
}

/// The cue before `start`: a word such as `name`, `Dear`, `customer` (strong) or `by`, `with`
/// (weak) at most a few separators before it, `my name is`, `this is`, `I'm`, or the closing line
/// of a letter right above (a signature).
fn cue_before(b: &[u8], start: usize) -> Cue {
    let floor = start.saturating_sub(MAX_CONTEXT_REACH);
    let mut j = start;
    let mut newline = false;
    while j > floor
        && matches!(prev(b, j), b' ' | b':' | b'"' | b'=' | b',' | b'\'' | b'\t' | b'\n' | b'\r' | b'-' | b'(' | b'>')
    {
        let escaped = matches!(at(b, j - 1), b'n' | b'r' | b't') && j >= 2 && at(b, j - 2) == b'\\';
        newline |= prev(b, j) == b'\n' || (escaped && at(b, j - 1) == b'n');
        j -= if escaped { 2 } else { 1 };
    }
    if newline && signature_above(b, j, floor) {
        return Cue::Strong;
    }
    if j == start && start > 0 {
        return Cue::None;
    }
    let mut buf = [0u8; MAX_WORD];
    let (w1s, w1) = word_before(b, j, floor, &mut buf);
    let mut buf2 = [0u8; MAX_WORD];
    let (_, w2) = word_before(b, w1s.saturating_sub(1), floor, &mut buf2);
    let (w1, w2) = (buf.get(..w1).unwrap_or_default(), buf2.get(..w2).unwrap_or_default());
    let on = lists(w1);
    if newline && on & NEWLINE_CUE == 0 {
        return Cue::None;
    }
    // A capitalized cue noun right before (`Customer Success`) was read with the phrase it opens.
    let capital_noun = j + 1 == start && at(b, w1s).is_ascii_uppercase() && on & GREETING == 0;
    if (on & STRONG_CUE != 0 && !capital_noun) || (on & COPULA != 0 && lists(w2) & SUBJECT != 0) {
        Cue::Strong
    } else if on & WEAK_CUE != 0 {
        Cue::Weak
    } else {
        Cue::None
    }
}

/// The lower-cased word ending at `j` (into `buf`): its start and length; read no further back
/// than `floor`. `I'm` reads as `m`, and the word before it as `i`.
fn word_before(b: &[u8], j: usize, floor: usize, buf: &mut [u8; MAX_WORD]) -> (usize, usize) {
    let mut s = j;
    while s > floor && j - s < MAX_WORD && letter(prev(b, s)) {
        s -= 1;
    }
    (s, lower(b, s, j, buf).len())
}

/// True when the line ending at `j` is a letter's closing (`Best regards,`, `Grüße`, `--`).
fn signature_above(b: &[u8], j: usize, floor: usize) -> bool {
    let mut s = j;
    while s > floor && !matches!(prev(b, s), b'\n') && !(s >= 2 && at(b, s - 2) == b'\\' && at(b, s - 1) == b'n') {
        s -= 1;
    }
    let line = b.get(s..j).unwrap_or_default();
    if line.len() > 48 {
        return false;
    }
    let mut buf = [0u8; 48];
    let Some(low) = buf.get_mut(..line.len()) else { return false };
    for (o, c) in low.iter_mut().zip(line) {
        *o = c.to_ascii_lowercase();
    }
    let low = &*low;
    low.trim_ascii() == b"--" || CLOSINGS.iter().any(|c| low.windows(c.len()).any(|w| w == c.as_bytes()))
}

// --- street addresses ---------------------------------------------------------------------

/// Street types after the street name (USPS and Royal Mail / Australia Post lists, lower case;
/// an abbreviation may carry a `.`).
const SUFFIXES: &[&str] = &[
    "street",
    "st",
    "avenue",
    "ave",
    "av",
    "road",
    "rd",
    "boulevard",
    "blvd",
    "lane",
    "ln",
    "drive",
    "dr",
    "court",
    "ct",
    "place",
    "pl",
    "terrace",
    "ter",
    "way",
    "parkway",
    "pkwy",
    "highway",
    "hwy",
    "circle",
    "cir",
    "square",
    "sq",
    "trail",
    "trl",
    "crescent",
    "cres",
    "close",
    "grove",
    "gardens",
    "row",
    "mews",
    "walk",
    "hill",
    "hills",
    "heights",
    "view",
    "views",
    "loop",
    "pike",
    "alley",
    "plaza",
    "point",
    "points",
    "ridge",
    "ridges",
    "path",
    "crossing",
    "crossroad",
    "expressway",
    "freeway",
    "turnpike",
    "route",
    "bypass",
    "causeway",
    "center",
    "centre",
    "common",
    "cove",
    "coves",
    "creek",
    "estate",
    "estates",
    "falls",
    "ferry",
    "field",
    "fields",
    "fork",
    "forks",
    "glen",
    "glens",
    "green",
    "greens",
    "groves",
    "harbor",
    "harbour",
    "haven",
    "hollow",
    "island",
    "islands",
    "isle",
    "junction",
    "knoll",
    "knolls",
    "lake",
    "lakes",
    "landing",
    "manor",
    "manors",
    "meadow",
    "meadows",
    "mill",
    "mills",
    "mission",
    "mountain",
    "mountains",
    "mount",
    "orchard",
    "oval",
    "pass",
    "passage",
    "pines",
    "pine",
    "plain",
    "plains",
    "port",
    "ports",
    "prairie",
    "radial",
    "ramp",
    "ranch",
    "rapid",
    "rapids",
    "rest",
    "river",
    "roads",
    "run",
    "shoal",
    "shoals",
    "shore",
    "shores",
    "skyway",
    "spring",
    "springs",
    "spur",
    "spurs",
    "squares",
    "station",
    "stravenue",
    "stream",
    "streets",
    "summit",
    "throughway",
    "trace",
    "track",
    "trafficway",
    "tunnel",
    "underpass",
    "union",
    "unions",
    "valley",
    "valleys",
    "viaduct",
    "village",
    "villages",
    "ville",
    "vista",
    "walks",
    "wall",
    "ways",
    "well",
    "wells",
    "branch",
    "bridge",
    "brook",
    "brooks",
    "burg",
    "burgs",
    "camp",
    "canyon",
    "cape",
    "centers",
    "circles",
    "cliff",
    "cliffs",
    "club",
    "corner",
    "corners",
    "course",
    "courts",
    "crest",
    "curve",
    "dale",
    "dam",
    "divide",
    "drives",
    "extension",
    "extensions",
    "fall",
    "flat",
    "flats",
    "ford",
    "fords",
    "forest",
    "forge",
    "forges",
    "fort",
    "garden",
    "gateway",
    "harbors",
    "inlet",
    "junctions",
    "key",
    "keys",
    "land",
    "light",
    "lights",
    "loaf",
    "lock",
    "locks",
    "lodge",
    "mall",
    "motorway",
    "neck",
    "overpass",
    "park",
    "parks",
    "parkways",
    "plz",
    "pt",
    "ests",
    "xing",
    "expy",
    "fwy",
    "tpke",
    "rte",
    "ctr",
    "cv",
    "crk",
    "mt",
    "access",
    "alleyway",
    "amble",
    "approach",
    "arcade",
    "bend",
    "brae",
    "broadway",
    "chase",
    "circuit",
    "circus",
    "concourse",
    "copse",
    "corso",
    "courtyard",
    "cross",
    "crossway",
    "dell",
    "edge",
    "end",
    "entrance",
    "esplanade",
    "fairway",
    "front",
    "gate",
    "gates",
    "glade",
    "grange",
    "gully",
    "highroad",
    "lane",
    "laneway",
    "link",
    "lookout",
    "mew",
    "nook",
    "outlook",
    "parade",
    "pathway",
    "promenade",
    "quay",
    "quays",
    "reach",
    "reserve",
    "retreat",
    "ride",
    "ridgeway",
    "ring",
    "rise",
    "riverway",
    "round",
    "slope",
    "strand",
    "terrace",
    "tor",
    "vale",
    "wade",
    "walkway",
    "wynd",
    "anchorage",
    "artery",
    "basin",
    "beach",
    "block",
    "brace",
    "break",
    "brow",
    "byway",
    "centreway",
    "circlet",
    "colonnade",
    "cruiseway",
    "cul-de-sac",
    "cutting",
    "deviation",
    "dip",
    "distributor",
    "driveway",
    "elbow",
    "firetrail",
    "follow",
    "footway",
    "foreshore",
    "formation",
    "frontage",
    "gap",
    "ground",
    "interchange",
    "intersection",
    "lees",
    "line",
    "little",
    "lower",
    "meander",
    "parklands",
    "part",
    "piazza",
    "plateau",
    "pocket",
    "quad",
    "quadrangle",
    "quadrant",
    "ramble",
    "range",
    "ridge",
    "riviera",
    "roadside",
    "roadway",
    "ronde",
    "rosebowl",
    "rotary",
    "siding",
    "sound",
    "stairs",
    "steps",
    "strip",
    "subway",
    "tarn",
    "thoroughfare",
    "tollway",
    "top",
    "towers",
    "trailer",
    "triangle",
    "trunkway",
    "turn",
    "upper",
    "villas",
];

/// Abbreviated street types: only these take a following `.` into the span.
const ABBREVIATIONS: &[&str] = &[
    "st", "ave", "av", "rd", "blvd", "ln", "dr", "ct", "pl", "ter", "pkwy", "hwy", "cir", "sq", "trl", "cres", "plz",
    "pt", "xing", "expy", "fwy", "tpke", "rte", "ctr", "cv", "crk", "mt",
];

/// Ordinal endings of a numbered street (`5th`).
const ORDINALS: &[&str] = &["st", "nd", "rd", "th"];

/// Street types between the house number and the street name (`8, rue Jeanne Henry`).
const NUMBER_PREFIXES: &[&str] = &[
    "rue",
    "avenue",
    "boulevard",
    "chemin",
    "allée",
    "impasse",
    "place",
    "quai",
    "route",
    "cours",
    "passage",
    "bd",
    "av",
];

/// Street words written apart before the house number (`Lange Straße 12`).
const STREET_WORDS: &[&str] =
    &["straße", "strasse", "weg", "gasse", "allee", "platz", "ring", "straat", "laan", "plein"];

/// Capitalized counters before a number that make it a step, a room or a page, not a house
/// number (`Step 2 North Tower Entrance`, `Level 3`, `Room 101`).
const COUNTERS: &[&str] = &[
    "step",
    "level",
    "section",
    "chapter",
    "room",
    "gate",
    "terminal",
    "platform",
    "version",
    "page",
    "figure",
    "table",
    "no",
    "top",
    "floor",
    "item",
    "line",
    "row",
    "part",
    "phase",
    "stage",
    "round",
    "week",
    "day",
    "year",
    "flight",
    "bus",
    "train",
    "route",
    "highway",
    "exit",
    "lot",
    "unit",
    "suite",
    "apt",
    "seat",
    "rule",
    "article",
    "paragraph",
    "slide",
    "episode",
    "season",
    "volume",
    "issue",
    "release",
    "build",
    "sprint",
    "team",
    "group",
];

/// Street types before the street name (French, Spanish, Italian, Portuguese, Polish).
const PREFIXES: &[&str] = &[
    "rue",
    "avenue",
    "boulevard",
    "bd",
    "chemin",
    "allée",
    "impasse",
    "place",
    "quai",
    "route",
    "cours",
    "square",
    "passage",
    "calle",
    "c",
    "avenida",
    "avda",
    "av",
    "plaza",
    "paseo",
    "camino",
    "carretera",
    "ronda",
    "pasaje",
    "callejón",
    "cuesta",
    "urbanización",
    "glorieta",
    "rambla",
    "alameda",
    "travesía",
    "vía",
    "via",
    "viale",
    "piazza",
    "piazzale",
    "corso",
    "largo",
    "vicolo",
    "strada",
    "contrada",
    "borgo",
    "rotonda",
    "stretto",
    "canale",
    "incrocio",
    "lungomare",
    "rua",
    "r",
    "travessa",
    "praça",
    "estrada",
    "rodovia",
    "ladeira",
    "ul",
    "ulica",
    "al",
    "aleja",
    "os",
    "osiedle",
    "pl",
    "vial",
    "acceso",
    "cañada",
    "pasadizo",
];

/// Endings of street names written as one word (`Hauptstraße`, `Jansstraat`, `Lindenweg`).
const GLUED: &[&str] = &[
    "straße",
    "strasse",
    "str.",
    "weg",
    "gasse",
    "allee",
    "platz",
    "ring",
    "damm",
    "ufer",
    "steig",
    "pfad",
    "chaussee",
    "markt",
    "graben",
    "straat",
    "laan",
    "plein",
    "gracht",
    "kade",
    "singel",
    "dreef",
    "steeg",
    "boulevard",
    "baan",
    "hof",
    "pad",
    "vej",
    "gatan",
    "vägen",
    "gata",
    "veien",
    "gade",
    "katu",
    "tie",
];

/// Unit designators after the street.
const UNITS: &[&str] = &[
    "apt",
    "apartment",
    "suite",
    "ste",
    "unit",
    "fl",
    "floor",
    "room",
    "rm",
    "bldg",
    "building",
    "flat",
    "level",
    "piso",
    "puerta",
    "appartamento",
    "piano",
    "app",
    "dpt",
    "lot",
    "no",
    "nr",
];

/// Lower-case words that may sit inside street and city names (`rue de la Paix`, `Zell am See`).
const NAME_PARTICLES: &[&str] = &[
    "de", "del", "della", "di", "da", "do", "dos", "das", "du", "des", "la", "le", "les", "los", "las", "el", "y", "e",
    "d", "l", "am", "an", "der", "im", "bei", "upon", "sur", "en", "aan", "den", "op", "sous", "lès",
];

/// Street-address detection over `text`; spans are pushed to `out` in order.
pub(super) fn addresses(text: &str, out: &mut Vec<(usize, usize)>) {
    let b = text.as_bytes();
    let mut floor = 0;
    let mut i = 0;
    while i < b.len() {
        spend(1);
        let c = at(b, i);
        // `Rua de Pinho, S/N`: "sem número", a street without a house number.
        let no_number = c == b'S' && b.get(i..i + 3) == Some(b"S/N") && !letter(at(b, i + 3));
        if !c.is_ascii_digit() && !no_number {
            // Straight to the next byte that can start an address (one unit of work per byte, as
            // if stepped over one at a time).
            let rest = b.get(i + 1..).unwrap_or_default();
            let skip = rest.iter().position(|&c| c.is_ascii_digit() || c == b'S').unwrap_or(rest.len());
            spend(skip);
            i += 1 + skip;
            continue;
        }
        let token_start = !(prev(b, i).is_ascii_alphanumeric()
            || matches!(prev(b, i), b'.' | b'-' | b'/' | b'#' | b'$' | b':' | b'+' | b'_' | b'@' | b'\\'));
        if token_start {
            if let Some((s, e)) = street_first(text, i, floor).or_else(|| number_first(text, i)) {
                out.push((s, e));
                floor = e;
                i = e;
                continue;
            }
        }
        i = super::run_end(b, i, usize::MAX, |c| c.is_ascii_alphanumeric()).max(i + 1);
    }
}

/// The blank, comma or line break (real or JSON-escaped) between the parts of an address at `j`
/// (`, `, ` , `, `\n`, ` \n`): where the next part starts, or `None`.
fn part_break(b: &[u8], j: usize) -> Option<usize> {
    let mut k = j;
    if at(b, k) == b' ' && matches!(at(b, k + 1), b',' | b'\n' | b'\\') {
        k += 1;
    }
    match (at(b, k), at(b, k + 1)) {
        (b',', b' ') | (b',', b'\n') => Some(k + 2),
        (b'\n', _) => Some(k + 1),
        (b'\\', b'n') => Some(k + 2),
        _ => None,
    }
}

/// End of a house number at `i`: `12`, `12B`, `12-14`, `6/170`, `7/6`; `None` if not one.
fn house_number(b: &[u8], i: usize) -> Option<usize> {
    let d = super::digit_run(b, i, 6);
    if d == 0 || d > 5 {
        return None;
    }
    let mut e = i + d;
    if matches!(at(b, e), b'-' | b'/') && at(b, e + 1).is_ascii_digit() {
        let d2 = super::digit_run(b, e + 1, 6);
        if d2 > 5 {
            return None;
        }
        e += 1 + d2;
    }
    if at(b, e).is_ascii_alphabetic() && !at(b, e + 1).is_ascii_alphanumeric() {
        e += 1;
    }
    // A decimal, a time, a date or a longer code is not a house number.
    let next = at(b, e);
    if next.is_ascii_alphanumeric()
        || (matches!(next, b'.' | b':' | b',' | b'/' | b'-') && at(b, e + 1).is_ascii_digit())
    {
        return None;
    }
    Some(e)
}

/// A street word at `j`: a capitalized word, an ordinal (`5th`), or a particle; its end.
fn street_word(text: &str, j: usize) -> Option<(usize, bool)> {
    let b = text.as_bytes();
    if at(b, j).is_ascii_digit() {
        let d = super::digit_run(b, j, 4);
        let mut buf = [0u8; MAX_WORD];
        let suf = lower(b, j + d, j + d + 2, &mut buf);
        let ordinal = d <= 3 && lists(suf) & ORDINAL != 0 && !letter(at(b, j + d + 2));
        return ordinal.then_some((j + d + 2, true));
    }
    let e = word_end(b, j);
    if e == j || e - j > MAX_WORD {
        return None;
    }
    if upper_at(text, j) {
        return Some((e, true));
    }
    let mut buf = [0u8; MAX_WORD];
    let w = lower(b, j, e, &mut buf);
    // `d'Italie`, `l'Église`: the particle and its word are one token.
    (lists(w) & NAME_PARTICLE != 0).then_some((e, false))
}

/// `123 Main Street`, `17066 Heather Grove Apt. 915`, `8, rue Jeanne Henry`, `6/170 Reynolds
/// Wade`, then the unit and locality. `i` is the first digit.
fn number_first(text: &str, i: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let limit = i + MAX_ADDRESS_SPAN;
    let n = house_number(b, i)?;
    if at(b, i.wrapping_sub(1)) == b' ' {
        let mut buf = [0u8; MAX_WORD];
        let (_, len) = word_before(b, i - 1, i.saturating_sub(MAX_WORD + 1), &mut buf);
        if lists(buf.get(..len).unwrap_or_default()) & COUNTER != 0 {
            return None;
        }
    }
    let mut j = n;
    if at(b, j) == b',' {
        j += 1;
    }
    if at(b, j) != b' ' {
        return None;
    }
    j += 1;
    let mut buf = [0u8; MAX_WORD];
    // French and friends after the number: `rue`, `avenue`, then the name.
    let e0 = word_end(b, j);
    let first = lower(b, j, e0, &mut buf);
    let prefixed = e0 > j && lists(first) & NUMBER_PREFIX != 0;
    let mut street_end = None;
    let mut words = 0;
    let mut k = if prefixed { e0 + usize::from(at(b, e0) == b'.') } else { j };
    if prefixed {
        if at(b, k) != b' ' {
            return None;
        }
        k += 1;
    }
    // Up to five street words; an English street ends at its suffix, a prefixed one at its last
    // capitalized word.
    for _ in 0..5 {
        if k >= limit {
            break;
        }
        let Some((e, cap)) = street_word(text, k) else { break };
        words += 1;
        let on = lists(lower(b, k, e, &mut buf));
        if prefixed {
            if cap {
                street_end = Some(e);
            }
        } else if words > 1 && cap && on & SUFFIX != 0 {
            let e = if at(b, e) == b'.' && on & ABBREVIATION != 0 { e + 1 } else { e };
            street_end = Some(e);
            // `Heather Grove`: the suffix word may be followed by a compass point.
            break;
        } else if !cap && words == 1 {
            return None;
        }
        // A word glued to its neighbour by `'` (`d'Italie`) continues without a blank.
        if at(b, e) == b' ' || (at(b, e) == b'\'' && letter(at(b, e + 1))) {
            k = e + 1;
        } else {
            break;
        }
    }
    let mut e = street_end?;
    if !prefixed && (e - n) < 4 {
        return None;
    }
    e = compass(b, e);
    e = unit(b, e, limit);
    Some((i, locality(text, e, limit)))
}

/// `Hauptstraße 12`, `Via Roma, 12`, `Calle de Alcalá 45`, `Rua Matos, 48`: the street before
/// the house number at `i`. Returns the span from the street's first word.
fn street_first(text: &str, i: usize, floor: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let n = if at(b, i) == b'S' { i + 3 } else { house_number(b, i)? };
    // The separator before the number: `Straße 12`, `Roma, 12`.
    let mut j = i;
    if prev(b, j) != b' ' {
        return None;
    }
    j -= 1;
    if prev(b, j) == b',' {
        j -= 1;
    }
    let reach = i.saturating_sub(MAX_CONTEXT_REACH).max(floor);
    let mut buf = [0u8; MAX_WORD];
    // Words before the number, nearest first; at most five.
    let mut start = None;
    let mut k = j;
    for words in 0..6 {
        if k <= reach || !letter(prev(b, k)) && prev(b, k) != b'.' {
            break;
        }
        let mut s = k;
        let dotted = prev(b, s) == b'.';
        if dotted {
            s -= 1;
        }
        while s > reach
            && (letter(prev(b, s)) || (matches!(prev(b, s), b'-' | b'\'') && s >= 2 && letter(at(b, s - 2))))
            && k - s <= MAX_WORD + 1
        {
            s -= 1;
        }
        if s == k || k - s > MAX_WORD + 1 || (s != 0 && letter(prev(b, s))) {
            break;
        }
        let cap = upper_at(text, s);
        if words == 0 && cap {
            let mut fbuf = [0u8; MAX_WORD];
            let full = lower(b, s, k, &mut fbuf);
            let glued = GLUED.iter().any(|g| full.len() > g.len() + 1 && full.ends_with(g.as_bytes()));
            let w = lower(b, s, if dotted { k - 1 } else { k }, &mut buf);
            if glued || lists(w) & STREET_WORD != 0 {
                start = Some(s);
                // `Lange Straße`, `Am Alten Markt` style words before the street word.
                if glued {
                    break;
                }
            }
        }
        let w = lower(b, s, if dotted { k - 1 } else { k }, &mut buf);
        let on = lists(w);
        if on & PREFIX != 0
            && words > 0
            && (cap || matches!(w, b"ul" | b"ulica" | b"al" | b"aleja" | b"rue" | b"via" | b"os"))
        {
            start = Some(s);
            break;
        }
        if !cap && on & NAME_PARTICLE == 0 {
            break;
        }
        if prev(b, s) != b' ' {
            break;
        }
        k = s - 1;
    }
    let s = start?;
    let mut e = n;
    e = unit(b, e, s + MAX_ADDRESS_SPAN);
    Some((s, locality(text, e, s + MAX_ADDRESS_SPAN)))
}

/// After a street suffix: an optional compass point (`NW`, `North`).
fn compass(b: &[u8], e: usize) -> usize {
    if at(b, e) != b' ' {
        return e;
    }
    let w = word_end(b, e + 1);
    let word = b.get(e + 1..w).unwrap_or_default();
    if matches!(word, b"N" | b"S" | b"E" | b"W" | b"NE" | b"NW" | b"SE" | b"SW") && !letter(at(b, w)) {
        return if at(b, w) == b'.' { w + 1 } else { w };
    }
    e
}

/// After the street: an optional unit (`Apt. 915`, `, Suite 200`, `#12`, `Puerta 3`).
fn unit(b: &[u8], e: usize, limit: usize) -> usize {
    let mut j = e;
    if at(b, j) == b',' {
        j += 1;
    }
    if at(b, j) != b' ' {
        return e;
    }
    j += 1;
    let mut buf = [0u8; MAX_WORD];
    let k = if at(b, j) == b'#' {
        j + 1
    } else {
        let w = word_end(b, j);
        if w == j || lists(lower(b, j, w, &mut buf)) & UNIT == 0 || !at(b, j).is_ascii_uppercase() {
            return e;
        }
        let mut k = w;
        if at(b, k) == b'.' {
            k += 1;
        }
        if at(b, k) == b' ' {
            k += 1;
        }
        k
    };
    let v = super::run_end(b, k, 7, |c| c.is_ascii_alphanumeric());
    if v == k || v - k > 6 || v > limit || letter(at(b, v)) {
        return e;
    }
    v
}

/// After the street (and unit): the city, region and postcode when they follow in a form that
/// ends or starts with a postcode; otherwise `e` (the span ends with the street).
fn locality(text: &str, e: usize, limit: usize) -> usize {
    let b = text.as_bytes();
    let j = match part_break(b, e) {
        Some(j) => j,
        // After a bare blank only `City, ST 12345` counts.
        None if at(b, e) == b' ' => return city_region_postcode(text, e + 1, limit).unwrap_or(e),
        None => return e,
    };
    if at(b, j).is_ascii_digit() {
        return postcode_city(text, j, limit).unwrap_or(e);
    }
    city_region_postcode(text, j, limit).unwrap_or(e)
}

/// The words of a place name at `j` (`Sankt Pölten`, `Zell am See`, `Santa Cruz de Tenerife`):
/// its end, or `None` if it does not start with a capital.
fn place(text: &str, j: usize, limit: usize) -> Option<usize> {
    let b = text.as_bytes();
    if !upper_at(text, j) {
        return None;
    }
    let mut end = None;
    let mut k = j;
    for _ in 0..5 {
        let Some((e, cap)) = street_word(text, k).filter(|&(e, _)| e <= limit && !at(b, k).is_ascii_digit()) else {
            break;
        };
        if cap {
            end = Some(e);
        }
        // `St. Danielland`, `Mt. Vernon`, `Ft. Worth`.
        let abbr = at(b, e) == b'.' && matches!(b.get(k..e), Some(b"St" | b"Mt" | b"Ft"));
        let e = e + usize::from(abbr);
        if at(b, e) == b' ' && (upper_at(text, e + 1) || letter(at(b, e + 1))) {
            k = e + 1;
        } else {
            break;
        }
    }
    end
}

/// `City, ST 12345(-6789)`, `City, ON B7V 7K3`, `City, QLD, 2904`, `City, 48424`, `City\nDT7M 6XE`,
/// `City, 12345`.
fn city_region_postcode(text: &str, j: usize, limit: usize) -> Option<usize> {
    let b = text.as_bytes();
    let c = place(text, j, limit)?;
    // UK: the postcode on its own line or after a comma.
    let k2 = part_break(b, c)?;
    if let Some(e) = uk_postcode(b, k2) {
        return Some(e);
    }
    if at(b, k2).is_ascii_digit() {
        let d = super::digit_run(b, k2, 6);
        return (d == 5 && !at(b, k2 + d).is_ascii_alphanumeric()).then_some(k2 + d);
    }
    // Region: 2-3 capitals.
    let r = super::run_end(b, k2, 4, |c| c.is_ascii_uppercase());
    if !(2..=3).contains(&(r - k2)) {
        return None;
    }
    let mut k = r;
    if at(b, k) == b',' {
        k += 1;
    }
    if at(b, k) != b' ' {
        return None;
    }
    k += 1;
    let d = super::digit_run(b, k, 6);
    let e = match d {
        5 if at(b, k + 5) == b'-' && super::digit_run(b, k + 6, 5) == 4 => k + 10,
        4 | 5 => k + d,
        0 => ca_postcode(b, k)?,
        _ => return None,
    };
    (!at(b, e).is_ascii_alphanumeric() && e <= limit + 16).then_some(e)
}

/// Canadian `B7V 7K3` / `B7V7K3`.
fn ca_postcode(b: &[u8], k: usize) -> Option<usize> {
    let l = |i: usize| at(b, i).is_ascii_uppercase();
    let d = |i: usize| at(b, i).is_ascii_digit();
    if !(l(k) && d(k + 1) && l(k + 2)) {
        return None;
    }
    let m = if at(b, k + 3) == b' ' { k + 4 } else { k + 3 };
    (d(m) && l(m + 1) && d(m + 2)).then_some(m + 3)
}

/// British `SW1A 1AA`, `M15 8HN`, `DT7M 6XE`.
fn uk_postcode(b: &[u8], k: usize) -> Option<usize> {
    let letters = super::run_end(b, k, 3, |c| c.is_ascii_uppercase()) - k;
    if !(1..=2).contains(&letters) || !at(b, k + letters).is_ascii_digit() {
        return None;
    }
    let mut j = k + letters + 1;
    if at(b, j).is_ascii_alphanumeric() && at(b, j) != b' ' {
        j += 1;
    }
    if at(b, j) != b' ' {
        return None;
    }
    j += 1;
    let ok = at(b, j).is_ascii_digit() && at(b, j + 1).is_ascii_uppercase() && at(b, j + 2).is_ascii_uppercase();
    (ok && !at(b, j + 3).is_ascii_alphanumeric()).then_some(j + 3)
}

/// `10115 Berlin`, `6337 Allschwil`, `6783 OR\nHoevelaken`, `9337-406 Gandra`, `64-567 Pabianice`,
/// `19011, Bonassola (SP)`.
fn postcode_city(text: &str, j: usize, limit: usize) -> Option<usize> {
    let b = text.as_bytes();
    let d = super::digit_run(b, j, 9);
    let mut k = j + d;
    match d {
        4 | 5 => {}
        2 if at(b, k) == b'-' && super::digit_run(b, k + 1, 4) == 3 => k += 4,
        _ => return None,
    }
    if d == 4 && at(b, k) == b'-' && super::digit_run(b, k + 1, 4) == 3 {
        k += 4;
    }
    // Dutch `1234 AB`, `1234AB`.
    let sp = usize::from(at(b, k) == b' ');
    if d == 4
        && at(b, k + sp).is_ascii_uppercase()
        && at(b, k + sp + 1).is_ascii_uppercase()
        && !letter(at(b, k + sp + 2))
    {
        k += sp + 2;
    }
    if at(b, k) == b',' {
        k += 1;
    }
    let c = match (at(b, k), at(b, k + 1)) {
        (b' ', _) | (b'\n', _) => k + 1,
        (b'\\', b'n') => k + 2,
        _ => return None,
    };
    let mut e = place(text, c, limit)?;
    // Italian province `(SP)`.
    if at(b, e) == b' '
        && at(b, e + 1) == b'('
        && at(b, e + 2).is_ascii_uppercase()
        && at(b, e + 3).is_ascii_uppercase()
        && at(b, e + 4) == b')'
    {
        e += 5;
    }
    Some(e)
}

/// Every word the opt-in detectors react to (for the linear-time test).
#[cfg(all(test, feature = "std"))]
pub(super) fn patterns() -> impl Iterator<Item = &'static str> {
    [
        HONORIFICS,
        GREETINGS,
        STRONG_CUES,
        WEAK_CUES,
        STOP,
        ORGANISATIONS,
        ARTICLES,
        NAME_SUFFIXES,
        PARTICLES,
        CLOSINGS,
        SUFFIXES,
        ABBREVIATIONS,
        COUNTERS,
        PREFIXES,
        GLUED,
        UNITS,
        NAME_PARTICLES,
    ]
    .into_iter()
    .flatten()
    .copied()
}
