//! A cheap pre-check before handing node YAML to the parser: deeply nested flow collections
//! (`[[[[...`) make the parser crawl, and no kubeadm file nests more than a few levels.

/// The deepest flow nesting accepted.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Refuse text whose `[`/`{` nesting (outside quotes and comments) exceeds [`MAX_FLOW_DEPTH`].
pub fn check_nesting(text: &str) -> Result<(), String> {
    let (mut depth, mut quote, mut comment) = (0usize, None::<char>, false);
    let mut prev = '\n';
    for ch in text.chars() {
        if comment {
            comment = ch != '\n';
        } else if let Some(q) = quote {
            if ch == q {
                quote = None;
            }
        } else {
            match ch {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if matches!(prev, ' ' | '[' | '{' | ',' | ':' | '\n') => {
                    quote = Some(ch)
                }
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Err(format!(
                            "YAML nested more than {MAX_FLOW_DEPTH} levels deep"
                        ));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
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
        assert!(check_nesting("preferences: {}\nargs: [a, '[[[[', \"{{{{\"] # [[[[\n").is_ok());
    }
}
