//! attested-server's integration tests: one binary, a module per area (STYLE 15).

/// The attested client against servers whose evidence does or does not match a release.
mod client;
/// Which evidence source a machine gets.
mod detect;
/// Routes, bounds and the answers to bad requests, over real TLS on 127.0.0.1.
mod http;
/// 50 clients holding half-sent requests open while 8 clients send good ones.
mod load;
mod util;
/// `VtpmQuote` against swtpm, checked by the verifier and by tpm2-tools.
mod vtpm;
