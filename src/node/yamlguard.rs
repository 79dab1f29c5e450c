//! A cheap pre-check before handing node YAML to the parser: deeply nested flow collections
//! (`[[[[...`) make the parser crawl, and no kubeadm file nests more than a few levels.

/// The deepest flow nesting accepted.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Refuse text whose `[`/`{` nesting (outside quotes and comments) exceeds [`MAX_FLOW_DEPTH`].
pub fn check_nesting(text: &str) -> Result<(), String> {
    // Fewer openers than the limit cannot nest past it, whatever quotes and comments hold:
    // this count is one vectorised pass, and kubeadm's files never get past it.
    if text.bytes().filter(|b| matches!(b, b'[' | b'{')).count() <= MAX_FLOW_DEPTH {
        return Ok(());
    }
    // Bytes, not chars: every byte that matters is ASCII, and no byte of a multi-byte UTF-8
    // character is ASCII. Kubeconfigs carry kilobytes of base64, so this runs on every scan.
    let (mut depth, mut quote, mut comment) = (0usize, None::<u8>, false);
    let mut prev = b'\n';
    for &ch in text.as_bytes() {
        if comment {
            comment = ch != b'\n';
        } else if let Some(q) = quote {
            if ch == q {
                quote = None;
            }
        } else {
            match ch {
                b'#' if prev.is_ascii_whitespace() => comment = true,
                b'"' | b'\'' if matches!(prev, b' ' | b'[' | b'{' | b',' | b':' | b'\n') => {
                    quote = Some(ch)
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Err(format!(
                            "YAML nested more than {MAX_FLOW_DEPTH} levels deep"
                        ));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev = ch;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_and_ordinary_yaml_passes() {
        assert!(check_nesting(&"[".repeat(100)).is_err());
        assert!(check_nesting(&"[".repeat(MAX_FLOW_DEPTH + 1)).is_err());
        assert!(check_nesting(&"[".repeat(MAX_FLOW_DEPTH)).is_ok());
        // Many openers, shallow nesting: the full scan runs and passes.
        assert!(check_nesting(&"[a], {b: c}\n".repeat(100)).is_ok());
        assert!(check_nesting("preferences: {}\nargs: [a, '[[[[', \"{{{{\"] # [[[[\n").is_ok());
    }
}
