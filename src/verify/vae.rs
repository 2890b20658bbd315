//! Placeholder until this kind's checker lands.

use std::path::{Path, PathBuf};

use super::{CheckResult, Kind};
use crate::Backend;

pub fn run(_kind: Kind, _root: &Path, _files: &[PathBuf], _backend: Backend, _report: &mut dyn FnMut(CheckResult)) {}
