//! The CAs, and kubeadm's external-CA rule (S-certs `UsingExternalCA` and friends): a CA
//! whose certificate is valid but whose key is absent is externally managed.

use crate::node::fsread::{read_node_file, ReadError};
use crate::node::NodePaths;
use crate::pki::inspect::{self, CertInfo};
use crate::pki::keys::{self, PrivateKey};
use crate::pki::material::FileProblem;
use crate::pki::table::CaId;
use std::path::PathBuf;

/// One CA as found on disk.
#[derive(Debug, Clone)]
pub struct CaState {
    /// Which CA.
    pub id: CaId,
    /// Its .crt file.
    pub cert_path: PathBuf,
    /// Its .key file.
    pub key_path: PathBuf,
    /// The certificate; `None` when the file is missing.
    pub cert: Option<CertInfo>,
    /// Whether the key file exists.
    pub key_present: bool,
}

impl CaState {
    /// kubeadm's `IsExternallyManaged`: a valid CA certificate without its key.
    pub fn external(&self) -> bool {
        self.cert.is_some() && !self.key_present
    }

    /// The CA certificate as PEM (what kubeconfigs embed).
    pub fn pem(&self) -> Option<String> {
        self.cert.as_ref().map(CertInfo::to_pem)
    }
}

/// Load a CA certificate and note whether its key exists. A CA certificate that is not a CA
/// is an error, as in kubeadm.
pub fn load_ca(paths: &NodePaths, id: CaId) -> Result<CaState, FileProblem> {
    let cert_path = paths.pki.join(format!("{}.crt", id.base()));
    let key_path = paths.pki.join(format!("{}.key", id.base()));
    let cert = match read_node_file(&paths.root, &cert_path) {
        Ok(b) => {
            let mut certs =
                inspect::parse_cert_file(&b).map_err(|e| FileProblem::new(paths, &cert_path, e))?;
            let c = certs.remove(0);
            if !c.is_ca {
                return Err(FileProblem::new(
                    paths,
                    &cert_path,
                    format!(
                        "certificate for {} is not a CA (BasicConstraints CA:TRUE is missing)",
                        id.name()
                    ),
                ));
            }
            Some(c)
        }
        Err(ReadError::Missing) => None,
        Err(e) => return Err(FileProblem::new(paths, &cert_path, e)),
    };
    let key_present = std::fs::symlink_metadata(&key_path).is_ok();
    Ok(CaState {
        id,
        cert_path,
        key_path,
        cert,
        key_present,
    })
}

/// Load a CA's private key and check that it matches its certificate.
pub fn load_ca_key(paths: &NodePaths, ca: &CaState) -> Result<PrivateKey, FileProblem> {
    let p = &ca.key_path;
    let bytes = read_node_file(&paths.root, p).map_err(|e| FileProblem::new(paths, p, e))?;
    let key = keys::parse_key_file(&bytes).map_err(|e| FileProblem::new(paths, p, e))?;
    if let Some(c) = &ca.cert {
        if key.spki() != c.spki {
            return Err(FileProblem::new(
                paths,
                p,
                format!("key does not match {}", paths.show(&ca.cert_path)),
            ));
        }
    }
    Ok(key)
}
