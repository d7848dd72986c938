//! Seeing through Unicode look-alikes (issue 10, finding 9): zero-width and other format
//! characters are dropped, fullwidth ASCII (`０４１２`, `＠`) and mathematical digits (`𝟎𝟒`)
//! become ASCII, Unicode dashes become
//! `-` and Unicode spaces become ` `. Detection runs on the folded text and every offset is mapped
//! back into the original, so a value found through a look-alike is redacted in place, look-alikes
//! included. Texts with none of these characters (all ASCII text, most other text) are detected
//! as they are, without copying.

use alloc::string::String;
use alloc::vec::Vec;

/// What a character becomes in the folded text.
enum Fold {
    /// Kept as it is.
    Keep,
    /// Dropped (format characters).
    Drop,
    /// Replaced by one ASCII byte.
    Ascii(u8),
}

fn fold(c: char) -> Fold {
    match c {
        // Soft hyphen, zero-width space/joiners, marks, bidi controls, word joiner, invisible
        // operators, BOM.
        '\u{00AD}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}' => Fold::Drop,
        // Dashes and minus signs.
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' => Fold::Ascii(b'-'),
        // No-break, typographic and ideographic spaces.
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => Fold::Ascii(b' '),
        // Fullwidth ASCII: U+FF01..=U+FF5E are U+0021..=U+007E shifted.
        '\u{FF01}'..='\u{FF5E}' => Fold::Ascii(u8::try_from(u32::from(c) - 0xFF01 + 0x21).unwrap_or(b'?')),
        // Mathematical bold, double-struck, sans-serif, sans-serif bold and monospace digits.
        '\u{1D7CE}'..='\u{1D7FF}' => Fold::Ascii(b'0' + u8::try_from((u32::from(c) - 0x1D7CE) % 10).unwrap_or(0)),
        _ => Fold::Keep,
    }
}

/// The folded text and, for each of its bytes, the span of the original character it came from
/// (offset of that byte within the character for kept characters).
pub(super) struct Folded {
    pub(super) text: String,
    starts: Vec<usize>,
    ends: Vec<usize>,
}

impl Folded {
    /// Original offset of a value that starts at folded byte `start`.
    pub(super) fn start(&self, start: usize) -> usize {
        self.starts.get(start).copied().unwrap_or(0)
    }

    /// Original offset one past a value that ends at folded byte `end` (`end > 0`).
    pub(super) fn end(&self, end: usize) -> usize {
        end.checked_sub(1).and_then(|k| self.ends.get(k)).copied().unwrap_or(0)
    }
}

/// Every character folding changes (for the linear-time test).
#[cfg(all(test, feature = "std"))]
pub(super) fn folded_chars() -> impl Iterator<Item = char> {
    ('\u{80}'..='\u{1D7FF}').filter(|&c| !matches!(fold(c), Fold::Keep))
}

/// How many bytes `c` takes in the folded text (0 when folding drops it).
pub(crate) fn folded_len(c: char) -> usize {
    match fold(c) {
        Fold::Keep => c.len_utf8(),
        Fold::Drop => 0,
        Fold::Ascii(_) => 1,
    }
}

/// The folded form of `text`, or `None` when folding would change nothing.
pub(super) fn folded(text: &str) -> Option<Folded> {
    if text.is_ascii() {
        return None;
    }
    // One read to decide, one to fold.
    super::spend(2 * text.len());
    if !text.chars().any(|c| !matches!(fold(c), Fold::Keep)) {
        return None;
    }
    let mut out = Folded { text: String::with_capacity(text.len()), starts: Vec::new(), ends: Vec::new() };
    out.starts.reserve(text.len());
    out.ends.reserve(text.len());
    for (i, c) in text.char_indices() {
        let end = i + c.len_utf8();
        match fold(c) {
            Fold::Drop => {}
            Fold::Ascii(a) => {
                out.text.push(char::from(a));
                out.starts.push(i);
                out.ends.push(end);
            }
            Fold::Keep => {
                out.text.push(c);
                out.starts.extend(i..end);
                out.ends.extend(i + 1..=end);
            }
        }
    }
    Some(out)
}
