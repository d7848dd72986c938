//! The name tables of the person detector as one asset loaded at run time, for builds without
//! the feature `embedded-names` (the wasm package ships them as `warden-names.bin`, so the
//! module stays small for policies that never look for names).
//!
//! Format: the header line `warden-names 1`, then each table (the front-coded text the engine
//! embeds, `tables/*.txt`) preceded by a line `<name> <length in bytes>`:
//!
//! ```text
//! warden-names 1
//! first_names 31557
//! <tables/first_names.txt>surnames 125987
//! <tables/surnames.txt>
//! ```
//!
//! Every byte is checked: a bad asset is a [`NamesError`], never a panic or a partial table.

use super::extra::fnv;
use alloc::vec::Vec;
use core::fmt;

/// Largest asset accepted, in bytes (the shipped one is about 157 KB).
pub const MAX_NAMES_ASSET: usize = 4 << 20;
/// Longest name in a table, in bytes.
const MAX_NAME: usize = 64;
const HEADER: &[u8] = b"warden-names 1\n";

/// Why name tables given at run time were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamesError {
    /// The table at fault (`first_names`, `surnames`), or `header`.
    pub section: &'static str,
    /// 1-based line within the table, when one line is at fault.
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: &'static str,
}

impl fmt::Display for NamesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "name tables: {} line {line}: {}", self.section, self.problem),
            None => write!(f, "name tables: {}: {}", self.section, self.problem),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for NamesError {}

fn error(section: &'static str, problem: &'static str) -> NamesError {
    NamesError { section, line: None, problem }
}

/// The first-name and surname hashes of an asset.
pub(super) fn parse(asset: &[u8]) -> Result<(Vec<u64>, Vec<u64>), NamesError> {
    if asset.len() > MAX_NAMES_ASSET {
        return Err(error("header", "larger than 4 MiB"));
    }
    let rest = asset.strip_prefix(HEADER).ok_or_else(|| error("header", "not a Warden name-table asset"))?;
    let (first, rest) = section(rest, "first_names")?;
    let (last, rest) = section(rest, "surnames")?;
    if !rest.is_empty() {
        return Err(error("surnames", "unexpected bytes after the last table"));
    }
    Ok((first, last))
}

/// One `<name> <length>\n<table>` section: its hashes and what follows it.
fn section<'a>(input: &'a [u8], name: &'static str) -> Result<(Vec<u64>, &'a [u8]), NamesError> {
    let rest = input
        .strip_prefix(name.as_bytes())
        .and_then(|r| r.strip_prefix(b" "))
        .ok_or_else(|| error(name, "missing section header"))?;
    let eol = rest.iter().take(9).position(|&c| c == b'\n').ok_or_else(|| error(name, "bad section length"))?;
    let (digits, rest) = rest.split_at(eol);
    let rest = rest.get(1..).unwrap_or_default();
    let len = core::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|d| d.parse::<usize>().ok())
        .ok_or_else(|| error(name, "bad section length"))?;
    if len > rest.len() {
        return Err(error(name, "truncated"));
    }
    let (table, rest) = rest.split_at(len);
    Ok((decode(table, name)?, rest))
}

/// A front-coded table: per line, how many leading bytes the name shares with the previous
/// one (one base-36 digit), then the rest of it (lower-case ASCII letters).
fn decode(table: &[u8], section: &'static str) -> Result<Vec<u64>, NamesError> {
    let mut name: Vec<u8> = Vec::with_capacity(MAX_NAME);
    let mut out = Vec::new();
    for (i, line) in table.split(|&c| c == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |problem| NamesError { section, line: Some(i + 1), problem };
        let (&digit, suffix) = line.split_first().ok_or_else(|| bad("empty line"))?;
        let shared = char::from(digit).to_digit(36).ok_or_else(|| bad("no shared-prefix digit"))? as usize;
        if shared > name.len() {
            return Err(bad("shares more than the previous name has"));
        }
        if suffix.is_empty() || !suffix.iter().all(u8::is_ascii_lowercase) {
            return Err(bad("a name must continue with lower-case ASCII letters"));
        }
        if shared + suffix.len() > MAX_NAME {
            return Err(bad("name longer than 64 bytes"));
        }
        name.truncate(shared);
        name.extend_from_slice(suffix);
        out.push(fnv(&name));
    }
    if out.is_empty() {
        return Err(error(section, "empty table"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::String;
    use alloc::vec;

    fn asset(first: &str, last: &str) -> Vec<u8> {
        format!("warden-names 1\nfirst_names {}\n{first}surnames {}\n{last}", first.len(), last.len()).into_bytes()
    }

    #[test]
    fn bad_assets_are_typed_errors() {
        let good = asset("0anna\n2dre\n", "0smith\n");
        assert!(parse(&good).is_ok());
        let cases: [(Vec<u8>, &str, Option<usize>); 8] = [
            (Vec::new(), "header", None),
            (b"warden-names 2\n".to_vec(), "header", None),
            (asset("0anna\n9x\n", "0smith\n"), "first_names", Some(2)),
            (asset("0anna\nzz\n", "0smith\n"), "first_names", Some(2)),
            (asset("0Anna\n", "0smith\n"), "first_names", Some(1)),
            (asset("", "0smith\n"), "first_names", None),
            (good.get(..good.len() - 3).unwrap().to_vec(), "surnames", None),
            ([good.as_slice(), b"x"].concat(), "surnames", None),
        ];
        for (bytes, section, line) in cases {
            let e = parse(&bytes).unwrap_err();
            assert_eq!((e.section, e.line), (section, line), "{e}");
        }
        let huge = vec![b'a'; MAX_NAMES_ASSET + 1];
        assert_eq!(parse(&huge).unwrap_err().problem, "larger than 4 MiB");
        let overlong = asset(&format!("0{}\n", "a".repeat(65)), "0smith\n");
        assert_eq!(parse(&overlong).unwrap_err().line, Some(1));
        // Bytes that are not UTF-8 or not letters never panic.
        for cut in 0..good.len() {
            let mut bytes = good.clone();
            bytes[cut] = 0xff;
            assert!(parse(&bytes).is_err());
        }
    }

    /// The asset scripts/build-wasm writes decodes to exactly the embedded tables.
    #[cfg(feature = "embedded-names")]
    #[test]
    fn asset_of_the_embedded_tables_matches_them() {
        use super::super::Detector;
        let first = include_str!("tables/first_names.txt");
        let last = include_str!("tables/surnames.txt");
        let loaded = Detector::with_names(&asset(first, last)).unwrap();
        assert!(loaded.has_names());
        let embedded = Detector::new();
        let text = String::from("Dear Maria Fernandez, thanks. Regards, John O'Brien. Call Ngozi Okafor.");
        let extra = crate::Extra::ALL;
        let found = loaded.detect_with_extra(None, &text, extra);
        assert!(!found.is_empty());
        assert_eq!(found, embedded.detect_with_extra(None, &text, extra));
    }
}
