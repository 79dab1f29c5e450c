//! Writes the man pages and completions into the directory given as the only argument.
//! Stand-in for `kubeadm-certd generate-assets DIR` while that arm is being wired.
fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: gen_assets DIR"))?;
    kubeadm_certd::assets::generate_assets(std::path::Path::new(&dir))
}
