//! Sealing a new CA key for its trip through etcd to the other control-plane nodes.
//!
//! Why this shape:
//! - The rotation record lives in the cluster's etcd, which many can read: every
//!   `apiserver-etcd-client` holder (each kube-apiserver), anyone with an etcd client
//!   certificate, and every etcd snapshot, which operators copy off the nodes for backups. A
//!   CA key in clear there would hand out the etcd CA for good.
//! - Every control-plane node already holds the *old* etcd CA key: kubeadm HA requires shared
//!   CAs (`kubeadm join --control-plane` copies them, or downloads them from the
//!   kubeadm-certs Secret). So the old key is a secret shared by exactly the nodes that must
//!   receive the new one, and by nobody who only reads etcd. Deriving the encryption key from
//!   it needs no new secret and no new channel.
//! - HKDF-SHA256 (RFC 5869) is the standard way to turn high-entropy secret material into a
//!   key; the info label names the CA and the rotation id, so no two rotations share a key
//!   even when the same old CA is rotated twice (an abort, then a new rotation).
//! - AES-256-GCM (an AEAD) both hides the key and proves it was not altered: a record edited
//!   by someone without the old key fails to open, rather than planting a CA of theirs. The
//!   additional data binds the ciphertext to the rotation id and the new CA certificate, so
//!   a valid ciphertext cannot be moved to another record or paired with another CA. The
//!   96-bit nonce is random; each key seals exactly one message.
//! - aws-lc-rs is already the crypto provider of rcgen and rustls in this build.
//!
//! The input keying material is the old key in a canonical form, so that nodes whose key files
//! differ only in PEM form (PKCS#1, SEC1, PKCS#8) derive the same key: the PKCS#1
//! RSAPrivateKey DER for RSA, the 32-byte private scalar for ECDSA P-256.

use crate::pki::keys::{KeyFormat, PrivateKey};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use pkcs8::der::Decode;
use serde::{Deserialize, Serialize};

/// The algorithm name recorded with a sealed key.
pub const ALG: &str = "HKDF-SHA256/AES-256-GCM";
/// HKDF salt: fixed, naming the scheme (RFC 5869 allows a non-secret constant salt).
const SALT: &[u8] = b"kubeadm-certd ca-rotation v1";
const RSA_OID: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A sealed secret, as stored in the rotation record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// [`ALG`].
    pub alg: String,
    /// The nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub ciphertext: String,
}

/// Why a sealed key could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The old key is not in a form we can canonicalise.
    #[error("the old CA key cannot be used to derive the sealing key: {0}")]
    Key(String),
    /// Opening failed: a different old key, or an altered record.
    #[error("the new CA key does not open with this node's old etcd CA key (a different CA key, or an altered rotation record)")]
    Open,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// The canonical secret material of a private key (see the module docs).
pub fn key_material(k: &PrivateKey) -> Result<Vec<u8>, SealError> {
    let der = k.pair.serialized_der();
    let bad = |e: &dyn std::fmt::Display| SealError::Key(e.to_string());
    let ec_scalar = |d: &[u8]| {
        sec1::EcPrivateKey::from_der(d)
            .map(|e| e.private_key.to_vec())
            .map_err(|e| bad(&e))
    };
    match k.format {
        KeyFormat::Pkcs1 => Ok(der.to_vec()),
        KeyFormat::Sec1 => ec_scalar(der),
        KeyFormat::Pkcs8 => {
            let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|e| bad(&e))?;
            if info.algorithm.oid == RSA_OID {
                Ok(info.private_key.to_vec())
            } else {
                ec_scalar(info.private_key)
            }
        }
    }
}

fn aead_key(old: &PrivateKey, label: &str) -> Result<LessSafeKey, SealError> {
    let ikm = key_material(old)?;
    let prk = Salt::new(HKDF_SHA256, SALT).extract(&ikm);
    let info = [label.as_bytes()];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .map_err(|_| SealError::Other("HKDF expand failed".into()))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Seal `secret` with a key derived from `old` and `label`; `aad` is bound to it.
pub fn seal(old: &PrivateKey, label: &str, aad: &[u8], secret: &[u8]) -> Result<Sealed, SealError> {
    let key = aead_key(old, label)?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| SealError::Other("no randomness for the nonce".into()))?;
    let mut buf = secret.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| SealError::Other("sealing failed".into()))?;
    Ok(Sealed {
        alg: ALG.into(),
        nonce: b64().encode(nonce),
        ciphertext: b64().encode(buf),
    })
}

/// Open what [`seal`] made with the same old key, label and additional data.
pub fn open(old: &PrivateKey, label: &str, aad: &[u8], s: &Sealed) -> Result<Vec<u8>, SealError> {
    if s.alg != ALG {
        return Err(SealError::Other(format!(
            "sealed with {:?}, this version knows {ALG}",
            s.alg
        )));
    }
    let nonce = b64().decode(&s.nonce).map_err(|_| SealError::Open)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| SealError::Open)?;
    let mut buf = b64().decode(&s.ciphertext).map_err(|_| SealError::Open)?;
    let key = aead_key(old, label)?;
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| SealError::Open)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::inspect::KeyAlg;
    use crate::pki::keys::{encode, generate, parse_key_file};

    fn key(alg: KeyAlg, f: KeyFormat) -> (PrivateKey, rcgen::KeyPair) {
        let pair = generate(alg).unwrap();
        let pem = encode(&pair, alg, f).unwrap();
        (parse_key_file(pem.as_bytes()).unwrap(), pair)
    }

    #[test]
    fn the_same_key_in_any_pem_form_opens_it() {
        for (alg, forms) in [
            (KeyAlg::EcP256, [KeyFormat::Sec1, KeyFormat::Pkcs8]),
            (KeyAlg::Rsa(2048), [KeyFormat::Pkcs1, KeyFormat::Pkcs8]),
        ] {
            let pair = generate(alg).unwrap();
            let a = parse_key_file(encode(&pair, alg, forms[0]).unwrap().as_bytes()).unwrap();
            let b = parse_key_file(encode(&pair, alg, forms[1]).unwrap().as_bytes()).unwrap();
            assert_eq!(key_material(&a).unwrap(), key_material(&b).unwrap());
            let s = seal(&a, "etcd-ca r1", b"aad", b"the new key").unwrap();
            assert_eq!(open(&b, "etcd-ca r1", b"aad", &s).unwrap(), b"the new key");
        }
    }

    #[test]
    fn another_key_label_aad_or_an_edit_does_not_open_it() {
        let (old, _) = key(KeyAlg::EcP256, KeyFormat::Sec1);
        let (other, _) = key(KeyAlg::EcP256, KeyFormat::Sec1);
        let s = seal(&old, "etcd-ca r1", b"aad", b"secret").unwrap();
        assert!(!s.ciphertext.contains("secret"));
        assert!(matches!(
            open(&other, "etcd-ca r1", b"aad", &s),
            Err(SealError::Open)
        ));
        assert!(matches!(
            open(&old, "etcd-ca r2", b"aad", &s),
            Err(SealError::Open)
        ));
        assert!(matches!(
            open(&old, "etcd-ca r1", b"aaD", &s),
            Err(SealError::Open)
        ));
        let mut edited = s.clone();
        let mut ct = b64().decode(&edited.ciphertext).unwrap();
        ct[0] ^= 1;
        edited.ciphertext = b64().encode(ct);
        assert!(matches!(
            open(&old, "etcd-ca r1", b"aad", &edited),
            Err(SealError::Open)
        ));
        // Two seals of the same secret differ (random nonce).
        let t = seal(&old, "etcd-ca r1", b"aad", b"secret").unwrap();
        assert_ne!(s.nonce, t.nonce);
    }
}
