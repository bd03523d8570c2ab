//! Session key parsing and agent id normalisation on arbitrary text: no panic.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = carapace_policy::session::SessionKey::parse(text);
            let _ = carapace_policy::session::normalize_agent_id(text);
        }
    });
}
