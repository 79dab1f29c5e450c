//! The text tables of `kubeadm certs check-expiration`.
//!
//! Port of `certTextPrinter.PrintObj` in kubernetes/kubernetes
//! `cmd/kubeadm/app/cmd/certs.go` @803d40a5 (same strings in @035f22d7):
//! one `tabwriter.NewWriter(out, 10, 4, 3, ' ', 0)` for both tables, flushed
//! once at the end. The `fmt.Fprintln(tabw)` between them goes through the
//! tabwriter: a one-cell line, so Go flushes there, and (flush or not) a line
//! without a tab ends every column block, so each table gets its own widths.
//! The last cell (`%-8v` of yes/no, or the trailing empty cell of a `!MISSING!`
//! row) is in no column, hence the trailing spaces kubeadm prints.

use time::OffsetDateTime;

use super::format::{kubeadm_date, residual_seconds, TabWriter};
use super::style::{Options, Style};
use super::{sorted_by_name, Report, RowStatus};

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `EXPIRES` and `RESIDUAL TIME` cells for a present certificate.
fn expiry_cells(style: &Style, not_after: OffsetDateTime, now: OffsetDateTime) -> (String, String) {
    (
        kubeadm_date(not_after),
        style.residual(residual_seconds(not_after, now)),
    )
}

/// The CERTIFICATE AUTHORITY cell: kubeconfig rows (`*.conf`) have none before v1.23.1.
fn ca_cell<'a>(style: &Style, name: &str, ca: &'a str) -> &'a str {
    if !style.kubeconfig_ca && name.ends_with(".conf") {
        ""
    } else {
        ca
    }
}

/// [`render_text_with`] as printed before issue 18 ([`Options::default`], v1.30's style).
pub fn render_text(r: &Report, now: OffsetDateTime) -> String {
    render_text_with(r, now, &Options::default())
}

/// Renders kubeadm's header lines (only when the ConfigMap was read), its two tables in the
/// style of the node's release, then (only if `r.kubelet` is non-empty) a blank line and a
/// kubelet table in the same style. Ends with a newline.
pub fn render_text_with(r: &Report, now: OffsetDateTime, opts: &Options) -> String {
    let style = &opts.style;
    let mut w = TabWriter::kubeadm();

    w.line("CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tCERTIFICATE AUTHORITY\tEXTERNALLY MANAGED");
    for c in sorted_by_name(&r.certs, |c| &c.name) {
        match c.not_after {
            Some(na) => {
                let (date, residual) = expiry_cells(style, na, now);
                w.line(&format!(
                    "{}\t{date}\t{residual}\t{}\t{:<8}",
                    c.name,
                    ca_cell(style, &c.name, &c.ca_name),
                    yes_no(c.external)
                ));
            }
            None => w.line(&format!("!MISSING! {}\t\t\t\t", c.name)),
        }
    }

    w.line("");
    w.line("CERTIFICATE AUTHORITY\tEXPIRES\tRESIDUAL TIME\tEXTERNALLY MANAGED");
    for ca in sorted_by_name(&r.cas, |c| &c.name) {
        match ca.not_after {
            Some(na) => {
                let (date, residual) = expiry_cells(style, na, now);
                w.line(&format!(
                    "{}\t{date}\t{residual}\t{:<8}",
                    ca.name,
                    yes_no(ca.external)
                ));
            }
            None => w.line(&format!("!MISSING! {}\t\t\t", ca.name)),
        }
    }

    if !r.kubelet.is_empty() {
        w.line("");
        w.line("KUBELET CERTIFICATE\tEXPIRES\tRESIDUAL TIME\tFILE");
        for k in sorted_by_name(&r.kubelet, |k| &k.name) {
            match k.not_after {
                Some(na) => {
                    let (date, residual) = expiry_cells(style, na, now);
                    w.line(&format!("{}\t{date}\t{residual}\t{}", k.name, k.path));
                }
                None if k.status == RowStatus::Invalid => {
                    w.line(&format!("!UNREADABLE! {}\t\t\t{}", k.name, k.path))
                }
                None => w.line(&format!("!MISSING! {}\t\t\t", k.name)),
            }
        }
        for k in sorted_by_name(&r.kubelet, |k| &k.name) {
            if !k.note.is_empty() {
                w.line(&format!("{}: {}", k.name, k.note));
            }
        }
    }

    let table = w.finish();
    if opts.configmap_read {
        format!("{}{table}", style.header_text())
    } else {
        table
    }
}
