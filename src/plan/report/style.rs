//! What `kubeadm certs check-expiration` prints differently from one kubeadm release to the
//! next (issue 18, item 3), and the node's release → [`Style`] table.
//!
//! | release | RESIDUAL TIME | CA column of `.conf` rows | lines before the table (only when the ConfigMap was read) | `-o json\|yaml` |
//! |---|---|---|---|---|
//! | v1.23.0 | `ShortHumanDuration` | empty | `Reading configuration from the cluster...` + `FYI: ... -o yaml'` | none |
//! | v1.23.1 – v1.29 | `ShortHumanDuration` | `ca` | same | none |
//! | v1.30 | `ShortHumanDuration` | `ca` | same | `output.kubeadm.k8s.io/v1alpha3` |
//! | v1.31 – v1.32 | `HumanDuration` | `ca` | `Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...` + `Use '... --config your-config.yaml' to re-upload it.` | v1alpha3 |
//! | v1.33 – newest | `HumanDuration` | `ca` | same, `--config your-config-file` | v1alpha3 |
//! | not detected | as v1.30 (the output before issue 18) | | | |
//!
//! Unchanged in every release read: `tabwriter.NewWriter(out, 10, 4, 3, ' ', 0)`, the two
//! header rows, `%-8v` yes/no, `!MISSING! <name>` rows, the blank line between the tables, the
//! header lines on stdout (kubeadm's `TextPrinter.Printf` is `fmt.Printf`) followed by one empty
//! line (`printer.Println()`), and none of them with `-o json|yaml`
//! (`ResourcePrinterWrapper.Printf` prints nothing).
//!
//! Sources, kubernetes/kubernetes unless noted. The code index holds a few versions of each
//! file, identified here by commit and by what they contain; it does not hold the files at the
//! release tags, so a release boundary comes from the PR that made the change and when it
//! merged, or from output that users pasted with their kubeadm version:
//! - `cmd/kubeadm/app/cmd/certs.go` @035f22d7 (v1beta3 era, no `-o`): tabwriter in `RunE`,
//!   `duration.ShortHumanDuration(e.ResidualTime())`, `handler.CAName`, header lines via
//!   `getInternalCfg` + `fmt.Println()`.
//! - the same file @803d40a5 (v1.30: `certTextPrinter`, `outputapiv1alpha3`, `printer.Println()`):
//!   still `ShortHumanDuration(time.Duration(cert.ResidualTimeSeconds)*time.Second)`.
//! - PR #124652 (opened 2024-05-01, after v1.30.0 of 2024-04-17; v1beta4, so v1.31): "In certs
//!   show-expiration use HumanDuration()". Release unverified at a tag; v1.31 is the first
//!   release it can be in. User output `2y327d` from a v1beta4 kubeadm (Cray-HPE/docs-csm#6185,
//!   2025-08) and `364d` with the old header from kubeadm v1.30.14 (lework/kubeadm-certs#3)
//!   agree.
//! - PR #106891 (2021-12-08, a day after v1.23.0; v1.24) "print the CA of kubeconfig files in
//!   check expiration", cherry-picked to release-1.23 as #106926 (listed in the v1.23 patch
//!   notes up to v1.23.9, as quoted in a Giant Swarm release note; CHANGELOG-1.23.md itself was
//!   not found in the index). The first v1.23 patch that has it is unverified: v1.23.1 is
//!   assumed. Earlier user output shows the empty cell (kubernetes PR #83932, sealerio/sealer#753).
//! - `cmd/kubeadm/app/util/config/cluster.go` (v1.34+ version, `NodeLocalCRISocket`):
//!   `Reading configuration from the %q ConfigMap in namespace %q...` and `Use 'kubeadm init
//!   phase upload-config --config your-config-file' to re-upload it.`; kubernetes/kubeadm#3201
//!   quotes the same line from v1.33.0. The `your-config.yaml` wording is user output
//!   (Cray-HPE/docs-csm#6185); that it is v1.31–v1.32, and that the old lines last until v1.30
//!   (verified for v1.30.14 by lework/kubeadm-certs#3), are inferred, not read at a tag.
//! - `cmd/kubeadm/app/util/output/output.go`: `TextPrinter.Printf` = `fmt.Printf`,
//!   `ResourcePrinterWrapper.Printf` returns `0, nil`.
//! - `cmd/kubeadm/app/apis/output/v1alpha3/types.go` @008b3652: `CertificateExpirationInfo`, the
//!   only check-expiration type; the index's newest output API (with
//!   `zz_generated.model_name.go`) has no newer group version. `-o` came with PR #123372 (v1.30).
//! - kubernetes/apimachinery `pkg/util/duration/duration.go` at tags kubernetes-1.23.0 …
//!   kubernetes-1.36.0 (the staging copy kubeadm builds with): `ShortHumanDuration` and
//!   `HumanDuration` are the same in every one of them (only `fmt.Sprintf` → literal and a
//!   comment typo changed, in v1.25 and v1.27).

use crate::node::version::KubeVersion;

/// How RESIDUAL TIME is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    /// `duration.ShortHumanDuration`: one unit, truncated (`1d`, `1y`).
    Short,
    /// `duration.HumanDuration`: two units where it matters (`30h`, `400d`, `4y300d`).
    Human,
}

/// The lines printed before the table when the configuration came from the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Up to v1.30.
    FromCluster,
    /// v1.31 – v1.32.
    ConfigMapYaml,
    /// v1.33 on.
    ConfigMapFile,
}

/// How one kubeadm release prints check-expiration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// RESIDUAL TIME.
    pub residual: Residual,
    /// Whether kubeconfig rows (`admin.conf`, ...) show their CA (`ca`); empty before.
    pub kubeconfig_ca: bool,
    /// The lines before the table.
    pub header: Header,
    /// The JSON `apiVersion`.
    pub api_version: &'static str,
    /// Whether this release has `-o json|yaml` at all (kubeadm-certd prints the v1.30 form for
    /// older releases too: there is no older form to follow).
    pub has_output_flag: bool,
}

/// `output.kubeadm.k8s.io/v1alpha3`.
pub const OUTPUT_V1ALPHA3: &str = "output.kubeadm.k8s.io/v1alpha3";

impl Style {
    /// The output before issue 18, kept when no release is detected: v1.30's.
    pub const UNDETECTED: Style = Style::for_release(KubeVersion::new(1, 30, 0));

    /// The style of `v` (see the module table); `None` = [`Style::UNDETECTED`]. Releases before
    /// v1.23, outside the range read, print as v1.23.0.
    pub const fn for_version(v: Option<KubeVersion>) -> Style {
        match v {
            Some(v) => Style::for_release(v),
            None => Style::UNDETECTED,
        }
    }

    const fn for_release(v: KubeVersion) -> Style {
        Style {
            residual: if at_least(v, 1, 31, 0) {
                Residual::Human
            } else {
                Residual::Short
            },
            kubeconfig_ca: at_least(v, 1, 23, 1),
            header: if at_least(v, 1, 33, 0) {
                Header::ConfigMapFile
            } else if at_least(v, 1, 31, 0) {
                Header::ConfigMapYaml
            } else {
                Header::FromCluster
            },
            api_version: OUTPUT_V1ALPHA3,
            has_output_flag: at_least(v, 1, 30, 0),
        }
    }

    /// RESIDUAL TIME for `secs` whole seconds (kubeadm's `ResidualTimeSeconds`).
    pub fn residual(&self, secs: i64) -> String {
        match self.residual {
            Residual::Short => super::format::short_human_duration(secs),
            Residual::Human => human_duration(secs),
        }
    }

    /// The lines kubeadm prints before the table when it read the `kubeadm-config` ConfigMap,
    /// with the empty line after them.
    pub fn header_text(&self) -> &'static str {
        match self.header {
            Header::FromCluster => concat!(
                "[check-expiration] Reading configuration from the cluster...\n",
                "[check-expiration] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n",
                "\n"
            ),
            Header::ConfigMapYaml => concat!(
                "[check-expiration] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n",
                "[check-expiration] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.\n",
                "\n"
            ),
            Header::ConfigMapFile => concat!(
                "[check-expiration] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n",
                "[check-expiration] Use 'kubeadm init phase upload-config --config your-config-file' to re-upload it.\n",
                "\n"
            ),
        }
    }
}

/// `v` ≥ v`major`.`minor`.`patch` (a `const` comparison).
const fn at_least(v: KubeVersion, major: u32, minor: u32, patch: u32) -> bool {
    v.major > major
        || (v.major == major && (v.minor > minor || (v.minor == minor && v.patch >= patch)))
}

/// What a check-expiration run prints around the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The node's release's style.
    pub style: Style,
    /// The `kubeadm-config` ConfigMap was read live from the API for this run: only then does
    /// kubeadm print its header lines (`cli::check` sets it after a bounded live read).
    pub configmap_read: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            style: Style::UNDETECTED,
            configmap_read: false,
        }
    }
}

/// Go's `duration.HumanDuration(time.Duration(secs) * time.Second)` (kubernetes/apimachinery
/// `pkg/util/duration/duration.go`, identical at kubernetes-1.23.0 … kubernetes-1.36.0).
///
/// `<invalid>` below -1 s, `0s` for -1 s; then seconds below 2 m, `XmYs` below 10 m, minutes
/// below 3 h, `XhYm` below 8 h, hours below 48 h, `XdYh` below 8 d, days below 2 y, `XyYd`
/// below 8 y, then years. A zero second part is left out (`5m`, `3d`, `4y`). Always truncated.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".to_string();
    }
    if secs < 0 {
        return "0s".to_string();
    }
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", secs % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with_rest(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with_rest(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

fn with_rest(n: i64, unit: &str, rest: i64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{n}{unit}")
    } else {
        format!("{n}{unit}{rest}{rest_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_boundaries() {
        let s = |a, b, c| Style::for_version(Some(KubeVersion::new(a, b, c)));
        assert!(!s(1, 22, 17).kubeconfig_ca && !s(1, 23, 0).kubeconfig_ca);
        assert!(s(1, 23, 1).kubeconfig_ca && s(1, 24, 0).kubeconfig_ca);
        assert_eq!(s(1, 30, 14).residual, Residual::Short);
        assert_eq!(s(1, 31, 0).residual, Residual::Human);
        assert_eq!(s(1, 30, 14).header, Header::FromCluster);
        assert_eq!(s(1, 32, 9).header, Header::ConfigMapYaml);
        assert_eq!(s(1, 33, 0).header, Header::ConfigMapFile);
        assert_eq!(s(2, 0, 0).header, Header::ConfigMapFile);
        assert!(!s(1, 29, 9).has_output_flag && s(1, 30, 0).has_output_flag);
        assert_eq!(Style::for_version(None), s(1, 30, 0));
        assert_eq!(Options::default().style, Style::UNDETECTED);
    }
}
