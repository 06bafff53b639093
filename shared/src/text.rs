//! Bounding text that comes from outside (error messages, claims, reasons) before it is
//! logged, stored or copied into a message: one helper, so every bound cuts the same way.

/// The longest error text kept from an SDK or HTTP stack failure: enough for the code,
/// message and cause an operator needs, and a bound on what a misbehaving peer can make
/// the functions log or copy into a dead-letter message.
pub const MAX_ERROR_DETAIL_BYTES: usize = 512;

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

/// `error` and each of its causes, `": "`-separated, bounded by
/// [`MAX_ERROR_DETAIL_BYTES`]: an HTTP client's own message is only the outermost layer
/// ("error sending request"); the cause an operator needs is further down.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    bounded(text, MAX_ERROR_DETAIL_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary() {
        assert_eq!(bounded("abc".into(), 5), "abc");
        assert_eq!(bounded("abc".into(), 3), "abc");
        assert_eq!(bounded("üüü".into(), 5), "üü");
        assert_eq!(bounded("ü".into(), 1), "");
        assert_eq!(bounded("abc".into(), 0), "");
        let cut = bounded("é".repeat(400), MAX_ERROR_DETAIL_BYTES);
        assert_eq!(cut.len(), MAX_ERROR_DETAIL_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_names_every_cause_within_the_bound() {
        let error = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&error), "outer: connection refused");
        let long = Outer(std::io::Error::other("x".repeat(2000)));
        assert_eq!(error_chain(&long).len(), MAX_ERROR_DETAIL_BYTES);
    }
}
