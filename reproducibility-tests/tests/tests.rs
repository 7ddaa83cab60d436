//! The cross-cutting suite: the real binary, in separate processes, checked by reference tools.

// Shared helpers: locating the binary, the demo inputs, running builds under variations.
mod util;

// Test servers: the CNCF distribution registry on 127.0.0.1, and a fault-injecting TCP proxy.
mod registry_server;

// The demo manifest built twice under different conditions, and its record snapshot.
mod demo_build;

// The demo image read back by independent tools: veritysetup, fsck.erofs, umoci, the kernel.
mod reference_tools;

// Bad inputs: each refused with a message naming the input and the fix, and no output left.
mod bad_inputs;

// `check` (two builds, differences located by format, injected non-determinism) and `verify`.
mod check;

// Real boots under QEMU (software emulation), and tampering that must stop them.
mod boot;

// Data disks and wheels: veritysetup, fsck.erofs, Python's zipfile, sha256sum, sev-snp-measure.
mod disks;

// The demo embedding server's vectors against a numpy BERT written from the specifications.
mod model_reference;

// Releases: keygen, sign (checked by Python's `cryptography` and sha256sum), rebuild
// attestations, client policy checks and their failures, release diff.
mod release;
// `push`/`pull` against a real registry, read back by skopeo and curl; corruption, cuts, auth.
mod registry;
// The whole release path on the demo: sign, push, pull, attest, check; a model-only release.
mod release_demo;
// The one real measured boot: a UKI under OVMF + swtpm, guest PCR 4 and PCR 11 vs the record.
mod vtpm;
// The demo's vTPM VM under QEMU + swtpm, checked by the example client against its release,
// another release, and from a UKI with a tampered command line.
mod attested;
