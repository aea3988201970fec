//! Cross-protocol scripting defence: a web page can make a browser send an
//! HTTP request to any loopback port, and a line protocol would run the
//! lines of its body as commands. Both listeners close a connection whose
//! request looks like HTTP (see [`strata_protocol::is_http_probe_word`] and
//! [`strata_protocol::text::looks_like_http`]) without running it, as
//! Redis's `securityWarningCommand` does.

/// Logs the warning for one such connection (each is closed at once, so
/// this is once per connection). The text is Redis's, so operators who
/// search for it find the explanation.
pub(crate) fn warn(peer: &str) {
    tracing::warn!(
        %peer,
        "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: \
         commands to Strata. This is likely due to an attacker attempting to use Cross \
         Protocol Scripting to compromise your Strata instance. Connection aborted."
    );
}
