//! Strings that come from members (error bodies, values) are cut before they reach host status,
//! events or logs: a member's 300 KB error echo must not make a status write fail with 413 or
//! fill the operator's log.

/// At most `max` bytes of `s`, cut on a character boundary, with a note of what was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &s[..end], s.len() - end)
}

/// The longest member message kept in status and events.
pub const MESSAGE_MAX: usize = 512;
/// The longest drifted value kept in status.
pub const VALUE_MAX: usize = 256;

/// A member message, cut to [`MESSAGE_MAX`].
pub fn message(s: &str) -> String {
    truncate(s, MESSAGE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_kept() {
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn long_strings_are_cut_on_a_char_boundary() {
        let s = "é".repeat(10); // 20 bytes
        let t = truncate(&s, 5);
        assert!(t.starts_with("éé…"), "{t}");
        assert!(t.contains("16 bytes cut"), "{t}");
    }

    #[test]
    fn a_huge_message_fits_in_status() {
        let t = message(&"x".repeat(300_000));
        assert!(t.len() < 600);
    }
}
