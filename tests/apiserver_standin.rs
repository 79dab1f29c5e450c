//! The stand-in kube-apiserver (src/testkit/apiserver), exercised with a plain HTTPS client.
//! These tests are its documentation: authentication and authorization, CSR creation as
//! PrepareForCreate does it, ConfigMaps with optimistic concurrency, Nodes, the Service,
//! /version. The approval strategy is in approval.rs, list and watch in watch.rs, faults,
//! the transport and the helpers in faults.rs (all under tests/apiserver_standin_support/).

mod apiserver_standin_support;
#[path = "apiserver_standin_support/approval.rs"]
mod approval;
#[path = "apiserver_standin_support/faults.rs"]
mod faults;
#[path = "apiserver_standin_support/watch.rs"]
mod watch;

use apiserver_standin_support::*;
use kubeadm_certd::pki::inspect::KeyAlg;
use kubeadm_certd::testkit::apiserver::{issue_client, kubelet_serving_csr};
use serde_json::{json, Value};

const KCFG: &str = "/api/v1/namespaces/kube-system/configmaps/kubelet-config";

// ---- authentication: CN = user, O = groups, from a certificate the cluster CA signed ----

#[test]
fn no_client_certificate_is_401_and_recorded_without_a_user() {
    let fx = Fx::new();
    let (code, body) = fx.anonymous().get("/api/v1/nodes");
    assert_eq!((code, reason(&body)), (401, ("Unauthorized", 401)));
    // Even health: the stand-in runs as with --anonymous-auth=false.
    assert_eq!(fx.anonymous().get("/healthz").0, 401);
    let r = fx.api.requests();
    assert_eq!((r[0].status, r[0].user.clone()), (401, None));
}

#[test]
fn a_certificate_from_another_ca_is_401() {
    let fx = Fx::new();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "kubernetes");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = p.self_signed(&key).unwrap();
    let id = issue_client(
        &other.pem(),
        &key.serialize_pem(),
        "kubernetes-admin",
        &["system:masters"],
    )
    .unwrap();
    let c = Client::new(&fx.api.url(), &fx.ca, Some(&id));
    let (code, body) = c.get("/api/v1/nodes");
    assert_eq!((code, reason(&body)), (401, ("Unauthorized", 401)));
}

#[test]
fn admin_conf_identity_is_cluster_admin_and_recorded_with_its_groups() {
    let fx = Fx::new();
    let (code, list) = fx.admin.get("/api/v1/nodes");
    assert_eq!((code, list["kind"].as_str()), (200, Some("NodeList")));
    let r = fx.api.requests();
    assert_eq!(r[0].user.as_deref(), Some("kubernetes-admin"));
    assert_eq!(
        r[0].groups,
        ["kubeadm:cluster-admins", "system:authenticated"]
    );
    // system:masters (super-admin.conf) is cluster-admin too.
    let sa = fx.user("kubernetes-super-admin", &["system:masters"]);
    let cm = json!({"metadata": {"name": "x"}, "data": {"a": "b"}});
    assert_eq!(
        sa.post("/api/v1/namespaces/kube-system/configmaps", &cm).0,
        201
    );
}

#[test]
fn a_node_may_create_and_read_csrs_and_read_nodes_and_nothing_else() {
    let fx = Fx::new();
    fx.api.add_node("w1", &[("InternalIP", "127.0.0.2")]);
    fx.seed_csr("csr-1", "w1");
    let w1 = fx.node("w1");
    assert_eq!(w1.get("/api/v1/nodes").0, 200);
    assert_eq!(w1.get("/api/v1/nodes/w1").0, 200);
    assert_eq!(w1.get(CSRS).0, 200);
    assert_eq!(w1.get(&format!("{CSRS}/csr-1")).0, 200);
    assert_eq!(
        w1.get("/api/v1/namespaces/default/services/kubernetes").0,
        200
    );
    assert_eq!(w1.get("/version").0, 200);

    let approval = format!("{CSRS}/csr-1/approval");
    let mut csr = fx.api.csr("csr-1").unwrap();
    csr["status"]["conditions"] = json!([{"type": "Approved", "status": "True", "reason": "Me"}]);
    let (code, body) = w1.put(&approval, &csr);
    assert_eq!((code, reason(&body)), (403, ("Forbidden", 403)));
    assert_eq!(
        body["message"],
        "certificatesigningrequests.certificates.k8s.io \"csr-1\" is forbidden: User \
         \"system:node:w1\" cannot update resource \"certificatesigningrequests/approval\" in API \
         group \"certificates.k8s.io\" at the cluster scope"
    );
    assert_eq!(w1.get(KCFG).0, 403);
    assert_eq!(w1.delete(&format!("{CSRS}/csr-1")).0, 403);
    assert_eq!(w1.get("/apis").0, 403);
    assert!(conditions(&fx.api.csr("csr-1").unwrap()).is_empty());
}

#[test]
fn a_user_without_a_role_gets_only_health_and_version() {
    let fx = Fx::new();
    let jane = fx.user("jane", &["developers"]);
    let (code, body) = jane.get("/api/v1/nodes");
    assert_eq!((code, reason(&body)), (403, ("Forbidden", 403)));
    // A CN of system:node:X without the group is not a node.
    assert_eq!(fx.user("system:node:w1", &[]).get(CSRS).0, 403);
    for p in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(jane.get(p), (200, Value::String("ok".into())), "{p}");
    }
}

// ---- routing ----------------------------------------------------------------------------

#[test]
fn unknown_paths_are_404_status_and_unknown_query_parameters_are_ignored() {
    let fx = Fx::new();
    let (code, body) = fx.admin.get("/apis/apps/v1/deployments");
    assert_eq!((code, reason(&body)), (404, ("NotFound", 404)));
    assert_eq!(
        body["message"],
        "the server could not find the requested resource"
    );
    fx.seed_csr("a", "w1");
    // Real subresources the stand-in does not serve are 404 too (see TESTING.md).
    assert_eq!(fx.admin.get(&format!("{CSRS}/a/status")).0, 404);
    let (code, body) = fx.admin.put("/api/v1/nodes", &json!({}));
    assert_eq!((code, reason(&body)), (405, ("MethodNotAllowed", 405)));
    let (code, _) = fx
        .admin
        .get("/api/v1/nodes?&pretty=true&somethingNew=1&timeoutSeconds=5");
    assert_eq!(code, 200);
    let (code, body) = fx.admin.get(&format!("{CSRS}/nope"));
    assert_eq!((code, reason(&body)), (404, ("NotFound", 404)));
    assert_eq!(
        body["message"],
        "certificatesigningrequests.certificates.k8s.io \"nope\" not found"
    );
}

// ---- CSR creation: csrStrategy.PrepareForCreate and create validation ------------------

fn csr_body(name: &str, pem: &str, usages: Value) -> Value {
    use base64::Engine;
    json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(pem),
            "signerName": SERVING, "usages": usages,
            "username": "system:admin", "groups": ["system:masters"], "uid": "u-1",
            "extra": {"scopes": ["all"]}
        },
        "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Self"}]}
    })
}

fn w1_pem() -> String {
    kubelet_serving_csr(
        "system:node:w1",
        &["system:nodes"],
        &["w1"],
        &["127.0.0.2"],
        KeyAlg::EcP256,
    )
    .unwrap()
}

#[test]
fn create_takes_the_identity_from_the_certificate_and_clears_the_status() {
    let fx = Fx::new();
    let (code, made) = fx.node("w1").post(
        CSRS,
        &csr_body("c1", &w1_pem(), json!(["digital signature", "server auth"])),
    );
    assert_eq!(code, 201, "{made}");
    let stored = fx.api.csr("c1").unwrap();
    assert_eq!(made, stored);
    assert_eq!(stored["spec"]["username"], "system:node:w1");
    assert_eq!(
        stored["spec"]["groups"],
        json!(["system:nodes", "system:authenticated"])
    );
    assert!(stored["spec"].get("uid").is_none() && stored["spec"].get("extra").is_none());
    assert_eq!(stored["status"], json!({}), "no pre-approved CSR");
    for k in ["uid", "resourceVersion", "creationTimestamp"] {
        assert!(stored["metadata"][k].is_string(), "{k}");
    }
    assert_eq!(stored["kind"], "CertificateSigningRequest");
    let (code, body) = fx
        .node("w1")
        .post(CSRS, &csr_body("c1", &w1_pem(), json!(["server auth"])));
    assert_eq!((code, reason(&body)), (409, ("AlreadyExists", 409)));
}

#[test]
fn create_validates_request_usages_signer_and_expiration() {
    let fx = Fx::new();
    let w1 = fx.node("w1");
    let causes = |b: &Value| -> Vec<(String, String)> {
        assert_eq!(reason(b), ("Invalid", 422), "{b}");
        b["details"]["causes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["field"].as_str().unwrap().into(),
                    c["reason"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let (_, b) = w1.post(
        CSRS,
        &csr_body("bad-pem", "not a PEM", json!(["server auth"])),
    );
    assert_eq!(
        causes(&b),
        [("spec.request".into(), "FieldValueInvalid".into())]
    );
    // A request whose signature does not check.
    let good = w1_pem();
    let mut der = pem::parse(&good).unwrap().contents().to_vec();
    let n = der.len();
    der[n - 5] ^= 0x55;
    let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    let (_, b) = w1.post(CSRS, &csr_body("forged", &forged, json!(["server auth"])));
    assert_eq!(
        causes(&b),
        [("spec.request".into(), "FieldValueInvalid".into())]
    );
    let (_, b) = w1.post(CSRS, &csr_body("no-usages", &good, json!([])));
    assert_eq!(
        causes(&b),
        [("spec.usages".into(), "FieldValueRequired".into())]
    );
    let (_, b) = w1.post(
        CSRS,
        &csr_body("odd", &good, json!(["server auth", "bogus", "server auth"])),
    );
    assert_eq!(
        causes(&b),
        [
            ("spec.usages[1]".into(), "FieldValueNotSupported".into()),
            ("spec.usages[2]".into(), "FieldValueDuplicate".into())
        ]
    );
    let mut legacy = csr_body("legacy", &good, json!(["server auth"]));
    legacy["spec"]["signerName"] = json!("kubernetes.io/legacy-unknown");
    legacy["spec"]["expirationSeconds"] = json!(60);
    let (_, b) = w1.post(CSRS, &legacy);
    assert_eq!(
        causes(&b),
        [
            ("spec.signerName".into(), "FieldValueInvalid".into()),
            ("spec.expirationSeconds".into(), "FieldValueInvalid".into())
        ]
    );
    assert!(b["message"]
        .as_str()
        .unwrap()
        .starts_with("CertificateSigningRequest.certificates.k8s.io \"legacy\" is invalid: ["));
    assert!(fx.api.csrs().is_empty());
}

#[test]
fn create_with_generate_name() {
    let fx = Fx::new();
    let mut body = csr_body("", &w1_pem(), json!(["server auth"]));
    body["metadata"] = json!({"generateName": "csr-"});
    let (code, made) = fx.node("w1").post(CSRS, &body);
    assert_eq!(code, 201);
    let name = made["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("csr-") && name.len() == 9, "{name}");
}

// ---- ConfigMaps: optimistic concurrency, merge patch, validation ------------------------

fn kubelet_config(fx: &Fx) -> Value {
    fx.api.put_configmap(
        "kube-system",
        "kubelet-config",
        &[(
            "kubelet",
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n",
        )],
    );
    fx.admin.get(KCFG).1
}

#[test]
fn configmap_put_with_a_stale_resource_version_is_409_and_without_one_applies() {
    let fx = Fx::new();
    let read = kubelet_config(&fx);
    let mut v1 = read.clone();
    v1["data"]["kubelet"] = json!("changed: 1\n");
    let (code, after) = fx.admin.put(KCFG, &v1);
    assert_eq!(code, 200);
    assert_ne!(rv(&after), rv(&read));
    // The same version again is stale now.
    let (code, body) = fx.admin.put(KCFG, &v1);
    assert_eq!((code, reason(&body)), (409, ("Conflict", 409)));
    assert_eq!(
        body["message"],
        "Operation cannot be fulfilled on configmaps \"kubelet-config\": the object has been \
         modified; please apply your changes to the latest version and try again"
    );
    // Without a resourceVersion the update is unconditional (AllowUnconditionalUpdate).
    let mut v2 = read.clone();
    v2["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    v2["data"]["kubelet"] = json!("changed: 2\n");
    assert_eq!(fx.admin.put(KCFG, &v2).0, 200);
    assert_eq!(
        fx.api.configmap("kube-system", "kubelet-config").unwrap()["data"]["kubelet"],
        "changed: 2\n"
    );
    // With the current one it applies as well.
    let cur = fx.admin.get(KCFG).1;
    assert_eq!(fx.admin.put(KCFG, &cur).0, 200);
    assert_eq!(
        rv(&fx.admin.get(KCFG).1),
        rv(&cur),
        "an unchanged write keeps the version"
    );
}

#[test]
fn configmap_patches_change_only_what_they_name() {
    let fx = Fx::new();
    kubelet_config(&fx);
    fx.api.put_configmap(
        "kube-system",
        "kubelet-config",
        &[("kubelet", "a: 1\n"), ("other", "x")],
    );
    let (code, v) = fx.admin.patch(
        KCFG,
        "application/merge-patch+json",
        &json!({"data": {"kubelet": "a: 2\n"}}),
    );
    assert_eq!(code, 200);
    assert_eq!(v["data"], json!({"kubelet": "a: 2\n", "other": "x"}));
    let (code, v) = fx.admin.patch(
        KCFG,
        "application/strategic-merge-patch+json",
        &json!({"data": {"other": null}}),
    );
    assert_eq!(
        (code, v["data"].clone()),
        (200, json!({"kubelet": "a: 2\n"}))
    );
    let ops = json!([{"op": "test", "path": "/data/kubelet", "value": "a: 2\n"}, {"op": "replace", "path": "/data/kubelet", "value": "a: 3\n"}]);
    assert_eq!(
        fx.admin.patch(KCFG, "application/json-patch+json", &ops).0,
        200
    );
    let stale = json!({"metadata": {"resourceVersion": "1"}, "data": {"kubelet": "x"}});
    assert_eq!(
        fx.admin
            .patch(KCFG, "application/merge-patch+json", &stale)
            .0,
        409
    );
    assert_eq!(fx.admin.patch(KCFG, "application/json", &json!({})).0, 415);
    assert_eq!(
        fx.api.configmap("kube-system", "kubelet-config").unwrap()["data"]["kubelet"],
        "a: 3\n"
    );
}

#[test]
fn configmap_validation_and_lifecycle() {
    let fx = Fx::new();
    let cms = "/api/v1/namespaces/kube-system/configmaps";
    let (code, b) = fx.admin.post(
        cms,
        &json!({"metadata": {"name": "bad"}, "data": {"no/slash": "x"}}),
    );
    assert_eq!((code, reason(&b)), (422, ("Invalid", 422)));
    let (code, b) = fx.admin.post(
        cms,
        &json!({"metadata": {"name": "x", "namespace": "default"}}),
    );
    assert_eq!((code, reason(&b)), (400, ("BadRequest", 400)));
    let frozen = json!({"metadata": {"name": "frozen"}, "data": {"a": "1"}, "immutable": true});
    assert_eq!(fx.admin.post(cms, &frozen).0, 201);
    let (code, b) = fx.admin.put(
        &format!("{cms}/frozen"),
        &json!({"metadata": {"name": "frozen"}, "data": {"a": "2"}, "immutable": true}),
    );
    assert_eq!((code, reason(&b)), (422, ("Invalid", 422)));
    let (code, b) = fx.admin.put(
        &format!("{cms}/frozen"),
        &json!({"metadata": {"name": "other"}}),
    );
    assert_eq!((code, reason(&b)), (400, ("BadRequest", 400)));
    let (code, b) = fx.admin.delete(&format!("{cms}/frozen"));
    assert_eq!((code, b["status"].as_str()), (200, Some("Success")));
    assert!(fx.api.configmap("kube-system", "frozen").is_none());
    assert_eq!(fx.admin.put(&format!("{cms}/frozen"), &frozen).0, 404);
}

// ---- Nodes, the kubernetes Service, /version ---------------------------------------------

#[test]
fn nodes_and_the_kubernetes_service() {
    let fx = Fx::new();
    fx.api
        .add_node("cp1", &[("InternalIP", "127.0.0.1"), ("Hostname", "cp1")]);
    fx.api.add_node("w1", &[("InternalIP", "127.0.0.2")]);
    let (_, n) = fx.admin.get("/api/v1/nodes/cp1");
    assert_eq!(n["kind"], "Node");
    assert_eq!(
        n["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "cp1"}])
    );
    let (_, list) = fx.admin.get("/api/v1/nodes");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cp1", "w1"]);
    // Items of a typed list carry no kind of their own.
    assert!(list["items"][0].get("kind").is_none());
    let (_, one) = fx
        .admin
        .get("/api/v1/nodes?fieldSelector=metadata.name%3Dw1");
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    assert!(fx.api.remove_node("w1"));
    assert_eq!(fx.admin.get("/api/v1/nodes/w1").0, 404);

    let svc = "/api/v1/namespaces/default/services/kubernetes";
    assert_eq!(fx.admin.get(svc).1["spec"]["clusterIP"], "10.96.0.1");
    fx.api.set_kubernetes_service_ip("10.100.0.1");
    assert_eq!(fx.admin.get(svc).1["spec"]["clusterIP"], "10.100.0.1");
}

#[test]
fn version_reports_the_configured_git_version() {
    let fx = Fx::new();
    assert_eq!(fx.admin.get("/version").1["gitVersion"], "v1.34.0");
    fx.api.set_version("v1.29.3");
    let (_, v) = fx.admin.get("/version");
    assert_eq!(
        (
            v["major"].as_str(),
            v["minor"].as_str(),
            v["gitVersion"].as_str()
        ),
        (Some("1"), Some("29"), Some("v1.29.3"))
    );
}
