//! Text helpers: byte ↔ char offsets (the wire uses Unicode scalar indices, SPEC §2).

/// Converts sorted byte offsets into char offsets in one pass over `text`.
///
/// `offsets` must be ascending and on char boundaries; each is replaced by its char index.
pub(crate) fn bytes_to_chars(text: &str, offsets: &mut [usize]) {
    let mut chars = 0usize;
    let mut pos = 0usize;
    let mut iter = text.char_indices().peekable();
    for off in offsets.iter_mut() {
        while pos < *off {
            match iter.next() {
                Some((_, c)) => {
                    chars += 1;
                    pos += c.len_utf8();
                }
                None => break,
            }
        }
        *off = chars;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_multibyte_offsets() {
        let t = "Grüße 👋 a@b.co";
        let start = t.find('a').unwrap_or(0);
        let mut offs = [0, start, t.len()];
        bytes_to_chars(t, &mut offs);
        assert_eq!(offs, [0, 8, 14]);
    }
}
