//! The one JSON codec ([`encode`], [`decode`]) and the measures a bus's
//! value limit is checked with ([`encoded_len`], [`unescaped_len`],
//! [`json_text_len`]).

use serde::Serialize;

use crate::error::{Error, Result};

/// A writer that only counts bytes.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The length of `value`'s JSON, computed without allocating it.
pub fn encoded_len<T: Serialize>(value: &T) -> serde_json::Result<usize> {
    let mut c = Count(0);
    serde_json::to_writer(&mut c, value)?;
    Ok(c.0)
}

/// The length of `value`'s JSON with every escaped character counted as
/// the bytes it stands for (`"\u0001"` is 3 bytes: two quotes and one
/// control character), computed without allocating the text.
pub fn unescaped_len<T: Serialize>(value: &T) -> serde_json::Result<usize> {
    /// The compact formatter, but an escape writes the one byte it stands
    /// for (serde_json escapes only single-byte characters).
    struct Unescaped;
    impl serde_json::ser::Formatter for Unescaped {
        fn write_char_escape<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
            _escape: serde_json::ser::CharEscape,
        ) -> std::io::Result<()> {
            writer.write_all(b"x")
        }
    }
    let mut c = Count(0);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut c, Unescaped,
    ))?;
    Ok(c.0)
}

/// The length of JSON text with every escape counted as the UTF-8 bytes of
/// what it stands for (`\n` 1, `\u00e9` 2, a surrogate pair 4).
pub fn json_text_len(json: &str) -> usize {
    let b = json.as_bytes();
    let (mut i, mut n) = (0usize, 0usize);
    while i < b.len() {
        if b[i] != b'\\' {
            n += 1;
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'u') {
            let unit = json
                .get(i + 2..i + 6)
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            n += match unit {
                Some(u) if u < 0x80 => 1,
                Some(u) if u < 0x800 || (0xD800..0xE000).contains(&u) => 2,
                Some(_) => 3,
                None => 6,
            };
            i += 6;
        } else {
            n += 1;
            i += 2;
        }
    }
    n
}

/// The one JSON codec: encodes a value for `key`.
pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::decode(key, e))
}

/// The one JSON codec: decodes the value stored under `key`, naming the key
/// when it is not what this crate wrote.
pub fn decode<T: serde::de::DeserializeOwned>(key: &str, raw: &str) -> Result<T> {
    serde_json::from_str(raw).map_err(|e| Error::decode(key, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_len_counts_what_escapes_stand_for() {
        for v in ["plain", "a\"b\\c\n\t", "\u{1}\u{1f}", "é ü €", "😀 x", ""] {
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json_text_len(&json), v.len() + 2, "{json}");
        }
        // ASCII-only encoders' escapes: é (2), € (3), a surrogate pair (4).
        assert_eq!(
            json_text_len(r#""\u00e9\u20ac\ud83d\ude00""#),
            2 + 3 + 4 + 2
        );
        // A broken escape counts as written.
        assert_eq!(json_text_len(r#"\uZZZZ"#), 6);
    }
}
