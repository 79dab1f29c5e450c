//! The /approval subresource: csrApprovalStrategy and the condition validation, one rule per
//! test (kubernetes pkg/registry/certificates/certificates/strategy.go,
//! pkg/apis/certificates/validation/validation.go), and the `sign` helper.

use crate::apiserver_standin_support::*;
use serde_json::{json, Value};

fn approval(name: &str) -> String {
    format!("{CSRS}/{name}/approval")
}

fn with_conditions(csr: &Value, conds: Value) -> Value {
    let mut c = csr.clone();
    c["status"]["conditions"] = conds;
    c
}

fn approved() -> Value {
    json!({"type": "Approved", "status": "True", "reason": "KubeadmCertdApprove", "message": "ok"})
}

/// The fields of a 422's causes.
fn invalid_fields(code: u16, b: &Value) -> Vec<String> {
    assert_eq!((code, reason(b)), (422, ("Invalid", 422)), "{b}");
    b["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["field"].as_str().unwrap(),
                c["reason"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn only_status_conditions_are_taken_from_an_approval_write() {
    let fx = Fx::new();
    let before = fx.seed_csr("c", "w1");
    let mut body = with_conditions(&before, json!([approved()]));
    body["spec"]["username"] = json!("system:node:evil");
    body["spec"]["usages"] = json!(["client auth"]);
    body["status"]["certificate"] = json!("LS0tLS1CRUdJTg==");
    body["metadata"]["labels"] = json!({"seen-by": "approver"});
    let (code, after) = fx.admin.put(&approval("c"), &body);
    assert_eq!(code, 200, "{after}");
    assert_eq!(
        after["spec"], before["spec"],
        "spec never changes through /approval"
    );
    assert!(after["status"].get("certificate").is_none());
    assert_eq!(
        conditions(&after),
        [("Approved".to_string(), "True".to_string())]
    );
    assert_eq!(
        after["metadata"]["labels"]["seen-by"], "approver",
        "metadata is the request's"
    );
    assert_eq!(after, fx.api.csr("c").unwrap());
}

#[test]
fn approved_denied_and_failed_need_status_true() {
    let fx = Fx::new();
    let csr = fx.seed_csr("c", "w1");
    for ty in ["Approved", "Denied", "Failed"] {
        for status in ["False", "Unknown"] {
            let body = with_conditions(&csr, json!([{"type": ty, "status": status}]));
            let (code, b) = fx.admin.put(&approval("c"), &body);
            assert_eq!(
                invalid_fields(code, &b),
                ["status.conditions[0].status FieldValueNotSupported"],
                "{ty}={status}"
            );
            assert_eq!(
                b["details"]["causes"][0]["message"],
                format!("Unsupported value: \"{status}\": supported values: \"True\"")
            );
        }
    }
    let (code, b) = fx.admin.put(
        &approval("c"),
        &with_conditions(&csr, json!([{"type": "Approved"}])),
    );
    assert_eq!(
        invalid_fields(code, &b),
        ["status.conditions[0].status FieldValueRequired"]
    );
    // Other condition types may be False or Unknown.
    let other = json!([{"type": "Reviewed", "status": "False"}]);
    assert_eq!(
        fx.admin
            .put(&approval("c"), &with_conditions(&csr, other))
            .0,
        200
    );
}

#[test]
fn approved_and_denied_exclude_each_other() {
    let fx = Fx::new();
    let csr = fx.seed_csr("c", "w1");
    let both = json!([approved(), {"type": "Denied", "status": "True", "reason": "No"}]);
    let (code, b) = fx.admin.put(&approval("c"), &with_conditions(&csr, both));
    assert_eq!(
        invalid_fields(code, &b),
        ["status.conditions FieldValueInvalid"]
    );
    assert!(b["message"]
        .as_str()
        .unwrap()
        .contains("Approved and Denied conditions are mutually exclusive"));
    // A CSR another approver denied cannot be approved later.
    let denied = fx
        .api
        .set_condition("c", "Denied", "Other", "denied elsewhere")
        .unwrap();
    let mut conds = denied["status"]["conditions"].clone();
    conds.as_array_mut().unwrap().push(approved());
    let (code, b) = fx
        .admin
        .put(&approval("c"), &with_conditions(&denied, conds));
    assert_eq!(
        invalid_fields(code, &b),
        ["status.conditions FieldValueInvalid"]
    );
    assert!(fx.api.set_condition("c", "Approved", "Me", "").is_err());
}

#[test]
fn one_condition_per_type() {
    let fx = Fx::new();
    let csr = fx.seed_csr("c", "w1");
    let twice = json!([approved(), approved()]);
    let (code, b) = fx.admin.put(&approval("c"), &with_conditions(&csr, twice));
    assert_eq!(
        invalid_fields(code, &b),
        ["status.conditions[1].type FieldValueDuplicate"]
    );
    let (code, b) = fx.admin.put(
        &approval("c"),
        &with_conditions(&csr, json!([{"status": "True"}])),
    );
    assert_eq!(
        invalid_fields(code, &b),
        ["status.conditions[0].type FieldValueRequired"]
    );
}

#[test]
fn conditions_are_never_removed() {
    let fx = Fx::new();
    let csr = fx.seed_csr("c", "w1");
    let (_, ok) = fx
        .admin
        .put(&approval("c"), &with_conditions(&csr, json!([approved()])));
    for conds in [
        json!([]),
        Value::Null,
        json!([{"type": "Reviewed", "status": "True"}]),
    ] {
        let (code, b) = fx.admin.put(&approval("c"), &with_conditions(&ok, conds));
        assert_eq!(
            invalid_fields(code, &b),
            ["status.conditions FieldValueForbidden"]
        );
        assert!(b["message"]
            .as_str()
            .unwrap()
            .contains("updates may not remove a condition of type \"Approved\""));
    }
    assert_eq!(
        conditions(&fx.api.csr("c").unwrap()),
        [("Approved".into(), "True".into())]
    );
}

#[test]
fn condition_timestamps_are_filled_and_the_transition_time_kept() {
    let fx = Fx::new();
    let csr = fx.seed_csr("c", "w1");
    let (_, a) = fx
        .admin
        .put(&approval("c"), &with_conditions(&csr, json!([approved()])));
    let c0 = &a["status"]["conditions"][0];
    let t = time::OffsetDateTime::parse(
        c0["lastUpdateTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((time::OffsetDateTime::now_utc() - t).whole_seconds().abs() < 5);
    assert_eq!(c0["lastTransitionTime"], c0["lastUpdateTime"]);
    // Re-sent without timestamps, with a custom condition added: the Approved condition
    // keeps its transition time (same type and status), and the new one gets both.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = json!([approved(), {"type": "Reviewed", "status": "True"}]);
    let (_, b) = fx.admin.put(&approval("c"), &with_conditions(&a, again));
    assert_eq!(
        b["status"]["conditions"][0]["lastTransitionTime"],
        c0["lastTransitionTime"]
    );
    assert_ne!(
        b["status"]["conditions"][0]["lastUpdateTime"],
        c0["lastUpdateTime"]
    );
    assert!(b["status"]["conditions"][1]["lastUpdateTime"].is_string());
}

#[test]
fn a_stale_resource_version_is_409_and_a_put_without_one_applies() {
    let fx = Fx::new();
    let read = fx.seed_csr("c", "w1");
    fx.api.add_node("w1", &[]); // other writes do not make the CSR's version stale
    let (code, _) = fx
        .admin
        .put(&approval("c"), &with_conditions(&read, json!([approved()])));
    assert_eq!(code, 200, "the version read is the CSR's current one");
    // Another approver wrote in between: the version read before is stale now.
    let (code, b) = fx.admin.put(
        &approval("c"),
        &with_conditions(
            &read,
            json!([approved(), {"type": "Reviewed", "status": "True"}]),
        ),
    );
    assert_eq!((code, reason(&b)), (409, ("Conflict", 409)));
    assert_eq!(
        b["message"],
        "Operation cannot be fulfilled on certificatesigningrequests.certificates.k8s.io \"c\": \
         the object has been modified; please apply your changes to the latest version and try again"
    );
    let mut unconditional = with_conditions(
        &read,
        json!([approved(), {"type": "Reviewed", "status": "True"}]),
    );
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert_eq!(fx.admin.put(&approval("c"), &unconditional).0, 200);
    assert_eq!(conditions(&fx.api.csr("c").unwrap()).len(), 2);
}

#[test]
fn a_write_that_changes_nothing_keeps_the_resource_version() {
    let fx = Fx::new();
    let csr = fx.seed_csr("c", "w1");
    let (_, a) = fx
        .admin
        .put(&approval("c"), &with_conditions(&csr, json!([approved()])));
    let (code, b) = fx.admin.put(&approval("c"), &a);
    assert_eq!((code, rv(&b)), (200, rv(&a)));
}

#[test]
fn approval_by_merge_strategic_and_json_patch() {
    let fx = Fx::new();
    for (name, ct) in [
        ("m", "application/merge-patch+json"),
        ("s", "application/strategic-merge-patch+json"),
    ] {
        fx.seed_csr(name, "w1");
        let (code, v) = fx.admin.patch(
            &approval(name),
            ct,
            &json!({"status": {"conditions": [approved()]}}),
        );
        assert_eq!(code, 200, "{ct}: {v}");
        assert_eq!(conditions(&v), [("Approved".into(), "True".into())]);
        let (code, b) = fx.admin.patch(
            &approval(name),
            ct,
            &json!({"spec": {"username": "x"}, "status": {"conditions": []}}),
        );
        assert_eq!(
            invalid_fields(code, &b),
            ["status.conditions FieldValueForbidden"]
        );
    }
    fx.seed_csr("j", "w1");
    let ops = json!([{"op": "add", "path": "/status/conditions", "value": [approved()]}]);
    let (code, v) = fx
        .admin
        .patch(&approval("j"), "application/json-patch+json", &ops);
    assert_eq!((code, conditions(&v).len()), (200, 1));
    let (code, _) = fx
        .admin
        .patch(&approval("j"), "application/apply-patch+yaml", &json!({}));
    assert_eq!(code, 415, "server-side apply is not implemented");
    assert_eq!(
        fx.admin.get(&approval("j")).1,
        fx.api.csr("j").unwrap(),
        "GET /approval is the object"
    );
}

#[test]
fn an_approval_write_names_the_csr_of_its_url() {
    let fx = Fx::new();
    let a = fx.seed_csr("a", "w1");
    let (code, b) = fx
        .admin
        .put(&approval("b"), &with_conditions(&a, json!([approved()])));
    assert_eq!((code, reason(&b)), (400, ("BadRequest", 400)));
    let mut b_body = with_conditions(&a, json!([approved()]));
    b_body["metadata"]["name"] = json!("b");
    let (code, b) = fx.admin.put(&approval("b"), &b_body);
    assert_eq!((code, reason(&b)), (404, ("NotFound", 404)));
    let (code, b) = fx.admin.put(
        &approval("a"),
        &json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
    );
    assert_eq!((code, reason(&b)), (400, ("BadRequest", 400)));
}

#[test]
fn sign_issues_what_the_signer_would_for_an_approved_csr() {
    use x509_parser::prelude::*;
    let fx = Fx::new();
    fx.seed_csr("c", "w1");
    assert!(
        fx.api.sign("c").is_err(),
        "the signer issues nothing before approval"
    );
    fx.api.set_condition("c", "Approved", "Test", "").unwrap();
    let signed = fx.api.sign("c").unwrap();
    use base64::Engine;
    let pem_text = base64::engine::general_purpose::STANDARD
        .decode(signed["status"]["certificate"].as_str().unwrap())
        .unwrap();
    let cert_pem = ::pem::parse(&pem_text).unwrap();
    let (_, cert) = X509Certificate::from_der(cert_pem.contents()).unwrap();
    let ca_pem = ::pem::parse(&fx.ca).unwrap();
    let (_, ca) = X509Certificate::from_der(ca_pem.contents()).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        "O=system:nodes, CN=system:node:w1"
    );
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    let names: Vec<String> = san
        .general_names
        .iter()
        .map(|g| match g {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
            other => format!("other:{other:?}"),
        })
        .collect();
    assert_eq!(names, ["DNS:w1", "IP:[127, 0, 0, 2]"]);
    assert!(
        cert.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );
    assert!(fx.api.sign("c").is_err(), "a certificate is issued once");
}
