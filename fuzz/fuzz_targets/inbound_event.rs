//! The inbound event parsers (Slack Socket Mode frames, Discord Gateway dispatches, Telegram
//! `getUpdates` answers, Matrix `/sync` answers) on arbitrary bytes: no panic. The first byte
//! picks the channel, the rest is what its server sent.
fn main() {
    let Ok(fuzz) = carapace_channels::inbound::fuzz::InboundFuzz::new() else {
        std::process::exit(2);
    };
    // A panic is what the fuzzer looks for; the sources' state after one is never used again.
    let fuzz = std::panic::AssertUnwindSafe(fuzz);
    afl::fuzz!(|data: &[u8]| {
        let [which, body @ ..] = data else {
            return;
        };
        let _ = fuzz.run(*which, body);
    });
}
