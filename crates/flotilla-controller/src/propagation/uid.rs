//! A uid as the copy caches keep it. Two are kept per copy (the member object's and its
//! origin's), 100,000 copies at the scale the engine is built for: as text each needs a heap
//! allocation of its own (36 bytes do not fit inline), as the 16 bytes of the UUID it is (every
//! uid the API server sets) it needs none.
use std::fmt;

use compact_str::CompactString;

#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Uid {
    /// A UUID in the API server's form (lowercase, hyphenated): exactly that text again when
    /// shown, so comparing bytes is comparing texts.
    Uuid([u8; 16]),
    /// Anything else, as given (an annotation on a member object can say anything).
    Text(CompactString),
}

/// Where the hyphens of a UUID's text are.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

fn lower_hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 || HYPHENS.iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut digits = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !HYPHENS.contains(i))
        .map(|(_, &c)| lower_hex(c));
    let mut out = [0u8; 16];
    for byte in &mut out {
        *byte = (digits.next()?? << 4) | digits.next()??;
    }
    Some(out)
}

impl Uid {
    pub fn new(text: &str) -> Self {
        match uuid_bytes(text) {
            Some(bytes) => Uid::Uuid(bytes),
            None => Uid::Text(text.into()),
        }
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uid::Text(t) => f.write_str(t),
            Uid::Uuid(bytes) => {
                for (i, byte) in bytes.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}", self = self.to_string())
    }
}

impl PartialEq<str> for Uid {
    fn eq(&self, other: &str) -> bool {
        match self {
            Uid::Text(t) => t == other,
            Uid::Uuid(bytes) => uuid_bytes(other).as_ref() == Some(bytes),
        }
    }
}

impl PartialEq<String> for Uid {
    fn eq(&self, other: &String) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b3c2a6e-8f51-4d0e-9a7b-1c2d3e4f5a6b";

    #[test]
    fn an_api_server_uid_is_kept_as_its_bytes_and_shown_as_given() {
        let uid = Uid::new(UID);
        assert!(matches!(uid, Uid::Uuid(_)));
        assert_eq!(uid.to_string(), UID);
        assert_eq!(uid, *UID);
        assert_ne!(uid, *"0b3c2a6e-8f51-4d0e-9a7b-1c2d3e4f5a6c");
    }

    #[test]
    fn other_texts_are_kept_as_text_and_compared_as_text() {
        // Upper case parses as the same UUID elsewhere, but is another string: kept as given.
        let upper = UID.to_uppercase();
        for text in [
            "",
            "u-1",
            upper.as_str(),
            "0b3c2a6e-8f51-4d0e-9a7b-1c2d3e4f5a6",
            "0b3c2a6e+8f51-4d0e-9a7b-1c2d3e4f5a6b",
        ] {
            let uid = Uid::new(text);
            assert!(matches!(uid, Uid::Text(_)), "{text}");
            assert_eq!(uid.to_string(), text);
            assert_eq!(uid, *text);
        }
        assert_ne!(Uid::new(&upper), *UID);
        assert_ne!(Uid::new(UID), *upper.as_str());
    }

    #[test]
    fn it_takes_no_more_room_than_a_compact_string() {
        assert_eq!(
            std::mem::size_of::<Uid>(),
            std::mem::size_of::<CompactString>()
        );
    }
}
