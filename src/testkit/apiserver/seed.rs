//! Seeding and reading the state from a test: Nodes, CSRs (created as the apiserver stores
//! them, decided as another approver would, signed as the controller-manager would),
//! ConfigMaps, the `kubernetes` Service and the version.

use super::store::{self, Key, Kind};
use super::{csr, signer, ApiServer, CsrSpec};
use anyhow::{anyhow, Result};
use serde_json::{json, Value};
use std::time::Duration;

fn csr_key(name: &str) -> Key {
    (Kind::Csr, String::new(), name.to_string())
}

impl ApiServer {
    /// Add (or replace the addresses of) a Node; `addresses` are (type, address) pairs such
    /// as ("InternalIP", "127.0.0.2"), ("Hostname", "w1").
    pub fn add_node(&self, name: &str, addresses: &[(&str, &str)]) {
        let addrs: Vec<Value> = addresses
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        let key = (Kind::Node, String::new(), name.to_string());
        self.shared.mutate(|st| match st.get(&key).cloned() {
            Some(mut n) => {
                n["status"]["addresses"] = json!(addrs);
                st.update(&key, n);
            }
            None => {
                let n = json!({
                    "metadata": {"labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
                    "spec": {},
                    "status": {"addresses": addrs}
                });
                st.create(key, n);
            }
        });
    }

    /// Set a label on a Node (e.g. kubeadm's `node-role.kubernetes.io/control-plane`, which a
    /// kubelet cannot set on itself); whether the Node exists.
    pub fn label_node(&self, name: &str, key: &str, value: &str) -> bool {
        let key_ = (Kind::Node, String::new(), name.to_string());
        self.shared.mutate(|st| match st.get(&key_).cloned() {
            Some(mut n) => {
                n["metadata"]["labels"][key] = json!(value);
                st.update(&key_, n);
                true
            }
            None => false,
        })
    }

    /// Delete a Node; whether it existed.
    pub fn remove_node(&self, name: &str) -> bool {
        let key = (Kind::Node, String::new(), name.to_string());
        self.shared.mutate(|st| st.delete(&key).is_some())
    }

    /// Create a CSR as the apiserver stores one after PrepareForCreate: the given identity
    /// in spec.username/groups, an empty status. No validation: tests may seed requests
    /// the API would refuse. A CSR of the same name is replaced (DELETED, then ADDED).
    pub fn create_csr(&self, name: &str, spec: CsrSpec) -> Value {
        let mut groups = spec.groups;
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        let obj = json!({
            "metadata": {},
            "spec": {
                "request": csr::encode_pem(&spec.request_pem),
                "signerName": spec.signer_name,
                "usages": spec.usages,
                "username": spec.username,
                "groups": groups,
            },
            "status": {}
        });
        self.shared.mutate(|st| {
            st.delete(&csr_key(name));
            st.create(csr_key(name), obj)
        })
    }

    /// The stored CSR.
    pub fn csr(&self, name: &str) -> Option<Value> {
        self.shared.lock().get(&csr_key(name)).cloned()
    }

    /// Every stored CSR, by name.
    pub fn csrs(&self) -> Vec<Value> {
        let st = self.shared.lock();
        st.list(Kind::Csr, None, &store::Selector::default())
            .into_iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Delete a CSR; whether it existed.
    pub fn delete_csr(&self, name: &str) -> bool {
        self.shared.mutate(|st| st.delete(&csr_key(name)).is_some())
    }

    /// Add a condition (`Approved`, `Denied`, `Failed`, ...) with status "True", as another
    /// approver would through /approval: the same strategy and validation apply, so adding
    /// Approved to a Denied CSR fails.
    pub fn set_condition(
        &self,
        name: &str,
        ty: &str,
        reason: &str,
        message: &str,
    ) -> Result<Value> {
        self.shared.mutate(|st| {
            let key = csr_key(name);
            let old = st
                .get(&key)
                .cloned()
                .ok_or_else(|| anyhow!("no CSR {name}"))?;
            let mut new = old.clone();
            let mut conds = new
                .pointer("/status/conditions")
                .cloned()
                .unwrap_or_else(|| json!([]));
            if let Some(a) = conds.as_array_mut() {
                a.push(json!({"type": ty, "status": "True", "reason": reason, "message": message}));
            }
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            new["status"]["conditions"] = conds;
            let out =
                csr::approval_update(&old, &new).map_err(|s| anyhow!("{}", s.body["message"]))?;
            Ok(st.update(&key, out))
        })
    }

    /// Do what kube-controller-manager's signer does for an Approved, not Failed CSR:
    /// issue the certificate with the cluster CA into status.certificate.
    pub fn sign(&self, name: &str) -> Result<Value> {
        let (ca, key) = (
            self.shared.ca_cert_pem.clone(),
            self.shared.ca_key_pem.clone(),
        );
        self.shared.mutate(|st| {
            let k = csr_key(name);
            let mut obj = st
                .get(&k)
                .cloned()
                .ok_or_else(|| anyhow!("no CSR {name}"))?;
            let pem = signer::sign(&obj, &ca, &key)?;
            obj["status"]["certificate"] = json!(csr::encode_pem(&pem));
            Ok(st.update(&k, obj))
        })
    }

    /// Move a CSR's creationTimestamp `age` into the past (for "pending for N minutes").
    pub fn backdate_csr(&self, name: &str, age: Duration) -> bool {
        let when = store::rfc3339(store::now() - age);
        self.shared.mutate(|st| {
            let key = csr_key(name);
            let Some(obj) = st.get(&key).cloned() else {
                return false;
            };
            let mut obj = st.update(&key, obj);
            obj["metadata"]["creationTimestamp"] = json!(when);
            st.objects.insert(key, obj.clone());
            if let Some(e) = st.events.last_mut() {
                e.object = obj;
            }
            true
        })
    }

    /// Create or replace a ConfigMap's data.
    pub fn put_configmap(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let key = (Kind::ConfigMap, ns.to_string(), name.to_string());
        self.shared.mutate(|st| match st.get(&key).cloned() {
            Some(mut cm) => {
                cm["data"] = Value::Object(data);
                st.update(&key, cm);
            }
            None => {
                st.create(key, json!({"metadata": {}, "data": data}));
            }
        });
    }

    /// kube-system/kubeadm-config as `kubeadm init` uploads it (v1beta4, kubeadm's defaults
    /// written out): a kubeadm cluster always has one, and the daemon reads it.
    pub fn put_kubeadm_config(&self, kubernetes_version: &str) {
        let doc = format!(
            "apiServer: {{}}\napiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrollerManager: {{}}\ndns: {{}}\nencryptionAlgorithm: RSA-2048\netcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: {kubernetes_version}\nnetworking:\n  dnsDomain: cluster.local\n  serviceSubnet: 10.96.0.0/12\nproxy: {{}}\nscheduler: {{}}\n"
        );
        self.put_configmap(
            "kube-system",
            "kubeadm-config",
            &[("ClusterConfiguration", &doc)],
        );
    }

    /// The stored ConfigMap.
    pub fn configmap(&self, ns: &str, name: &str) -> Option<Value> {
        let key = (Kind::ConfigMap, ns.to_string(), name.to_string());
        self.shared.lock().get(&key).cloned()
    }

    /// The ClusterIP of default/kubernetes (10.96.0.1 at start, kubeadm's default).
    pub fn set_kubernetes_service_ip(&self, ip: &str) {
        let key = (
            Kind::Service,
            "default".to_string(),
            "kubernetes".to_string(),
        );
        self.shared.mutate(|st| {
            if let Some(mut svc) = st.get(&key).cloned() {
                svc["spec"] = kubernetes_service(ip)["spec"].clone();
                st.update(&key, svc);
            }
        });
    }

    /// The gitVersion /version reports ("v1.34.0" at start).
    pub fn set_version(&self, git_version: &str) {
        self.shared
            .mutate(|st| st.git_version = git_version.to_string());
    }
}

/// default/kubernetes as the apiserver reconciles it (port 443 to the secure port).
pub(super) fn kubernetes_service(ip: &str) -> Value {
    json!({
        "metadata": {"labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": ip, "clusterIPs": [ip], "type": "ClusterIP",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
            "ipFamilies": [if ip.contains(':') { "IPv6" } else { "IPv4" }],
            "ipFamilyPolicy": "SingleStack"
        },
        "status": {"loadBalancer": {}}
    })
}
