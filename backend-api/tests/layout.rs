//! The freeze rule, enforced: a snapshot of the layouts abi_stable checks when a backend is
//! loaded. Any change to the root module, the console sink, or a type they carry fails here.
//! Such a change cuts off every published backend, so it belongs in a new major interface,
//! not in 1.x. (Regenerating the snapshot with `UPDATE_LAYOUT_SNAPSHOT=1` is for that day.)

use std::{collections::HashSet, fmt::Write, path::Path};

use abi_stable::{
    type_layout::{TLData, TLField, TLFields, TypeLayout},
    StableAbi,
};
use sygen_backend_api::{abi::Console, BackendModuleRef};

/// Describes `layout` and, once per type, everything it contains, with field names, function
/// signatures, sizes and alignments (but no package versions, which change without the layout).
fn describe(
    layout: &'static TypeLayout,
    depth: usize,
    seen: &mut HashSet<String>,
    out: &mut String,
) {
    let indent = "    ".repeat(depth);
    let name = layout.full_type().to_string();
    let _ = writeln!(
        out,
        "{indent}{name} (size {}, align {})",
        layout.size(),
        layout.alignment()
    );
    if !seen.insert(name) {
        return;
    }
    match layout.data() {
        TLData::Struct { fields } | TLData::Union { fields } => {
            describe_fields(fields, depth + 1, seen, out)
        }
        TLData::PrefixType(prefix) => {
            let _ = writeln!(
                out,
                "{indent}  prefix fields: {}",
                prefix.first_suffix_field
            );
            describe_fields(prefix.fields, depth + 1, seen, out)
        }
        TLData::Enum(enum_) => {
            let _ = writeln!(out, "{indent}  {enum_}");
        }
        TLData::Primitive(_) | TLData::Opaque => {}
    }
    // Types reached only through generic parameters (the prefix type behind a `PrefixRef`,
    // a trait object's vtable) are listed in the layout's shared variables.
    for referenced in layout.shared_vars().type_layouts() {
        let referenced = referenced();
        if !seen.contains(&referenced.full_type().to_string()) {
            let _ = writeln!(out, "{indent}  refers to:");
            describe(referenced, depth + 1, seen, out);
        }
    }
}

fn describe_fields(fields: TLFields, depth: usize, seen: &mut HashSet<String>, out: &mut String) {
    let indent = "    ".repeat(depth);
    for field in fields.iter() {
        describe_field(&field, &indent, depth, seen, out);
    }
}

fn describe_field(
    field: &TLField,
    indent: &str,
    depth: usize,
    seen: &mut HashSet<String>,
    out: &mut String,
) {
    let _ = writeln!(out, "{indent}.{}:", field.name());
    for function in field.function_range().iter() {
        let _ = writeln!(out, "{indent}  {function}");
    }
    describe(field.layout(), depth + 1, seen, out);
}

#[test]
fn frozen_layouts_are_unchanged() {
    let mut snapshot = String::new();
    let mut seen = HashSet::new();
    describe(
        <BackendModuleRef as StableAbi>::LAYOUT,
        0,
        &mut seen,
        &mut snapshot,
    );
    describe(<Console as StableAbi>::LAYOUT, 0, &mut seen, &mut snapshot);

    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/layout-1.x.txt");
    if std::env::var_os("UPDATE_LAYOUT_SNAPSHOT").is_some() {
        std::fs::write(&golden, &snapshot).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    if let Some((line, (want, got))) = expected
        .lines()
        .chain(std::iter::repeat("<end>"))
        .zip(snapshot.lines().chain(std::iter::repeat("<end>")))
        .take(expected.lines().count().max(snapshot.lines().count()))
        .enumerate()
        .find(|(_, (want, got))| want != got)
    {
        panic!(
            "the frozen 1.x layout changed; published backends would no longer load.\n\
             first difference, line {} of {}:\n  expected: {want}\n  actual:   {got}",
            line + 1,
            golden.display()
        );
    }
}
