//! CA rotation (issue 20), the pure part: the rotation record, its phases, what each phase
//! asks of a node's files, and how a node's finished step moves the record on.
//!
//! Phases, each completed on every control-plane node before the next begins:
//!
//! | phase        | `etcd/ca.crt` | `etcd/ca.key` | etcd leaves signed by |
//! |--------------|---------------|---------------|-----------------------|
//! | trust-both   | old, new      | old           | old                   |
//! | reissue      | new, old      | new           | new                   |
//! | trust-new    | new           | new           | new                   |
//! | (abort) reissue-old | old, new | old        | old                   |
//! | (abort) untrust-new | old    | old           | old                   |
//!
//! Why this keeps quorum: within a phase a node is either before or after its step, and every
//! certificate any node presents is trusted by every node in either state. trust-both only
//! adds trust; reissue runs once every node trusts both; trust-new runs once every leaf is
//! the new CA's. An abort runs the same table backwards.
//!
//! Why the bundle's order: kubeadm (and `check-expiration`, and this daemon's renewal) takes the
//! *first* certificate of `ca.crt` as the CA and pairs it with `ca.key`
//! (`pkiutil.TryLoadCertFromDisk` picks `certs[0]`). So the first certificate is always the
//! one whose key is in `ca.key`: the old CA while the old key signs (trust-both), the new one
//! from reissue on. A renewal in any phase then signs with the CA of that phase, its issuer
//! check passes, and `check-expiration` shows what kubeadm shows; no renewal undoes a phase.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The etcd key of a CA's rotation record, beside the halt record.
pub fn record_key(ca: &str) -> String {
    format!("/kubeadm-certd/ca-rotation/{ca}")
}

/// Where the record of a single control-plane node lives, under stateDir.
pub const LOCAL_RECORD: &str = "ca-rotation.json";

/// The CAs phase 1 rotates.
pub const ROTATABLE: [&str; 1] = ["etcd-ca"];

/// A rotation's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// `ca.crt` trusts the old and the new CA.
    TrustBoth,
    /// The leaves are re-issued by the new CA; `ca.key` is the new key.
    Reissue,
    /// `ca.crt` trusts only the new CA.
    TrustNew,
    /// Finished.
    Done,
    /// Abort: the leaves go back to the old CA; `ca.key` is the old key.
    ReissueOld,
    /// Abort: `ca.crt` trusts only the old CA again.
    UntrustNew,
    /// Aborted: the old CA is back everywhere.
    Aborted,
}

/// Which of the two CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The CA being replaced.
    Old,
    /// The CA coming in.
    New,
}

/// What a phase asks of a node's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `etcd/ca.crt`, in order.
    pub bundle: Vec<Which>,
    /// The key in `etcd/ca.key` (always that of `bundle[0]`).
    pub key: Which,
    /// Who signs the etcd leaves.
    pub leaves: Which,
}

impl Phase {
    /// Every phase, for parsing and listing.
    pub const ALL: [Phase; 7] = [
        Phase::TrustBoth,
        Phase::Reissue,
        Phase::TrustNew,
        Phase::Done,
        Phase::ReissueOld,
        Phase::UntrustNew,
        Phase::Aborted,
    ];

    /// The name in records, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Phase::TrustBoth => "trust-both",
            Phase::Reissue => "reissue",
            Phase::TrustNew => "trust-new",
            Phase::Done => "done",
            Phase::ReissueOld => "reissue-old",
            Phase::UntrustNew => "untrust-new",
            Phase::Aborted => "aborted",
        }
    }

    /// The phase after this one.
    pub fn next(self) -> Phase {
        match self {
            Phase::TrustBoth => Phase::Reissue,
            Phase::Reissue => Phase::TrustNew,
            Phase::TrustNew | Phase::Done => Phase::Done,
            Phase::ReissueOld => Phase::UntrustNew,
            Phase::UntrustNew | Phase::Aborted => Phase::Aborted,
        }
    }

    /// Whether nodes still have steps to do.
    pub fn active(self) -> bool {
        !matches!(self, Phase::Done | Phase::Aborted)
    }

    /// The gauge value: 0 no rotation under way, 1-3 the forward phases, 4-5 an abort's.
    pub fn code(self) -> u8 {
        match self {
            Phase::Done | Phase::Aborted => 0,
            Phase::TrustBoth => 1,
            Phase::Reissue => 2,
            Phase::TrustNew => 3,
            Phase::ReissueOld => 4,
            Phase::UntrustNew => 5,
        }
    }

    /// Where an abort goes from here; `None` once trust-new has started (every leaf is the
    /// new CA's and some node may already trust only it) or when there is nothing to abort.
    pub fn abort(self) -> Option<Phase> {
        match self {
            // No leaf is the new CA's yet: dropping the new CA from the bundles is enough.
            Phase::TrustBoth => Some(Phase::UntrustNew),
            Phase::Reissue => Some(Phase::ReissueOld),
            _ => None,
        }
    }

    /// Phases still to run from this one, this one included.
    pub fn remaining(self) -> usize {
        let mut n = 0;
        let mut p = self;
        while p.active() {
            n += 1;
            p = p.next();
        }
        n
    }

    /// What the phase asks of a node's files; `None` when it asks nothing.
    pub fn target(self) -> Option<Target> {
        use Which::{New, Old};
        let t = |bundle: &[Which], key, leaves| {
            Some(Target {
                bundle: bundle.to_vec(),
                key,
                leaves,
            })
        };
        match self {
            Phase::TrustBoth | Phase::ReissueOld => t(&[Old, New], Old, Old),
            Phase::Reissue => t(&[New, Old], New, New),
            Phase::TrustNew => t(&[New], New, New),
            Phase::UntrustNew => t(&[Old], Old, Old),
            Phase::Done | Phase::Aborted => None,
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A phase completed, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseDone {
    /// The phase.
    pub phase: Phase,
    /// When its last node finished, RFC 3339 UTC.
    pub completed_at: String,
}

/// A single control-plane node's own halt of its rotation (an HA cluster uses the cluster's
/// halt record instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalHalt {
    /// What failed.
    pub reason: String,
    /// When, RFC 3339 UTC.
    pub time: String,
}

/// The rotation record: in etcd at [`record_key`] on an HA control plane, in
/// `<stateDir>/ca-rotation.json` on a single node. Changed only by compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Names this rotation (`<UTC stamp>-<random hex>`); part of the sealing key's label.
    pub id: String,
    /// The CA rotated (`etcd-ca`).
    pub ca: String,
    /// The current phase.
    pub phase: Phase,
    /// The control-plane nodes (etcd member names) that take part.
    pub nodes: Vec<String>,
    /// Nodes whose step of the current phase is complete, with when.
    #[serde(default)]
    pub done: BTreeMap<String, String>,
    /// Who started it: node, user, pid.
    pub started_by: String,
    /// When, RFC 3339 UTC.
    pub started_at: String,
    /// Last progress (a node's step or a phase), RFC 3339 UTC.
    pub updated_at: String,
    /// The old CA certificate, PEM.
    pub old_ca: String,
    /// The new CA certificate, PEM.
    pub new_ca: String,
    /// The new CA key file, sealed (see `pki::seal`); dropped once the rotation is over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_key: Option<crate::pki::seal::Sealed>,
    /// Phases completed.
    #[serde(default)]
    pub history: Vec<PhaseDone>,
    /// Who asked for the abort, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_by: Option<String>,
    /// A single node's halt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt: Option<LocalHalt>,
}

impl Rotation {
    /// The sealing key's HKDF label.
    pub fn seal_label(&self) -> String {
        format!("kubeadm-certd ca-rotation {} {}", self.ca, self.id)
    }

    /// Whether `node` has a step to do now.
    pub fn due(&self, node: &str) -> bool {
        self.phase.active() && self.nodes.iter().any(|n| n == node) && !self.done.contains_key(node)
    }

    /// `node` finished its step of `phase` at `now`: the record as it should be written. When
    /// it was the last node, the next phase begins (and the sealed key goes once the rotation
    /// is over). `None` when the record has moved on (another phase or rotation).
    pub fn with_step_done(
        &self,
        id: &str,
        phase: Phase,
        node: &str,
        now: &str,
    ) -> Option<Rotation> {
        if self.id != id || self.phase != phase || !self.due(node) {
            return None;
        }
        let mut r = self.clone();
        r.done.insert(node.to_string(), now.to_string());
        r.updated_at = now.to_string();
        if r.nodes.iter().all(|n| r.done.contains_key(n)) {
            r.history.push(PhaseDone {
                phase: r.phase,
                completed_at: now.to_string(),
            });
            r.phase = r.phase.next();
            r.done.clear();
            if !r.phase.active() {
                r.new_key = None;
            }
        }
        Some(r)
    }

    /// The record after an abort asked for at `now`; an error says why not.
    pub fn aborted(&self, by: &str, now: &str) -> Result<Rotation, String> {
        let to = self.phase.abort().ok_or_else(|| match self.phase {
            Phase::Done | Phase::Aborted => format!("rotation {} is over ({})", self.id, self.phase),
            Phase::ReissueOld | Phase::UntrustNew => {
                format!("rotation {} is already being aborted ({})", self.id, self.phase)
            }
            _ => format!(
                "rotation {} is in {}: some node may already trust only the new CA, so it can only go forward",
                self.id, self.phase
            ),
        })?;
        let mut r = self.clone();
        r.history.push(PhaseDone {
            phase: r.phase,
            completed_at: now.to_string(),
        });
        r.phase = to;
        r.done.clear();
        r.updated_at = now.to_string();
        r.aborted_by = Some(by.to_string());
        Ok(r)
    }

    /// Progress over the whole rotation, 0..=1: node steps done over node steps in all
    /// phases run or to run (an abort changes the path, so the fraction can step back).
    pub fn progress(&self) -> f64 {
        let n = self.nodes.len().max(1);
        let total = (self.history.len() + self.phase.remaining()) * n;
        if total == 0 {
            return 1.0;
        }
        let done = self.history.len() * n + self.done.len();
        done as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(nodes: &[&str]) -> Rotation {
        Rotation {
            id: "r1".into(),
            ca: "etcd-ca".into(),
            phase: Phase::TrustBoth,
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            done: BTreeMap::new(),
            started_by: "cp1".into(),
            started_at: "t0".into(),
            updated_at: "t0".into(),
            old_ca: String::new(),
            new_ca: String::new(),
            new_key: Some(crate::pki::seal::Sealed {
                alg: "a".into(),
                nonce: "n".into(),
                ciphertext: "c".into(),
            }),
            history: Vec::new(),
            aborted_by: None,
            halt: None,
        }
    }

    #[test]
    fn every_node_finishes_a_phase_before_the_next_begins() {
        let mut r = rec(&["cp1", "cp2", "cp3"]);
        let mut seen = Vec::new();
        for phase in [Phase::TrustBoth, Phase::Reissue, Phase::TrustNew] {
            for (k, n) in ["cp2", "cp1", "cp3"].iter().enumerate() {
                assert_eq!(r.phase, phase);
                assert!(r.due(n));
                // A step for another phase or rotation is not recorded.
                assert!(r.with_step_done("r0", phase, n, "t").is_none());
                assert!(r.with_step_done("r1", phase.next(), n, "t").is_none());
                r = r.with_step_done("r1", phase, n, &format!("t{k}")).unwrap();
                assert!(r.with_step_done("r1", r.phase, n, "t").is_none() || k == 2);
                seen.push(r.progress());
            }
        }
        assert_eq!(r.phase, Phase::Done);
        assert!(r.new_key.is_none(), "the sealed key goes with the rotation");
        assert_eq!(r.history.len(), 3);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(r.progress(), 1.0);
        assert!(!r.due("cp1"));
    }

    #[test]
    fn abort_until_trust_new() {
        let r = rec(&["cp1", "cp2"]);
        let a = r.aborted("cp2", "t").unwrap();
        assert_eq!(a.phase, Phase::UntrustNew);
        assert!(a.due("cp1") && a.due("cp2"));
        let mut re = rec(&["cp1", "cp2"]);
        re.phase = Phase::Reissue;
        re.done.insert("cp1".into(), "t".into());
        let a = re.aborted("cp1", "t").unwrap();
        assert_eq!(a.phase, Phase::ReissueOld);
        assert!(a.done.is_empty());
        assert_eq!(a.phase.next(), Phase::UntrustNew);
        assert_eq!(a.phase.next().next(), Phase::Aborted);
        for p in [
            Phase::TrustNew,
            Phase::Done,
            Phase::ReissueOld,
            Phase::Aborted,
        ] {
            let mut x = rec(&["cp1"]);
            x.phase = p;
            assert!(x.aborted("cp1", "t").is_err(), "{p}");
        }
    }

    #[test]
    fn the_first_ca_in_the_bundle_is_always_the_key_holder() {
        for p in Phase::ALL {
            if let Some(t) = p.target() {
                assert_eq!(t.bundle[0], t.key, "{p}");
                if t.leaves != t.key {
                    panic!("{p}: leaves signed by a CA whose key is not in ca.key");
                }
            }
        }
    }

    /// Every state a node may be in during a phase (before or after its step, and after an
    /// abort anywhere in the phase before) trusts every leaf any of those states presents: the
    /// invariant that keeps quorum (module docs).
    #[test]
    fn within_a_phase_every_member_trusts_every_peer() {
        let start = Target {
            bundle: vec![Which::Old],
            key: Which::Old,
            leaves: Which::Old,
        };
        let t = |p: Phase| p.target().unwrap();
        let (tb, re, tn) = (t(Phase::TrustBoth), t(Phase::Reissue), t(Phase::TrustNew));
        let (ro, un) = (t(Phase::ReissueOld), t(Phase::UntrustNew));
        let phases = [
            ("trust-both", vec![&start, &tb]),
            ("reissue", vec![&tb, &re]),
            ("trust-new", vec![&re, &tn]),
            ("reissue-old", vec![&tb, &re, &ro]),
            ("untrust-new after trust-both", vec![&start, &tb, &un]),
            ("untrust-new after reissue-old", vec![&ro, &un]),
        ];
        for (name, states) in phases {
            for a in &states {
                for b in &states {
                    assert!(a.bundle.contains(&b.leaves), "{name}: {a:?} vs {b:?}");
                }
            }
        }
    }

    #[test]
    fn record_round_trips_as_json() {
        let r = rec(&["cp1"]);
        let j = serde_json::to_string(&r).unwrap();
        assert!(j.contains("\"phase\":\"trust-both\""), "{j}");
        assert_eq!(serde_json::from_str::<Rotation>(&j).unwrap(), r);
    }
}
