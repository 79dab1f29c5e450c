//! Kubeconfig parsing and credential replacement: on any text, `parse` gives credentials or an
//! error; when `replace_credentials` succeeds, the result parses back to the new credentials of
//! the same user and cluster.
#![no_main]

use kubeadm_certd::pki::kubeconfig::{parse, replace_credentials};
use libfuzzer_sys::fuzz_target;

const CERT: &[u8] = b"-----BEGIN CERTIFICATE-----\nTkVXQ0VSVA==\n-----END CERTIFICATE-----\n";
const KEY: &[u8] = b"-----BEGIN EC PRIVATE KEY-----\nTkVXS0VZ\n-----END EC PRIVATE KEY-----\n";
const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nTkVXQ0E=\n-----END CERTIFICATE-----\n";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(kc) = parse(text) else {
        return;
    };
    let Ok(out) = replace_credentials(text, &kc, CERT, KEY, CA) else {
        return;
    };
    let back = parse(&out).expect("an edited kubeconfig must parse");
    assert_eq!(back.user, kc.user);
    assert_eq!(back.cluster, kc.cluster);
    assert_eq!(back.client_cert, CERT);
    assert_eq!(back.client_key, KEY);
    assert_eq!(back.ca, CA);
});
