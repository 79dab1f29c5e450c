//! Node variants of issue 2's evidence list: no super-admin.conf, external etcd, an expired CA,
//! a CA that expires before the new leaf would, `check-expiration -o json`, and a node built
//! by an independent tool (the openssl CLI).

mod common;

use common::checks::*;
use common::*;
use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::nodebuilder::NodeSpec;
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

#[test]
fn no_super_admin_conf() {
    let n = Node::build(|s| s.super_admin = false);
    let out = n.run(&["check-expiration"]);
    out.ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("!MISSING! super-admin.conf")),
        "no MISSING row:\n{}",
        out.stdout
    );
    let names = n.names();
    assert_eq!(names.len(), 10);
    let old = before(&n, &names);
    let t0 = OffsetDateTime::now_utc();
    let out = n.run(&["renew", "all", "--no-restart"]);
    let t1 = OffsetDateTime::now_utc();
    out.ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l == format!("MISSING! {}", long_name("super-admin.conf"))),
        "no MISSING! line:\n{}",
        out.stdout
    );
    assert!(
        !n.kc("super-admin.conf").exists(),
        "super-admin.conf was created"
    );
    for nm in &names {
        check_renewed(&n, nm, &old[*nm], KeyAlg::Rsa(2048), t0, t1);
    }
}

#[test]
fn external_etcd() {
    let n = Node::build(|s| s.external_etcd = true);
    let out = n.run(&["check-expiration"]);
    out.ok();
    assert!(
        !out.stdout.contains("etcd"),
        "etcd rows on an external-etcd node:\n{}",
        out.stdout
    );
    let names = n.names();
    assert_eq!(names.len(), 7, "{names:?}");
    let old = before(&n, &names);
    let t0 = OffsetDateTime::now_utc();
    let out = n.run(&["renew", "all", "--no-restart"]);
    let t1 = OffsetDateTime::now_utc();
    out.ok();
    assert_eq!(
        out.stdout.matches(" renewed\n").count(),
        7,
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("etcd"),
        "etcd mentioned:\n{}",
        out.stdout
    );
    for nm in &names {
        check_renewed(&n, nm, &old[*nm], KeyAlg::Rsa(2048), t0, t1);
    }
    assert!(!n.pki("etcd").exists(), "etcd PKI created");
}

#[test]
fn expired_ca_is_refused() {
    let n = Node::build(|s| s.ca_expired = true);
    // check-expiration still reports, with exit 0, as kubeadm does.
    let out = n.run(&["check-expiration"]);
    out.ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("ca ") && l.contains("<invalid>")),
        "{}",
        out.stdout
    );
    let t = n.tree();
    for args in [
        &["renew", "all", "--no-restart"][..],
        &["renew", "apiserver", "--no-restart"][..],
    ] {
        let out = n.run(args);
        out.assert_code(1);
        let errs = out.error_lines();
        assert!(!errs.is_empty(), "no error line:\n{}", out.stderr);
        for e in &errs {
            assert!(e.contains("expired"), "unclear error for {args:?}: {e}");
        }
        assert!(
            errs.iter()
                .any(|e| e.contains("apiserver") && e.contains("ca")),
            "{errs:?}"
        );
        t.assert_same(&n.tree(), "renew with an expired CA");
        assert!(n.backups().is_empty(), "a backup was made");
        assert!(!out.stdout.contains(" renewed"), "{}", out.stdout);
    }
}

#[test]
fn new_leaf_is_clamped_to_a_ca_expiring_first() {
    let n = Node::build(|s| s.ca_left = Duration::from_secs(100 * 86_400));
    let ca_not_after = facts(&pem_ders(&std::fs::read(n.pki("ca.crt")).unwrap())[0]).not_after;
    let dry = n.run(&["renew", "apiserver", "--dry-run"]);
    dry.ok();
    assert!(
        dry.stdout.contains("clamped"),
        "dry run does not say it clamps:\n{}",
        dry.stdout
    );
    let out = n.run(&["renew", "apiserver", "--no-restart"]);
    out.ok();
    let w = facts(&n.leaf_der("apiserver"));
    assert_eq!(
        w.not_after, ca_not_after,
        "NotAfter not clamped to the CA's"
    );
    assert!(
        out.stderr.to_lowercase().contains("clamp") || out.stdout.to_lowercase().contains("clamp"),
        "no warning about the clamp:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_verifies(
        &n.pki("ca.crt"),
        &n.leaf_der("apiserver"),
        "clamped apiserver",
    );
}

#[test]
fn check_expiration_json() {
    let n = Node::build(|s| s.super_admin = false);
    let now = OffsetDateTime::now_utc();
    let out = n.run(&["check-expiration", "-o", "json"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["apiVersion"], "output.kubeadm.k8s.io/v1alpha3");
    assert_eq!(v["kind"], "CertificateExpirationInfo");
    let certs = v["certificates"].as_array().unwrap();
    let got: Vec<&str> = certs.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let want: Vec<&str> = LONG_NAMES.iter().map(|(n, _)| *n).collect();
    assert_eq!(got, want, "names, sorted");
    for c in certs {
        let name = c["name"].as_str().unwrap();
        for field in [
            "expirationDate",
            "residualTime",
            "externallyManaged",
            "missing",
            "path",
            "status",
        ] {
            assert!(c.get(field).is_some(), "{name}: no {field}");
        }
        assert_eq!(c["externallyManaged"], false, "{name}");
        if name == "super-admin.conf" {
            // kubeadm sets only name and missing for a missing entry.
            assert_eq!(c["missing"], true);
            assert_eq!(c["status"], "missing");
            continue;
        }
        assert_eq!(
            c["caName"],
            if ca_of(name) == "etcd/ca" {
                "etcd-ca"
            } else {
                ca_of(name)
            },
            "{name}"
        );
        assert_eq!(c["missing"], false, "{name}");
        assert_eq!(
            c["status"], "due",
            "{name}: 3 days left with renewBefore 30d"
        );
        let path = c["path"].as_str().unwrap();
        let file = match PKI_LEAVES.iter().find(|(x, _, _)| *x == name) {
            Some((_, base, _)) => format!("{base}.crt"),
            None => name.to_string(),
        };
        assert!(path.ends_with(&file), "{name}: path {path:?}");
        let na = facts(&n.leaf_der(name)).not_after;
        let residual = c["residualTime"].as_i64().unwrap();
        let expect = (na - now).whole_seconds();
        assert!(
            (expect - 120..=expect).contains(&residual),
            "{name}: residualTime {residual}, expected about {expect}"
        );
        let date = c["expirationDate"].as_str().unwrap();
        let parsed =
            OffsetDateTime::parse(date, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed, na, "{name}: expirationDate");
    }
    let cas = v["certificateAuthorities"].as_array().unwrap();
    let got: Vec<&str> = cas.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(got, vec!["ca", "etcd-ca", "front-proxy-ca"]);
    for c in cas {
        assert_eq!(c["status"], "ok", "{c}");
        assert_eq!(c["missing"], false, "{c}");
    }
}

// ---- A node built by the openssl CLI, independently of the project's own builder ----

fn sh(dir: &Path, script: &str) {
    let o = std::process::Command::new("bash")
        .arg("-euc")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// CAs with PKCS#8 keys; leaves with PKCS#1, PKCS#8 and SEC1 keys, 3 days left, unsorted DNS
/// SANs, UTF8String subjects; admin.conf laid out as clientcmd writes it.
fn openssl_node() -> Node {
    let mut spec = NodeSpec::new(OffsetDateTime::now_utc());
    spec.super_admin = false;
    let n = Node::empty(spec);
    let pki = n.pki("");
    std::fs::create_dir_all(pki.join("etcd")).unwrap();
    sh(
        &pki,
        r#"
ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout $1.key -out $1.crt -days 3650 -subj "/CN=$2" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign \
  -addext subjectAltName=DNS:$2 2>/dev/null; }
ca ca kubernetes; ca front-proxy-ca front-proxy-ca; ca etcd/ca etcd-ca
leaf() { # base keytype ca subj eku san
  case $2 in
    pkcs1) openssl genrsa -traditional -out $1.key 2048 2>/dev/null ;;
    pkcs8) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $1.key 2>/dev/null ;;
    sec1) openssl ecparam -name prime256v1 -genkey -noout -out $1.key ;;
  esac
  { echo "keyUsage=critical,digitalSignature,keyEncipherment"; echo "extendedKeyUsage=$5"
    echo "basicConstraints=critical,CA:FALSE"; echo "authorityKeyIdentifier=keyid"
    [ -n "$6" ] && echo "subjectAltName=$6"; true; } > /tmp/ext.$$
  openssl req -new -key $1.key -subj "$4" -out /tmp/csr.$$
  openssl x509 -req -in /tmp/csr.$$ -CA $3.crt -CAkey $3.key -set_serial 0x$(openssl rand -hex 7) -days 3 -sha256 \
    -extfile /tmp/ext.$$ -out $1.crt 2>/dev/null
  chmod 600 $1.key; chmod 644 $1.crt; rm -f /tmp/ext.$$ /tmp/csr.$$
}
leaf apiserver pkcs1 ca /CN=kube-apiserver serverAuth \
  DNS:cp1,DNS:kubernetes.default.svc.cluster.local,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1,IP:10.0.0.10
leaf apiserver-kubelet-client pkcs8 ca "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" clientAuth ""
leaf front-proxy-client sec1 front-proxy-ca /CN=front-proxy-client clientAuth ""
leaf etcd/server pkcs1 etcd/ca /CN=cp1 serverAuth,clientAuth DNS:localhost,DNS:cp1,IP:10.0.0.10,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1
leaf etcd/peer pkcs1 etcd/ca /CN=cp1 serverAuth,clientAuth DNS:localhost,DNS:cp1,IP:10.0.0.10,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1
leaf etcd/healthcheck-client pkcs1 etcd/ca /CN=kube-etcd-healthcheck-client clientAuth ""
leaf apiserver-etcd-client pkcs1 etcd/ca /CN=kube-apiserver-etcd-client clientAuth ""
leaf admin pkcs1 ca "/O=kubeadm:cluster-admins/CN=kubernetes-admin" clientAuth ""
b() { base64 -w0 < $1; }
cat > ../admin.conf <<EOF
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(b ca.crt)
    server: https://10.0.0.10:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: $(b admin.crt)
    client-key-data: $(b admin.key)
EOF
chmod 600 ../admin.conf; rm admin.crt admin.key
"#,
    );
    n
}

fn alg_of(name: &str) -> KeyAlg {
    if name == "front-proxy-client" {
        KeyAlg::EcP256
    } else {
        KeyAlg::Rsa(2048)
    }
}

#[test]
fn openssl_built_node_pki() {
    let n = openssl_node();
    let out = n.run(&["check-expiration"]);
    out.ok();
    for nm in [
        "controller-manager.conf",
        "scheduler.conf",
        "super-admin.conf",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("!MISSING! {nm}"))),
            "{nm}:\n{}",
            out.stdout
        );
    }
    let names: Vec<&str> = PKI_LEAVES.iter().map(|(x, _, _)| *x).collect();
    let old = before(&n, &names);
    let mut args = vec!["renew", "--no-restart"];
    args.extend(&names);
    let t0 = OffsetDateTime::now_utc();
    n.run(&args).ok();
    let t1 = OffsetDateTime::now_utc();
    for nm in &names {
        check_renewed(&n, nm, &old[*nm], alg_of(nm), t0, t1);
    }
    // The PEM form of each old key is kept: PKCS#1, PKCS#8, SEC1.
    assert_eq!(pem_label(&n.key_pem("apiserver")), "RSA PRIVATE KEY");
    assert_eq!(
        pem_label(&n.key_pem("apiserver-kubelet-client")),
        "PRIVATE KEY"
    );
    assert_eq!(
        pem_label(&n.key_pem("front-proxy-client")),
        "EC PRIVATE KEY"
    );
}

#[test]
fn openssl_built_node_renew_all() {
    let n = openssl_node();
    let mut names: Vec<&str> = PKI_LEAVES.iter().map(|(x, _, _)| *x).collect();
    names.push("admin.conf");
    let old = before(&n, &names);
    let old_admin = std::fs::read_to_string(n.kc("admin.conf")).unwrap();
    let t0 = OffsetDateTime::now_utc();
    let out = n.run(&["renew", "all", "--no-restart"]);
    let t1 = OffsetDateTime::now_utc();
    out.ok();
    for nm in [
        "controller-manager.conf",
        "scheduler.conf",
        "super-admin.conf",
    ] {
        assert!(
            out.stdout.contains(&format!("MISSING! {}", long_name(nm))),
            "{nm}:\n{}",
            out.stdout
        );
    }
    for nm in &names {
        check_renewed(&n, nm, &old[*nm], alg_of(nm), t0, t1);
    }
    check_kubeconfig_text(&n, "admin.conf", &old_admin);
}
