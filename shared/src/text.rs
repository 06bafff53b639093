//! Bounding text that comes from outside (error messages, claims, reasons) before it is
//! logged, stored or copied into a message: one helper, so every bound cuts the same way.

/// `text` cut to at most `max` bytes on a character boundary (never inside a UTF-8
/// sequence, so the result is still a valid `String`).
pub fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(bounded("abc".into(), 5), "abc");
        assert_eq!(bounded("abc".into(), 3), "abc");
        assert_eq!(bounded("üüü".into(), 5), "üü");
        assert_eq!(bounded("ü".into(), 1), "");
        assert_eq!(bounded("abc".into(), 0), "");
    }
}
