//! The public half of a private key, read from its DER without building a key pair.
//!
//! Scanning only compares a key with its certificate, and aws-lc's full RSA parse runs
//! `RSA_check_key` (constant-time bignum work, about 0.4 ms per RSA-2048 key): most of
//! `check-expiration`'s CPU. The public key is in the DER anyway: (n, e) inside PKCS#1
//! `RSAPrivateKey`, the optional `publicKey` of SEC1 `ECPrivateKey`, either of them inside
//! PKCS#8. Keys that sign (the CAs) still go through [`keys::parse_key_file`].
//!
//! Anything the fast path does not recognise with certainty (other algorithms or curves, a SEC1
//! key without its public key, multi-prime RSA, sizes aws-lc refuses, odd DER) falls back to the
//! full parse, so errors and unusual keys read exactly as they did before. The fast path does
//! not prove the private half consistent with the public half; that matters only for a key that
//! is used, and scanned leaf keys are never used: renewal replaces them.

use crate::pki::inspect::Block;
use crate::pki::keys::{self, KeyError, KeyFormat};
use pkcs8::der::asn1::UintRef;
use pkcs8::der::{Decode, Encode, Reader, SliceReader};

/// A private key's public key and the form the key was stored in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicOfKey {
    /// SubjectPublicKeyInfo DER, comparable with a certificate's.
    pub spki: Vec<u8>,
    /// The key's on-disk form.
    pub format: KeyFormat,
}

/// Read a key file (exactly one private key block) for its public key.
pub fn public_of_key_file(bytes: &[u8]) -> Result<PublicOfKey, KeyError> {
    if let Ok(blocks) = crate::pki::inspect::pem_blocks(bytes) {
        if let [b] = blocks.as_slice() {
            if let Some(p) = fast(b) {
                return Ok(p);
            }
        }
    }
    let k = keys::parse_key_file(bytes)?;
    Ok(PublicOfKey {
        spki: k.spki(),
        format: k.format,
    })
}

/// [`public_of_key_file`] for one PEM block.
pub fn public_of_key_block(b: &Block) -> Result<PublicOfKey, KeyError> {
    if let Some(p) = fast(b) {
        return Ok(p);
    }
    let k = keys::parse_key_block(b)?;
    Ok(PublicOfKey {
        spki: k.spki(),
        format: k.format,
    })
}

fn fast(b: &Block) -> Option<PublicOfKey> {
    let format = match b.label.as_str() {
        "RSA PRIVATE KEY" => KeyFormat::Pkcs1,
        "EC PRIVATE KEY" => KeyFormat::Sec1,
        "PRIVATE KEY" => KeyFormat::Pkcs8,
        _ => return None,
    };
    // The full parse ignores the label and sniffs the DER; so does this.
    let spki = spki_of_der(&b.der)?;
    Some(PublicOfKey { spki, format })
}

/// SubjectPublicKeyInfo of a PKCS#8, PKCS#1 or SEC1 private key DER, when certain.
pub fn spki_of_der(der: &[u8]) -> Option<Vec<u8>> {
    if let Ok(pki) = pkcs8::PrivateKeyInfo::from_der(der) {
        return spki_of_pkcs8(&pki);
    }
    if let Some(rsa) = rsa_public(der) {
        return Some(rsa);
    }
    let ec = sec1::EcPrivateKey::from_der(der).ok()?;
    // A bare SEC1 key must name its curve; the full parse decides otherwise.
    if ec.parameters? != sec1::EcParameters::NamedCurve(P256) {
        return None;
    }
    ec_public(&ec, None)
}

const RSA_ENCRYPTION: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// DER of AlgorithmIdentifier { rsaEncryption, NULL }, as rcgen and Go write it.
const RSA_ALG: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// DER of AlgorithmIdentifier { id-ecPublicKey, prime256v1 }.
const EC_P256_ALG: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];

fn spki_of_pkcs8(pki: &pkcs8::PrivateKeyInfo<'_>) -> Option<Vec<u8>> {
    let alg = &pki.algorithm;
    if alg.oid == RSA_ENCRYPTION {
        // Parameters must be NULL or absent.
        if let Some(p) = alg.parameters {
            if !p.is_null() {
                return None;
            }
        }
        return rsa_public(pki.private_key);
    }
    if alg.oid == EC_PUBLIC_KEY && alg.parameters_oid().ok()? == P256 {
        let ec = sec1::EcPrivateKey::from_der(pki.private_key).ok()?;
        if ec
            .parameters
            .is_some_and(|p| p != sec1::EcParameters::NamedCurve(P256))
        {
            return None;
        }
        return ec_public(&ec, pki.public_key);
    }
    None
}

/// P-256 SPKI from the SEC1 key's public point (or PKCS#8 v2's), uncompressed form only.
fn ec_public(ec: &sec1::EcPrivateKey<'_>, outer: Option<&[u8]>) -> Option<Vec<u8>> {
    if ec.private_key.len() != 32 {
        return None;
    }
    let point = ec.public_key.or(outer)?;
    if point.len() != 65 || point[0] != 0x04 {
        return None;
    }
    Some(spki(EC_P256_ALG, point))
}

/// RSA SPKI from PKCS#1 `RSAPrivateKey` DER, for the keys aws-lc would accept: two primes,
/// 2048 to 8192 bits, an odd public exponent of 3 to 33 bits.
fn rsa_public(der: &[u8]) -> Option<Vec<u8>> {
    let (n, e) = rsa_n_e(der).ok()?;
    let bits = |u: &UintRef<'_>| {
        let b = u.as_bytes();
        b.first()
            .map_or(0, |f| b.len() * 8 - f.leading_zeros() as usize)
    };
    let odd = |u: &UintRef<'_>| u.as_bytes().last().is_some_and(|l| l & 1 == 1);
    if !(2048..=8192).contains(&bits(&n)) || !odd(&n) {
        return None;
    }
    if !(2..=33).contains(&bits(&e)) || !odd(&e) {
        return None;
    }
    let mut body = n.to_der().ok()?;
    body.extend(e.to_der().ok()?);
    Some(spki(RSA_ALG, &tlv(0x30, &body)))
}

/// (n, e) of `RSAPrivateKey ::= SEQUENCE { version 0, n, e, d, p, q, dp, dq, qinv }`.
fn rsa_n_e(der: &[u8]) -> pkcs8::der::Result<(UintRef<'_>, UintRef<'_>)> {
    let mut r = SliceReader::new(der)?;
    let ne = r.sequence(|r| {
        if u8::decode(r)? != 0 {
            // Multi-prime (version 1): left to the full parse.
            return Err(pkcs8::der::Tag::Integer.value_error());
        }
        let n = UintRef::decode(r)?;
        let e = UintRef::decode(r)?;
        for _ in 0..6 {
            UintRef::decode(r)?;
        }
        Ok((n, e))
    })?;
    r.finish(ne)
}

fn spki(alg: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(key);
    let mut body = alg.to_vec();
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// One DER TLV (definite length).
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
#[path = "pubkey_tests.rs"]
mod tests;
