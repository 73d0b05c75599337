//! The checks `sygen service conformance` runs, on the library this package builds. They drive
//! the real service manager, with a harmless service of their own (`sygen-conformance`), so
//! they wait until the backend drives one: run them with `cargo test -- --ignored`.

use sygen_backend_api::conformance::Conformance;

#[test]
#[ignore = "needs the service manager this backend drives"]
fn behaves_as_sygen_expects() -> Result<(), String> {
    Conformance::of_library("sygen_example")
        .run()?
        .assert_passed();
    Ok(())
}
