//! Crafting odd certificates for the hostile corpus: with the openssl CLI (duplicate and
//! multi-valued subjects, negative serials, small RSA keys) and with rcgen (inverted validity,
//! thousands of SANs), signed by the node's own CA.

use super::{openssl, Node};
use kubeadm_certd::pki::keys::parse_key_file;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};

/// kubeadm's apiserver profile, as an openssl extension file.
pub const APISERVER_EXT: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:kubernetes,DNS:cp1,IP:10.96.0.1\n";

/// How to make one leaf with openssl.
pub struct OsslLeaf<'a> {
    /// CA base name under pki, e.g. "ca" or "etcd/ca".
    pub ca: &'a str,
    /// Leaf base name under pki, e.g. "apiserver".
    pub base: &'a str,
    /// `openssl genpkey` arguments for the leaf key.
    pub genkey: &'a [&'a str],
    /// `-subj` of the leaf.
    pub subj: &'a str,
    /// Pass `-multivalue-rdn` so `+` joins attributes into one RDN.
    pub multivalue: bool,
    /// `-set_serial`.
    pub serial: &'a str,
    /// Extension file text.
    pub ext: &'a str,
}

pub const EC_P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];

impl Default for OsslLeaf<'_> {
    fn default() -> Self {
        OsslLeaf {
            ca: "ca",
            base: "apiserver",
            genkey: EC_P256,
            subj: "/CN=kube-apiserver",
            multivalue: false,
            serial: "4242",
            ext: APISERVER_EXT,
        }
    }
}

/// Issue the leaf and write `<base>.crt` and `<base>.key` (PKCS#8) into the node's pki.
pub fn openssl_leaf(node: &Node, o: &OsslLeaf) {
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let pki = node.p("/etc/kubernetes/pki");
    let (key, csr, ext) = (
        node.outside.join("leaf.key"),
        node.outside.join("leaf.csr"),
        node.outside.join("leaf.ext"),
    );
    std::fs::write(&ext, o.ext).unwrap();
    let mut gen = vec!["genpkey"];
    gen.extend_from_slice(o.genkey);
    let key_s = s(&key);
    gen.extend_from_slice(&["-out", &key_s]);
    openssl(&gen);
    let csr_s = s(&csr);
    let mut req = vec![
        "req", "-new", "-key", &key_s, "-subj", o.subj, "-out", &csr_s,
    ];
    if o.multivalue {
        req.push("-multivalue-rdn");
    }
    openssl(&req);
    let ca_crt = s(&pki.join(format!("{}.crt", o.ca)));
    let ca_key = s(&pki.join(format!("{}.key", o.ca)));
    let crt = s(&pki.join(format!("{}.crt", o.base)));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr_s,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-set_serial",
        o.serial,
        "-days",
        "3",
        "-extfile",
        &s(&ext),
        "-out",
        &crt,
    ]);
    std::fs::copy(&key, pki.join(format!("{}.key", o.base))).unwrap();
}

/// Replace the node's `ca.crt`/`ca.key` with an openssl-made EC CA of subject `subj`.
pub fn openssl_ca(node: &Node, subj: &str, serial: &str) {
    let crt = node.p("/etc/kubernetes/pki/ca.crt");
    let key = node.p("/etc/kubernetes/pki/ca.key");
    let key_s = key.to_str().unwrap();
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        key_s,
    ]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key_s,
        "-subj",
        subj,
        "-set_serial",
        serial,
        "-days",
        "3650",
        "-extensions",
        "v3_ca",
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
        "-out",
        crt.to_str().unwrap(),
    ]);
}

/// The node's CA as an rcgen issuer.
pub fn node_issuer(node: &Node) -> Issuer<'static, KeyPair> {
    let key = parse_key_file(&node.read("/etc/kubernetes/pki/ca.key")).unwrap();
    Issuer::from_ca_cert_pem(&node.read_str("/etc/kubernetes/pki/ca.crt"), key.pair).unwrap()
}

/// Parameters of an apiserver-like leaf, for rcgen-made variants.
pub fn apiserver_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    p.serial_number = Some(77u64.into());
    p
}

/// Sign `p` for a new P-256 key with the node CA; write `apiserver.crt` and `apiserver.key`.
pub fn rcgen_apiserver(node: &Node, p: CertificateParams) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = p.signed_by(&key, &node_issuer(node)).unwrap();
    node.write("/etc/kubernetes/pki/apiserver.crt", cert.pem());
    node.write("/etc/kubernetes/pki/apiserver.key", key.serialize_pem());
}
