//! The User-Agent of every request this process sends, host and members alike:
//! `flotilla/<version> (<identity>)`. API servers record it in their audit logs, which tells two
//! replicas' writes apart even though they share credentials (the fencing tests rely on it).
use std::sync::OnceLock;

use http::{HeaderName, HeaderValue, header::USER_AGENT};

static AGENT: OnceLock<HeaderValue> = OnceLock::new();

/// Names this replica; the first call wins. Characters a header cannot carry become `_`.
pub fn set_identity(identity: &str) {
    let clean: String = identity
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    let text = format!("flotilla/{} ({clean})", env!("CARGO_PKG_VERSION"));
    if let Ok(value) = HeaderValue::from_str(&text) {
        let _ = AGENT.set(value);
    }
}

/// The header for a client's `Config::headers`.
pub fn header() -> (HeaderName, HeaderValue) {
    let value = AGENT.get().cloned().unwrap_or_else(|| {
        HeaderValue::from_static(concat!("flotilla/", env!("CARGO_PKG_VERSION")))
    });
    (USER_AGENT, value)
}

/// Adds the header to a client configuration.
pub fn apply(config: &mut kube::Config) {
    let (name, value) = header();
    config.headers.retain(|(n, _)| n != name);
    config.headers.push((name, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_in_the_agent() {
        set_identity("roll a\n");
        let (name, value) = header();
        assert_eq!(name, USER_AGENT);
        assert!(
            value.to_str().expect("ascii").ends_with("(roll_a_)"),
            "{value:?}"
        );
        let mut config = kube::Config::new("https://127.0.0.1:1".parse().expect("uri"));
        apply(&mut config);
        apply(&mut config);
        assert_eq!(config.headers.len(), 1);
    }
}
