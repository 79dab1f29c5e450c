//! One read/write interface over the two places kubeadm keeps a certificate: a PKI file pair
//! (`<base>.crt` + `<base>.key`) or a kubeconfig's embedded credentials (kubeadm's
//! `pkiCertificateReadWriter` and `kubeConfigReadWriter`).

use crate::node::fsread::{read_node_file, ReadError};
use crate::node::NodePaths;
use crate::pki::inspect::{self, CertInfo};
use crate::pki::keys::KeyFormat;
use crate::pki::kubeconfig::{self, Kubeconfig};
use crate::pki::pubkey::{public_of_key_file, PublicOfKey};
use crate::pki::table::{Handler, Location};
use std::path::{Path, PathBuf};

/// A problem with one file, named by its host path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct FileProblem {
    /// Host path of the file.
    pub path: String,
    /// What is wrong.
    pub msg: String,
}

impl FileProblem {
    /// A problem with `path` (resolved), displayed as its host path.
    pub fn new(paths: &NodePaths, path: &Path, msg: impl std::fmt::Display) -> FileProblem {
        FileProblem {
            path: paths.show(path),
            msg: msg.to_string(),
        }
    }
}

/// Where the handler's certificate lives, resolved.
pub fn cert_file(paths: &NodePaths, h: &Handler) -> PathBuf {
    match h.location {
        Location::Pki(base) => paths.pki.join(format!("{base}.crt")),
        Location::Kubeconfig(file) => paths.kubeconfigs.join(file),
    }
}

/// The handler's file relative to its directory, e.g. `etcd/server.crt` or `admin.conf`.
pub fn cert_file_name(h: &Handler) -> String {
    match h.location {
        Location::Pki(base) => format!("{base}.crt"),
        Location::Kubeconfig(file) => file.to_string(),
    }
}

/// The private key file of a PKI pair.
pub fn key_file(paths: &NodePaths, base: &str) -> PathBuf {
    paths.pki.join(format!("{base}.key"))
}

/// The material as found on disk.
#[derive(Debug)]
pub enum Source {
    /// A `.crt`/`.key` pair.
    Pki {
        /// The .crt file.
        cert_path: PathBuf,
        /// The .key file.
        key_path: PathBuf,
        /// Certificates after the leaf in the .crt file; kept after the renewed leaf.
        chain_rest: Vec<CertInfo>,
        /// The current key's public half, if the file exists (scans only compare it).
        key: Option<PublicOfKey>,
    },
    /// A kubeconfig with embedded credentials.
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Its text, kept so that only three values change.
        text: String,
        /// The decoded credentials.
        kc: Kubeconfig,
        /// The embedded key's public half.
        key: PublicOfKey,
    },
}

/// A handler's current certificate.
#[derive(Debug)]
pub struct Loaded {
    /// The handler.
    pub handler: &'static Handler,
    /// The leaf certificate.
    pub leaf: CertInfo,
    /// Where it lives.
    pub source: Source,
}

/// A file a renewal will replace, with its new contents.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// The target (resolved).
    pub target: PathBuf,
    /// New contents.
    pub contents: Vec<u8>,
    /// Mode for a newly created file; an existing file keeps its mode and owner.
    pub mode: u32,
}

fn read(paths: &NodePaths, p: &Path) -> Result<Option<Vec<u8>>, FileProblem> {
    match read_node_file(&paths.root, p) {
        Ok(b) => Ok(Some(b)),
        Err(ReadError::Missing) => Ok(None),
        Err(e) => Err(FileProblem::new(paths, p, e)),
    }
}

/// Load a handler's certificate; `Ok(None)` when its file is missing.
pub fn load(paths: &NodePaths, h: &'static Handler) -> Result<Option<Loaded>, FileProblem> {
    let cert_path = cert_file(paths, h);
    let Some(bytes) = read(paths, &cert_path)? else {
        return Ok(None);
    };
    let bad = |m: &dyn std::fmt::Display| FileProblem::new(paths, &cert_path, m);
    match h.location {
        Location::Pki(base) => {
            let mut chain = inspect::parse_cert_file(&bytes).map_err(|e| bad(&e))?;
            let leaf = chain.remove(0);
            let key_path = key_file(paths, base);
            let key = match read(paths, &key_path)? {
                None => None,
                Some(kb) => Some(public_of_key_file(&kb).map_err(|e| match leaf.key_alg {
                    // aws-lc refuses RSA keys below 2048 bits; say so rather than "cannot parse".
                    Some(crate::pki::inspect::KeyAlg::Rsa(n)) if n < 2048 => FileProblem::new(
                        paths,
                        &key_path,
                        format!("RSA-{n} keys are not supported (kubeadm uses RSA-2048 or larger)"),
                    ),
                    _ => FileProblem::new(paths, &key_path, e),
                })?),
            };
            Ok(Some(Loaded {
                handler: h,
                leaf,
                source: Source::Pki {
                    cert_path,
                    key_path,
                    chain_rest: chain,
                    key,
                },
            }))
        }
        Location::Kubeconfig(_) => {
            let text = String::from_utf8(bytes).map_err(|_| bad(&"not valid UTF-8"))?;
            let kc = kubeconfig::parse(&text).map_err(|e| bad(&e))?;
            let mut chain = inspect::parse_cert_file(&kc.client_cert)
                .map_err(|e| bad(&format!("client-certificate-data: {e}")))?;
            let key = public_of_key_file(&kc.client_key)
                .map_err(|e| bad(&format!("client-key-data: {e}")))?;
            let leaf = chain.remove(0);
            Ok(Some(Loaded {
                handler: h,
                leaf,
                source: Source::Kubeconfig {
                    path: cert_path,
                    text,
                    kc,
                    key,
                },
            }))
        }
    }
}

impl Loaded {
    /// The current key's public half, if there is a key.
    pub fn key(&self) -> Option<&PublicOfKey> {
        match &self.source {
            Source::Pki { key, .. } => key.as_ref(),
            Source::Kubeconfig { key, .. } => Some(key),
        }
    }

    /// Whether the current key matches the certificate (None when there is no key).
    pub fn key_matches(&self) -> Option<bool> {
        self.key().map(|k| k.spki == self.leaf.spki)
    }

    /// The PEM form a new key takes: the old key's, else kubeadm's for the algorithm.
    pub fn key_format(&self) -> Option<KeyFormat> {
        match self.key() {
            Some(k) => Some(k.format),
            None => self.leaf.key_alg.map(KeyFormat::kubeadm_default),
        }
    }

    /// The files that renewal replaces (what gets backed up).
    pub fn files(&self) -> Vec<PathBuf> {
        match &self.source {
            Source::Pki {
                cert_path,
                key_path,
                ..
            } => vec![key_path.clone(), cert_path.clone()],
            Source::Kubeconfig { path, .. } => vec![path.clone()],
        }
    }

    /// New contents for the handler's files, key before cert as kubeadm writes them.
    pub fn replacement(
        &self,
        paths: &NodePaths,
        new_cert: &CertInfo,
        key_pem: &str,
        ca_pem: &str,
    ) -> Result<Vec<FileChange>, FileProblem> {
        match &self.source {
            Source::Pki {
                cert_path,
                key_path,
                chain_rest,
                ..
            } => {
                let mut cert = new_cert.to_pem();
                for c in chain_rest {
                    cert.push_str(&c.to_pem());
                }
                Ok(vec![
                    FileChange {
                        target: key_path.clone(),
                        contents: key_pem.as_bytes().to_vec(),
                        mode: 0o600,
                    },
                    FileChange {
                        target: cert_path.clone(),
                        contents: cert.into_bytes(),
                        mode: 0o644,
                    },
                ])
            }
            Source::Kubeconfig { path, text, kc, .. } => {
                let out = kubeconfig::replace_credentials(
                    text,
                    kc,
                    new_cert.to_pem().as_bytes(),
                    key_pem.as_bytes(),
                    ca_pem.as_bytes(),
                )
                .map_err(|e| FileProblem::new(paths, path, e))?;
                // Prove the edit: the file parses and carries the new pair.
                let back = kubeconfig::parse(&out).map_err(|e| FileProblem::new(paths, path, e))?;
                if back.client_cert != new_cert.to_pem().as_bytes()
                    || back.client_key != key_pem.as_bytes()
                {
                    return Err(FileProblem::new(
                        paths,
                        path,
                        "edited kubeconfig does not read back",
                    ));
                }
                Ok(vec![FileChange {
                    target: path.clone(),
                    contents: out.into_bytes(),
                    mode: 0o600,
                }])
            }
        }
    }
}
