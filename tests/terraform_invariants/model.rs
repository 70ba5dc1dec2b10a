//! Loading: the `.tf` files of a module parsed into a [`Module`], and lookups over its blocks
//! (resources, data sources, variables, outputs, locals) and their attributes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression, ObjectKey};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// The files in `dir` (not below it) whose name ends in `.{ext}`, sorted.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    paths.sort();
    paths
}

/// The `.tf` files of one module, parsed, and where they come from (to render them).
pub struct Module {
    pub files: Vec<(String, Body)>,
    pub source: Source,
}

/// Where a module's files are: a directory, or inline HCL.
pub enum Source {
    Dir(PathBuf),
    /// (file name, HCL)
    Snippet(Vec<(String, String)>),
}

impl Module {
    pub fn from_dir(dir: &Path) -> Module {
        let paths = files_with_extension(dir, "tf");
        assert!(!paths.is_empty(), "no .tf files in {}", dir.display());
        let files = paths
            .iter()
            .map(|p| {
                let src = fs::read_to_string(p)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
                let body = hcl::parse(&src)
                    .unwrap_or_else(|e| panic!("cannot parse {}: {e}", p.display()));
                (p.file_name().unwrap().to_string_lossy().into_owned(), body)
            })
            .collect();
        Module {
            files,
            source: Source::Dir(dir.to_path_buf()),
        }
    }

    pub fn parse_snippet(name: &str, src: &str) -> Module {
        let body = hcl::parse(src).unwrap_or_else(|e| panic!("cannot parse snippet {name}: {e}"));
        Module {
            files: vec![(name.to_owned(), body)],
            source: Source::Snippet(vec![(name.to_owned(), src.to_owned())]),
        }
    }

    /// Top-level blocks with this identifier, with the file they are in.
    pub fn blocks<'a>(&'a self, ident: &'a str) -> impl Iterator<Item = (&'a str, &'a Block)> + 'a {
        self.files.iter().flat_map(move |(file, body)| {
            body.blocks()
                .filter(move |b| b.identifier() == ident)
                .map(move |b| (file.as_str(), b))
        })
    }

    /// `resource` (or `data`) blocks as (file, type, name, block).
    pub fn labelled<'a>(&'a self, ident: &'a str) -> Vec<Labelled<'a>> {
        self.blocks(ident)
            .filter_map(|(file, block)| match block.labels() {
                [kind, name] => Some(Labelled {
                    file,
                    kind: kind.as_str(),
                    name: name.as_str(),
                    block,
                }),
                _ => None,
            })
            .collect()
    }

    pub fn resources(&self) -> Vec<Labelled<'_>> {
        self.labelled("resource")
    }

    /// Blocks with one label (`variable "x"`, `output "y"`) by that label.
    fn by_label<'a>(&'a self, ident: &'a str) -> BTreeMap<String, (&'a str, &'a Block)> {
        self.blocks(ident)
            .filter_map(|(file, b)| {
                b.labels()
                    .first()
                    .map(|l| (l.as_str().to_owned(), (file, b)))
            })
            .collect()
    }

    pub fn variables(&self) -> BTreeMap<String, (&str, &Block)> {
        self.by_label("variable")
    }

    pub fn outputs(&self) -> BTreeMap<String, (&str, &Block)> {
        self.by_label("output")
    }

    pub fn locals(&self) -> BTreeMap<String, &Expression> {
        self.blocks("locals")
            .flat_map(|(_, b)| {
                b.body()
                    .attributes()
                    .map(|a| (a.key().to_owned(), a.expr()))
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
pub struct Labelled<'a> {
    pub file: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub block: &'a Block,
}

impl Labelled<'_> {
    pub fn address(&self) -> String {
        format!("{}.{} ({})", self.kind, self.name, self.file)
    }

    /// `TYPE.NAME.ATTRIBUTE`: what the renderer renders of this resource's instances.
    pub fn spec(&self, attribute: &str) -> String {
        format!("{}.{}.{attribute}", self.kind, self.name)
    }

    /// Does the block set this argument, or have a nested block of this name?
    pub fn sets(&self, name: &str) -> bool {
        let body = self.block.body();
        attr(body, name).is_some() || nested(body, name).next().is_some()
    }
}

pub fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

pub fn nested<'a>(body: &'a Body, ident: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks().filter(move |b| b.identifier() == ident)
}

pub fn show(expr: &Expression) -> String {
    expr.to_string()
}

pub fn literal_str(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::String(s) => Some(s.as_str()),
        _ => None,
    }
}

pub fn key_name(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Identifier(id) => Some(id.as_str().to_owned()),
        ObjectKey::Expression(Expression::String(s)) => Some(s.clone()),
        ObjectKey::Expression(Expression::Variable(v)) => Some(v.as_str().to_owned()),
        _ => None,
    }
}

/// `[[bin]] name = "..."` entries of functions/Cargo.toml: what `cargo lambda build` produces.
pub fn cargo_bins(cargo_toml: &str) -> BTreeSet<String> {
    let mut bins = BTreeSet::new();
    let mut in_bin = false;
    for line in cargo_toml.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            bins.insert(value.trim().trim_matches('"').to_owned());
        }
    }
    bins
}

#[test]
fn cargo_bins_reads_bin_sections_only() {
    let toml = r#"
[package]
name = "fanout"

[[bin]]
name = "connect"
path = "src/bin/connect.rs"

[dependencies]
name = "not-a-bin"

[[bin]]
path = "src/bin/worker.rs"
name = "worker" # trailing comment
"#;
    assert_eq!(
        cargo_bins(toml),
        BTreeSet::from(["connect".to_owned(), "worker".to_owned()])
    );
}
