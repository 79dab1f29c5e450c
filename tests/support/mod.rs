//! Shared test support; each test binary uses only part of it.
#![allow(dead_code)]

pub mod daemon_node;
pub mod etcd;
pub mod fakes;
pub mod kube;
pub mod openssl_node;
