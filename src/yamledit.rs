//! PLACEHOLDER until the yamledit helper lands.
#![allow(missing_docs)]
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> { Key(&'a str), Named(&'a str) }
#[derive(Debug, thiserror::Error)]
pub enum YamlEditError { #[error("x")] NotFound(String) }
pub fn replace_scalar(_t: &str, _p: &[Step], _v: &str) -> Result<String, YamlEditError> { Err(YamlEditError::NotFound(String::new())) }
pub fn set_top_level(_t: &str, _k: &str, _v: &str) -> Result<String, YamlEditError> { Err(YamlEditError::NotFound(String::new())) }
pub fn replace_entry(_t: &str, _p: &[Step], _k: &str, _v: &str) -> Result<String, YamlEditError> { Err(YamlEditError::NotFound(String::new())) }
