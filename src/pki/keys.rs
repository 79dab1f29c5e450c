//! Private keys: generate, parse, and encode in the PEM form the replaced key had.
//!
//! kubeadm writes RSA keys as PKCS#1 `RSA PRIVATE KEY` and ECDSA keys as SEC1
//! `EC PRIVATE KEY` with the curve OID (client-go `keyutil.MarshalPrivateKeyToPEM`); it reads
//! PKCS#8 `PRIVATE KEY` too. rcgen generates PKCS#8, so we re-wrap its DER here.

use crate::node::cluster_config::EncryptionAlgorithm;
use crate::pki::inspect::{Block, KeyAlg};
use pkcs8::der::{Decode, Encode};
use rcgen::{KeyPair, PublicKeyData, RsaKeySize};

/// The PEM form of a private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// `RSA PRIVATE KEY`
    Pkcs1,
    /// `EC PRIVATE KEY`
    Sec1,
    /// `PRIVATE KEY`
    Pkcs8,
}

impl KeyFormat {
    /// kubeadm's format for a key algorithm.
    pub fn kubeadm_default(alg: KeyAlg) -> KeyFormat {
        match alg {
            KeyAlg::Rsa(_) => KeyFormat::Pkcs1,
            KeyAlg::EcP256 | KeyAlg::EcP384 => KeyFormat::Sec1,
        }
    }

    fn from_label(label: &str) -> Option<KeyFormat> {
        match label {
            "RSA PRIVATE KEY" => Some(KeyFormat::Pkcs1),
            "EC PRIVATE KEY" => Some(KeyFormat::Sec1),
            "PRIVATE KEY" => Some(KeyFormat::Pkcs8),
            _ => None,
        }
    }
}

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not a private key we can read.
    #[error("{0}")]
    Parse(String),
    /// A key algorithm kubeadm does not use.
    #[error("unsupported key algorithm: {0}")]
    Unsupported(String),
    /// Key generation or encoding failed.
    #[error("{0}")]
    Crypto(String),
}

/// A parsed private key and the form it was stored in.
#[derive(Debug)]
pub struct PrivateKey {
    /// The key pair (usable for signing and for the public key).
    pub pair: KeyPair,
    /// Its on-disk form.
    pub format: KeyFormat,
}

impl PrivateKey {
    /// SubjectPublicKeyInfo DER of the key, comparable with a certificate's.
    pub fn spki(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }
}

/// Parse a private key from a PEM block.
pub fn parse_key_block(b: &Block) -> Result<PrivateKey, KeyError> {
    let format = KeyFormat::from_label(&b.label).ok_or_else(|| {
        KeyError::Parse(format!(
            "expected a private key PEM block, found {}",
            b.label
        ))
    })?;
    let pair = KeyPair::try_from(b.der.as_slice())
        .map_err(|e| KeyError::Parse(format!("not a valid {} block: {e}", b.label)))?;
    Ok(PrivateKey { pair, format })
}

/// Parse a key file: exactly one private key block.
pub fn parse_key_file(bytes: &[u8]) -> Result<PrivateKey, KeyError> {
    let blocks =
        crate::pki::inspect::pem_blocks(bytes).map_err(|e| KeyError::Parse(e.to_string()))?;
    match blocks.as_slice() {
        [b] => parse_key_block(b),
        _ => Err(KeyError::Parse(format!(
            "expected one private key PEM block, found {}",
            blocks.len()
        ))),
    }
}

/// Generate a new key of the given algorithm.
pub fn generate(alg: KeyAlg) -> Result<KeyPair, KeyError> {
    let c = |e: rcgen::Error| KeyError::Crypto(format!("key generation failed: {e}"));
    match alg {
        KeyAlg::Rsa(bits) => {
            let size = match bits {
                2048 => RsaKeySize::_2048,
                3072 => RsaKeySize::_3072,
                4096 => RsaKeySize::_4096,
                n => return Err(KeyError::Unsupported(format!("RSA-{n}"))),
            };
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size).map_err(c)
        }
        KeyAlg::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(c),
        KeyAlg::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(c),
    }
}

impl From<EncryptionAlgorithm> for KeyAlg {
    fn from(a: EncryptionAlgorithm) -> KeyAlg {
        match a {
            EncryptionAlgorithm::Rsa2048 => KeyAlg::Rsa(2048),
            EncryptionAlgorithm::Rsa3072 => KeyAlg::Rsa(3072),
            EncryptionAlgorithm::Rsa4096 => KeyAlg::Rsa(4096),
            EncryptionAlgorithm::EcdsaP256 => KeyAlg::EcP256,
            EncryptionAlgorithm::EcdsaP384 => KeyAlg::EcP384,
        }
    }
}

/// The algorithm and PEM form of a renewal's new key (issue 18): with an algorithm set (the
/// cluster's `encryptionAlgorithm` or the config's), that algorithm in kubeadm's form for it
/// (PKCS#1 for RSA, SEC1 for ECDSA: client-go `keyutil.MarshalPrivateKeyToPEM`), whatever the
/// old key was, as kubeadm's `NewPrivateKey(cfg.EncryptionAlgorithmType())` does; without one,
/// the old key's algorithm in the old key's form (the behaviour before issue 18, kept when
/// nothing says which algorithm the cluster uses). `None` when neither is known.
pub fn new_key_spec(
    policy: Option<EncryptionAlgorithm>,
    old_alg: Option<KeyAlg>,
    old_format: Option<KeyFormat>,
) -> Option<(KeyAlg, KeyFormat)> {
    match policy {
        Some(p) => {
            let alg = KeyAlg::from(p);
            Some((alg, KeyFormat::kubeadm_default(alg)))
        }
        None => {
            let alg = old_alg?;
            let format = match old_format? {
                // A PKCS#1 or SEC1 form that cannot hold the algorithm is never asked for here
                // (the old key had it), but stay safe.
                KeyFormat::Pkcs1 if !matches!(alg, KeyAlg::Rsa(_)) => {
                    KeyFormat::kubeadm_default(alg)
                }
                f => f,
            };
            Some((alg, format))
        }
    }
}

const P256_OID: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384_OID: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Encode a freshly generated key in `format`. Only for keys from [`generate`]: rcgen keeps a
/// loaded key's original DER, which may not be PKCS#8.
pub fn encode(pair: &KeyPair, alg: KeyAlg, format: KeyFormat) -> Result<String, KeyError> {
    let der = pair.serialized_der();
    let e = |m: &str| KeyError::Crypto(format!("encoding the new key: {m}"));
    let (label, body) = match format {
        KeyFormat::Pkcs8 => ("PRIVATE KEY", der.to_vec()),
        KeyFormat::Pkcs1 => {
            if !matches!(alg, KeyAlg::Rsa(_)) {
                return Err(e("PKCS#1 holds only RSA keys"));
            }
            let inner = match pkcs8::PrivateKeyInfo::from_der(der) {
                Ok(pki) => pki.private_key.to_vec(),
                // aws-lc may hand out PKCS#1 directly.
                Err(_) => der.to_vec(),
            };
            ("RSA PRIVATE KEY", inner)
        }
        KeyFormat::Sec1 => {
            let curve = match alg {
                KeyAlg::EcP256 => P256_OID,
                KeyAlg::EcP384 => P384_OID,
                KeyAlg::Rsa(_) => return Err(e("SEC1 holds only EC keys")),
            };
            let pki = pkcs8::PrivateKeyInfo::from_der(der).map_err(|x| e(&x.to_string()))?;
            let inner =
                sec1::EcPrivateKey::from_der(pki.private_key).map_err(|x| e(&x.to_string()))?;
            // Go's ParseECPrivateKey needs the named curve, which PKCS#8's inner key omits.
            let full = sec1::EcPrivateKey {
                private_key: inner.private_key,
                parameters: Some(sec1::EcParameters::NamedCurve(curve)),
                public_key: Some(pair.public_key_raw()),
            };
            (
                "EC PRIVATE KEY",
                full.to_der().map_err(|x| e(&x.to_string()))?,
            )
        }
    };
    Ok(crate::pki::inspect::pem_lf(&pem::Pem::new(label, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(alg: KeyAlg, format: KeyFormat, label: &str) {
        let pair = generate(alg).unwrap();
        let text = encode(&pair, alg, format).unwrap();
        assert!(
            text.starts_with(&format!("-----BEGIN {label}-----")),
            "{text}"
        );
        let back = parse_key_file(text.as_bytes()).unwrap();
        assert_eq!(back.format, format);
        assert_eq!(back.spki(), pair.subject_public_key_info());
    }

    #[test]
    fn ec_keys_roundtrip_as_sec1_and_pkcs8() {
        roundtrip(KeyAlg::EcP256, KeyFormat::Sec1, "EC PRIVATE KEY");
        roundtrip(KeyAlg::EcP256, KeyFormat::Pkcs8, "PRIVATE KEY");
    }

    #[test]
    fn p384_keys_roundtrip_as_sec1_with_their_curve() {
        roundtrip(KeyAlg::EcP384, KeyFormat::Sec1, "EC PRIVATE KEY");
        let pair = generate(KeyAlg::EcP384).unwrap();
        let text = encode(&pair, KeyAlg::EcP384, KeyFormat::Sec1).unwrap();
        let p = pem::parse(text).unwrap();
        let k = sec1::EcPrivateKey::from_der(p.contents()).unwrap();
        assert_eq!(k.parameters, Some(sec1::EcParameters::NamedCurve(P384_OID)));
    }

    #[test]
    fn a_set_algorithm_wins_over_the_old_key_in_kubeadm_form() {
        use EncryptionAlgorithm as E;
        let old = (Some(KeyAlg::Rsa(2048)), Some(KeyFormat::Pkcs8));
        assert_eq!(
            new_key_spec(Some(E::EcdsaP256), old.0, old.1),
            Some((KeyAlg::EcP256, KeyFormat::Sec1))
        );
        assert_eq!(
            new_key_spec(Some(E::Rsa3072), Some(KeyAlg::EcP256), None),
            Some((KeyAlg::Rsa(3072), KeyFormat::Pkcs1))
        );
        assert_eq!(
            new_key_spec(None, old.0, old.1),
            Some((KeyAlg::Rsa(2048), KeyFormat::Pkcs8))
        );
        assert_eq!(new_key_spec(None, None, old.1), None);
        for a in E::ALL {
            assert_eq!(KeyAlg::from(a).to_string(), a.as_str());
        }
    }

    #[test]
    fn rsa_keys_roundtrip_as_pkcs1() {
        roundtrip(KeyAlg::Rsa(2048), KeyFormat::Pkcs1, "RSA PRIVATE KEY");
    }

    #[test]
    fn sec1_carries_the_curve_oid() {
        let pair = generate(KeyAlg::EcP256).unwrap();
        let text = encode(&pair, KeyAlg::EcP256, KeyFormat::Sec1).unwrap();
        let p = pem::parse(text).unwrap();
        let k = sec1::EcPrivateKey::from_der(p.contents()).unwrap();
        assert_eq!(k.parameters, Some(sec1::EcParameters::NamedCurve(P256_OID)));
    }

    #[test]
    fn odd_sizes_are_refused() {
        assert!(matches!(
            generate(KeyAlg::Rsa(1024)),
            Err(KeyError::Unsupported(_))
        ));
    }
}
