//! The `carapace` command.

fn main() {}
